"""Fused decoding against its members alone: tokens per second, side by side in one run.

Greedy decoding of one coding prompt (max_tokens 160) by:

* chat, shared vocabulary: Qwen2.5-Coder 0.5B and 1.5B alone, then fused by the ``fuse``
  backend at the token level (the default: the first member drafts, the other checks the
  draft in one batch; step by step, as a check of what drafting saves; step by step with
  the 1.5B deciding alone above 0.5 (GaC's threshold); forced through the union
  vocabulary, which shows what the projection costs when the vocabularies are one) and
  at the span level (lines);
* completion, two vocabularies: Qwen2.5-Coder 1.5B and Gemma-3-270M alone, then fused
  over the union of their token strings (full distributions, GaC; the union of each top
  10, UniTE) and at the span level.

Rows marked T=0.8 sample at temperature 0.8, top-p 0.95 (seed 0) instead: drafted
fusion keeps a drafted token with probability min(1, f/q) there (speculative sampling),
so its rate depends on how often the members agree.

Every row loads through one pool, so the fused rows reuse the members' weights, and each
configuration runs once unmeasured first (vocabulary maps are built then, and cached as
the backend keeps them). tok/s counts the fused text's steps (tokens of the first member
for spans) over wall time. The ratio column is each row's rate over the slowest member's
own rate in its group: the goal is shared-vocabulary token fusion at >= 70 % of the 1.5B
model's greedy speed.

Usage: .venv/bin/python benchmarks/decoding.py [--max-tokens 160] [--repeat 1] [--readme]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from codeens.embedded import BASE_STOP, embedded
from codeens.models import ModelConfig, Prompt, SamplingParams
from codeens.models.fuse import Fuse
from codeens.models.llamacpp import LlamaCpp
from codeens.models.pool import ModelPool

PROMPT = Prompt(
    messages=(
        {"role": "system", "content": "You are a careful Python programmer."},
        {
            "role": "user",
            "content": "Write a Python function `merge_intervals(intervals)` that merges "
            "overlapping closed intervals given as (start, end) tuples and returns them "
            "sorted. Then explain how it works.",
        },
    ),
    prefix='def merge_intervals(intervals):\n    """Merge overlapping closed intervals '
    '(start, end); return them sorted by start."""\n',
)


def _member(name: str, chat: bool) -> ModelConfig:
    entry = embedded(name)
    assert entry is not None
    return entry.config.model_copy(update={"chat": chat})


def _fused(members: list[ModelConfig], chat: bool, **options: object) -> ModelConfig:
    return ModelConfig(
        name="fused",
        backend="fuse",
        chat=chat,
        options={
            "members": [m.name for m in members],
            "member_configs": [m.model_dump(mode="json") for m in members],
            **options,
        },
    )


def measure(model: Any, params: SamplingParams, repeat: int) -> tuple[float, int, float]:
    """(tokens per second, tokens, seconds) of greedy decodes after one unmeasured one."""
    model.complete(PROMPT, 1, params.model_copy(update={"max_tokens": 4}), seed=0)
    tokens, seconds = 0, 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        out = model.complete(PROMPT, 1, params, seed=0)[0]
        seconds += time.perf_counter() - started
        tokens += out.output_tokens
    return tokens / seconds, tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--readme", action="store_true", help="Write the table into README.md.")
    args = parser.parse_args()
    chat = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    base = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, stop=BASE_STOP)
    small, large = _member("qwen-coder-0.5b", True), _member("qwen-coder-1.5b", True)
    large_base, gemma = _member("qwen-coder-1.5b", False), _member("gemma3", False)
    groups: list[tuple[str, SamplingParams, list[tuple[str, ModelConfig]]]] = [
        (
            "chat, one vocabulary (Qwen 0.5B + 1.5B)",
            chat,
            [
                ("qwen-coder-1.5b alone", large),
                ("qwen-coder-0.5b alone", small),
                ("token fusion (drafted, batch-verified)", _fused([small, large], True)),
                (
                    "token fusion, step by step",
                    _fused([small, large], True, drafts="never"),
                ),
                (
                    "token fusion, step by step, threshold 0.5",
                    _fused([large, small], True, threshold=0.5, drafts="never"),
                ),
                ("token fusion via the union map", _fused([small, large], True, vocab="union")),
                ("T=0.8: qwen-coder-1.5b alone", large),
                ("T=0.8: token fusion (drafted)", _fused([small, large], True, drafts="always")),
                (
                    "T=0.8: token fusion, step by step",
                    _fused([small, large], True, drafts="never"),
                ),
                ("span fusion (lines)", _fused([small, large], True, mode="span")),
            ],
        ),
        (
            "completion, two vocabularies (Qwen 1.5B + Gemma 270M)",
            base,
            [
                ("qwen-coder-1.5b alone", large_base),
                ("gemma3 alone", gemma),
                ("union fusion (GaC, full)", _fused([large_base, gemma], False)),
                ("union fusion (UniTE, top 10)", _fused([large_base, gemma], False, top_k=10)),
                ("span fusion (lines)", _fused([large_base, gemma], False, mode="span")),
            ],
        ),
    ]
    pool = ModelPool()
    print(f"greedy, max_tokens {args.max_tokens}, {args.repeat} measured run(s) per row")
    print(f"{'configuration':44} {'tokens':>6} {'s':>7} {'tok/s':>7} {'vs slowest':>10}")
    table = ["| configuration | tokens | s | tok/s | vs slowest member |", "|---|---|---|---|---|"]
    try:
        for title, params, rows in groups:
            print(f"-- {title}")
            table.append(f"| **{title}** | | | | |")
            slowest = None
            for label, config in rows:
                model: Any = Fuse(config) if config.backend == "fuse" else LlamaCpp(config)
                model.share_loads(pool)
                hot = params.model_copy(update={"temperature": 0.8, "top_p": 0.95})
                rate, tokens, seconds = measure(
                    model, hot if label.startswith("T=0.8") else params, args.repeat
                )
                model.close()
                slowest = rate if slowest is None else slowest  # the first row of a group
                ratio = f"{rate / slowest:.0%}"
                print(f"{label:44} {tokens:6} {seconds:7.1f} {rate:7.1f} {ratio:>10}")
                table.append(f"| {label} | {tokens} | {seconds:.1f} | {rate:.1f} | {ratio} |")
    finally:
        pool.close()
    if args.readme:
        _write(table)


def _write(table: list[str]) -> None:
    """The table into README.md between the fusion-speed markers."""
    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- fusion-speed:start -->", "<!-- fusion-speed:end -->"
    body = "\n".join(table)
    pattern = re.escape(start) + ".*?" + re.escape(end)
    text = re.sub(pattern, lambda _: f"{start}\n{body}\n{end}", text, flags=re.S)
    readme.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
