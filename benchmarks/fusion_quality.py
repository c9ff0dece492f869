"""Greedy pass@1 of fused models and of their members on the README's MBPP slice.

Runs ``codeens eval`` once over the slice of ``eval_headline.py`` with the models of
``benchmarks/fusion.toml`` (each decoding greedily: one program per problem), then writes
``results/fusion_quality.md`` and the README block between the ``fusion-quality``
markers: per model its pass@1 with a 95 % interval, tokens and median latency; per fused
model the problems it solves that none of its members does (gained) and those a member
solves that it does not (lost).

An interrupted run is resumed: the newest unfinished run of the same slice and models in
the log goes on where it stopped.

Usage: .venv/bin/python benchmarks/fusion_quality.py [--benchmark mbpp] [--db PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from eval_headline import DESCRIPTIONS, SLICE_SETS, ci, pct, readme_block

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "benchmarks" / "fusion.toml"
MEMBERS = {
    "fuse-token": ("qwen-0.5b", "qwen-1.5b"),
    "fuse-span": ("qwen-0.5b", "qwen-1.5b"),
    "fuse-union": ("qwen-1.5b-text", "gemma-270m-text"),
    "fuse-token-gac": ("qwen-1.5b", "qwen-0.5b"),
    "fuse-token-packllm": ("qwen-0.5b", "qwen-1.5b"),
    "fuse-union-gac": ("qwen-1.5b-text", "gemma-270m-text"),
    "fuse-union-span": ("qwen-1.5b-text", "gemma-270m-text"),
}
MODELS = ["qwen-0.5b", "qwen-1.5b", "qwen-1.5b-text", "gemma-270m-text", *MEMBERS]
MARKER = "fusion-quality"


def _unfinished(db: Path, benchmark: str) -> str | None:
    if not db.exists():
        return None
    from codeens.storage import Store

    wanted = {"benchmark": benchmark, "task_ids": SLICE_SETS["readme"][benchmark].split(",")}
    for run in Store(db).runs(limit=100):
        spec = json.loads(run.config_json or "{}")
        if (
            run.kind == "eval"
            and run.status != "done"
            and all(spec.get(k) == v for k, v in wanted.items())
            and spec.get("models") == MODELS
            and spec.get("strategies") == ["majority"]
        ):
            return run.id
    return None


def run(db: Path, benchmark: str) -> dict[str, Any]:
    codeens = str(Path(sys.executable).with_name("codeens"))
    tail = ["--db", str(db), "--json", "--quiet"]
    resume = _unfinished(db, benchmark)
    if resume is not None:
        command = [codeens, "eval", "--resume", resume, *tail]
    else:
        command = [
            codeens,
            "eval",
            benchmark,
            *(["--split", "test"] if benchmark == "mbpp" else []),
            "--problems",
            SLICE_SETS["readme"][benchmark],
            "--config",
            str(CONFIG),
            "--models",
            ",".join(MODELS),
            "--samples",
            "1",
            "--strategies",
            "majority",  # asks no model anything: the per-model rows are the point
            *tail,
        ]
    started = time.monotonic()
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    summary: dict[str, Any] = json.loads(out.stdout)
    summary["wall_s"] = time.monotonic() - started
    summary["resumed"] = resume is not None
    return summary


def table(summary: dict[str, Any], benchmark: str) -> list[str]:
    tasks = summary["per_task"]
    n = summary["problems_done"]
    lines = [
        f"**{benchmark}**, {DESCRIPTIONS['readme'][benchmark]}: {n} problems, greedy "
        f"(one program per model and problem); the run took {summary['wall_s'] / 60:.1f} min"
        + (" (resumed: the time of the last part only)" if summary["resumed"] else "")
        + "; a model's programs already in the log (an earlier run of this script with "
        "fewer models) are served from it.",
        "",
        "| model | members | pass@1 % (95% CI) | gained | lost | tokens | p50 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["models"].items():
        members = MEMBERS.get(name, ())
        gained = lost = "-"
        if members:
            solved = [t for t in tasks if t["models"].get(name)]
            gained = str(sum(not any(t["models"].get(m) for m in members) for t in solved))
            lost = str(
                sum(
                    not t["models"].get(name) and any(t["models"].get(m) for m in members)
                    for t in tasks
                )
            )
        lines.append(
            f"| {name} | {' + '.join(members) or '-'} | {pct(row['pass@1'])} "
            f"({ci(row['pass@1_ci'])}) | {gained} | {lost} | {row['tokens']} | "
            f"{row['latency_p50_s']:.1f} |"
        )
    lines += ["", f"Run `{summary['run_id']}`; models from `benchmarks/fusion.toml`.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", choices=sorted(SLICE_SETS["readme"]), default="mbpp")
    parser.add_argument("--db", type=Path, default=RESULTS / "fusion_quality.db")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = run(args.db, args.benchmark)
    text = "\n".join(table(summary, args.benchmark))
    (RESULTS / "fusion_quality.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / "fusion_quality.json").write_text(json.dumps(summary, indent=1), "utf-8")
    print(text)
    if not args.no_readme:
        readme_block(MARKER, text)


if __name__ == "__main__":
    main()
