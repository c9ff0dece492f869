"""pass@1 of members built by ``codeens fuse`` / ``codeens merge evolve`` and their source.

Runs ``codeens eval`` on the README's MBPP slice (``eval_headline.py``) with 4 samples per
problem for the models named (from ``benchmarks/built.toml``; the built checkpoints'
folders come from ``CODEENS_FUSED_DIR`` and ``CODEENS_EVOLVED_DIR``), then writes
``results/built_members.md`` and the README block between the ``built-members`` markers.
Models whose samples are already in the log (an earlier run of this script) are served
from it, so adding the evolved merge later costs only its own samples.

Usage: .venv/bin/python benchmarks/built_members.py --models smollm2,smollm2-fused [--db PATH]
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
CONFIG = ROOT / "benchmarks" / "built.toml"
MARKER = "built-members"


def run(db: Path, models: list[str], samples: int, limit: int | None) -> dict[str, Any]:
    codeens = str(Path(sys.executable).with_name("codeens"))
    command = [
        codeens,
        "eval",
        "mbpp",
        "--split",
        "test",
        "--problems",
        ",".join(SLICE_SETS["readme"]["mbpp"].split(",")[:limit]),
        "--config",
        str(CONFIG),
        "--models",
        ",".join(models),
        "--samples",
        str(samples),
        "--strategies",
        "majority",  # asks no model anything: the per-model rows are the point
        "--db",
        str(db),
        "--json",
        "--quiet",
    ]
    started = time.monotonic()
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    summary: dict[str, Any] = json.loads(out.stdout)
    summary["wall_s"] = time.monotonic() - started
    return summary


def table(summary: dict[str, Any], samples: int, limit: int | None) -> list[str]:
    n = summary["problems_done"]
    part = f"the first {limit} of " if limit else ""
    lines = [
        f"MBPP, {part}{DESCRIPTIONS['readme']['mbpp']}: {n} problems, {samples} samples per model "
        f"(temperature 0.8); the run took {summary['wall_s'] / 60:.1f} min (models already "
        "in the log are served from it).",
        "",
        "| model | pass@1 % (95% CI) | problems solved by any sample | tokens |",
        "|---|---|---|---|",
    ]
    for name, row in summary["models"].items():
        solved = sum(bool(t["models"].get(name)) for t in summary["per_task"])
        lines.append(
            f"| {name} | {pct(row['pass@1'])} ({ci(row['pass@1_ci'])}) | {solved} | "
            f"{row['tokens']} |"
        )
    lines += ["", f"Run `{summary['run_id']}`; models from `benchmarks/built.toml`.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="Comma-separated names from built.toml.")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None, help="Only the slice's first N.")
    parser.add_argument("--db", type=Path, default=RESULTS / "built_members.db")
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = run(args.db, args.models.split(","), args.samples, args.limit)
    text = "\n".join(table(summary, args.samples, args.limit))
    (RESULTS / "built_members.md").write_text(text + "\n", encoding="utf-8")
    (RESULTS / "built_members.json").write_text(json.dumps(summary, indent=1), "utf-8")
    print(text)
    if not args.no_readme:
        readme_block(MARKER, text)


if __name__ == "__main__":
    main()
