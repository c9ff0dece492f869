"""Batched against sequential sampling in the llama.cpp backend, measured in one run.

For each Qwen2.5-Coder model (0.5B and 1.5B, Q4_K_M), the same chat prompt (implement a
function with a docstring, tests and an explanation, an answer well over 200 tokens) is
sampled at temperature 0.8 with ``max_tokens`` 200 along three paths:

* batched: ``LlamaCpp.complete(prompt, n)`` for n = 4 and n = 8 (one prompt evaluation,
  one ``llama_decode`` per step for all unfinished samples);
* sequential: the same n samples through codeens one at a time (n calls with n = 1, seeds
  0..n-1, so sample i has the seed it has in the batch);
* llama-cpp-python: its own ``create_chat_completion`` called n times with the same
  sampling arguments (top_k 0, min_p 0), on a ``Llama`` of the same window and threads;
* batched again with ``kv_unified = false`` (a KV stream per sample), for comparison.

EOS is not suppressed (neither path has a switch for it): the prompt asks for more than
200 tokens, and every rate counts the tokens actually generated, so a sample that ends
early costs its own tokens only; the table shows the mean tokens per sample.

Ratios: batched over sequential tokens/s for 4 and 8 samples (goals: >= 2.5x and >= 4x),
and codeens' single-sequence tokens/s as a share of llama-cpp-python's (goal: >= 90 %).
The last line is ``speedup4 X speedup8 Y`` for the 1.5B model.

Usage: .venv/bin/python benchmarks/sampling.py [--gguf-0.5b PATH] [--gguf-1.5b PATH]
       [--max-tokens 200] [--threads N] [--n-seq-max 8]
Without a path the model comes from the embedded catalog (``qwen-coder-0.5b`` /
``qwen-coder-1.5b``, joined and sha256-verified on first use).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeens.models import ModelConfig, Prompt, SamplingParams
from codeens.models.llamacpp import LlamaCpp

PROMPT = Prompt(
    messages=(
        {"role": "system", "content": "You are a careful Python programmer."},
        {
            "role": "user",
            "content": "Implement `merge_intervals(intervals: list[tuple[int, int]]) -> "
            "list[tuple[int, int]]` that merges overlapping closed intervals. Give it a "
            "detailed docstring with doctest examples, then write five pytest tests, then "
            "explain the algorithm and its complexity step by step.",
        },
    ),
    prefix="",
)
N_CTX = 2048


@dataclass(frozen=True)
class Run:
    path: str
    samples: int
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def catalog_file(name: str) -> Path:
    from codeens.config import Config
    from codeens.models.locate import resolve

    return resolve(Config().model(name).location)


def codeens_model(path: Path, threads: int, n_seq_max: int, unified: bool = True) -> LlamaCpp:
    options = {
        "n_ctx": N_CTX,
        "n_threads": threads,
        "n_seq_max": n_seq_max,
        "kv_unified": unified,
    }
    config = ModelConfig(name="bench", backend="llamacpp", location=str(path), options=options)
    return LlamaCpp(config)


def timed_codeens(model: LlamaCpp, n: int, params: SamplingParams, seed: int) -> Run:
    started = time.perf_counter()
    out = model.complete(PROMPT, n, params, seed)
    seconds = time.perf_counter() - started
    return Run("", n, sum(c.output_tokens for c in out), seconds)


def timed_library(llama: Any, params: SamplingParams, seed: int) -> Run:
    started = time.perf_counter()
    response = llama.create_chat_completion(
        messages=[dict(m) for m in PROMPT.messages],
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=0,
        min_p=0.0,
        max_tokens=params.max_tokens,
        seed=seed,
    )
    seconds = time.perf_counter() - started
    return Run("", 1, int(response["usage"]["completion_tokens"]), seconds)


def total(path: str, runs: list[Run]) -> Run:
    return Run(path, len(runs), sum(r.tokens for r in runs), sum(r.seconds for r in runs))


def measure(label: str, path: Path, threads: int, n_seq_max: int, max_tokens: int) -> list[Run]:
    import llama_cpp

    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=max_tokens)
    warm = SamplingParams(temperature=0.8, max_tokens=8)
    model = codeens_model(path, threads, n_seq_max)
    llama = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, n_threads=threads, verbose=False)
    try:
        model.complete(PROMPT, 2, warm, seed=99)  # load, repack weights, size the KV cache
        timed_library(llama, warm, 99)
        batched = {n: timed_codeens(model, n, params, seed=0) for n in (4, 8)}
        sequential = [timed_codeens(model, 1, params, seed=i) for i in range(8)]
        library = [timed_library(llama, params, i) for i in range(8)]
    finally:
        model.close()
        llama.close()
    streams = codeens_model(path, threads, n_seq_max, unified=False)
    try:
        streams.complete(PROMPT, 2, warm, seed=99)
        per_stream = {n: timed_codeens(streams, n, params, seed=0) for n in (4, 8)}
    finally:
        streams.close()
    runs = []
    for n in (4, 8):
        runs.append(Run(f"{label} codeens batched", n, batched[n].tokens, batched[n].seconds))
        runs.append(total(f"{label} codeens sequential", sequential[:n]))
        runs.append(total(f"{label} llama-cpp-python x{n}", library[:n]))
    for n in (4, 8):
        run = per_stream[n]
        runs.append(Run(f"{label} batched, kv_unified=false", n, run.tokens, run.seconds))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf-0.5b", dest="small", type=Path, default=None)
    parser.add_argument("--gguf-1.5b", dest="large", type=Path, default=None)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--n-seq-max", type=int, default=8)
    args = parser.parse_args()

    models = {
        "0.5B": args.small or catalog_file("qwen-coder-0.5b"),
        "1.5B": args.large or catalog_file("qwen-coder-1.5b"),
    }
    print(
        f"sampling: temperature 0.8, top_p 0.95, max_tokens {args.max_tokens}, "
        f"{args.threads} threads, n_seq_max {args.n_seq_max}, window {N_CTX}"
    )
    print(f"{'model / path':40} {'samples':>7} {'tok/sample':>10} {'s':>7} {'tok/s':>7}")
    speedups: dict[str, tuple[float, float]] = {}
    for label, path in models.items():
        runs = measure(label, path, args.threads, args.n_seq_max, args.max_tokens)
        for run in runs:
            per = run.tokens / run.samples
            print(f"{run.path:40} {run.samples:7} {per:10.1f} {run.seconds:7.1f} {run.rate:7.1f}")
        batched4, seq4, _, batched8, seq8, lib8, streams4, streams8 = runs
        s4, s8 = batched4.rate / seq4.rate, batched8.rate / seq8.rate
        single = seq8.rate / lib8.rate
        speedups[label] = (s4, s8)
        print(
            f"{label}: batched/sequential 4 samples {s4:.2f}x (goal 2.5x), "
            f"8 samples {s8:.2f}x (goal 4x); codeens single-sequence {single:.0%} of "
            f"llama-cpp-python's (goal 90%)"
        )
        print(
            f"{label}: with kv_unified=false, 4 samples {streams4.rate / seq4.rate:.2f}x, "
            f"8 samples {streams8.rate / seq8.rate:.2f}x"
        )
    s4, s8 = speedups["1.5B"]
    print(f"speedup4 {s4:.2f} speedup8 {s8:.2f}")


if __name__ == "__main__":
    main()
