"""`codeens eval` with the embedded models on a slice of each benchmark, then its report.

Everything is real: SmolLM2 and Qwen2.5-Coder-0.5B on llama.cpp, the Docker sandbox, the
log, the scorers, chromium. The test checks that the figures are consistent with what was
logged, and that the embedded code model solves these easy problems at all.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from eval_fixtures import MBPP_DATA, browser

pytestmark = pytest.mark.docker

SLICES = {
    "humaneval": ["--problems", "HumanEval/2,HumanEval/23"],
    "mbpp": ["--data", str(MBPP_DATA), "--problems", "17,18"],
}


def _check_consistent(summary: dict[str, Any], db: Path) -> None:
    assert summary["status"] == "done" and summary["problems_done"] == 2
    assert set(summary["models"]) == {"smollm2", "qwen-coder-0.5b"}
    # Two easy problems: a real code model passes the hidden tests with some sample.
    assert summary["models"]["qwen-coder-0.5b"]["pass@2"] > 0
    for row in summary["models"].values():
        assert 0.0 <= row["pass@1"] <= 1.0 and row["tokens"] > 0
    oracle_any = summary["oracle"]
    for name, row in summary["strategies"].items():
        assert row["pass@1"] <= row["oracle"] <= 1.0, name
        assert row["tokens"] > 0 and row["latency_p95_s"] >= row["latency_p50_s"] > 0
    # The vote strategy sees every model's samples: its oracle is the models' oracle.
    assert summary["strategies"]["vote"]["oracle"] == oracle_any
    with sqlite3.connect(db) as conn:
        hidden = conn.execute(
            "SELECT count(DISTINCT candidate) FROM executions WHERE run_id = ?",
            (summary["run_id"],),
        ).fetchone()[0]
        codes = conn.execute(
            "SELECT count(DISTINCT target || code_hash) FROM generations "
            "WHERE run_id = ? AND code_hash IS NOT NULL",
            (summary["run_id"],),
        ).fetchone()[0]
    assert hidden >= codes, "every sampled program ran on the hidden tests"


@pytest.mark.timeout(1800)  # two real models on 2 shared cores: minutes
@pytest.mark.parametrize("benchmark", list(SLICES))
def test_eval_slice_with_embedded_models(
    tmp_path: Path, sandbox_image: str, benchmark: str
) -> None:
    db = tmp_path / "eval.db"
    done = run_cli(
        "eval",
        benchmark,
        *SLICES[benchmark],
        "--samples",
        "2",
        "--strategies",
        "vote,cascade",
        "--models",
        "smollm2,qwen-coder-0.5b",
        "--db",
        str(db),
        "--json",
        "--quiet",
        cwd=tmp_path,
        timeout=1700,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    _check_consistent(summary, db)

    out = tmp_path / "report"
    made = run_cli("report", summary["run_id"], "--out", str(out), "--db", str(db), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    dom = browser("--dump-dom", (out / "report.html").as_uri())
    assert 'data-images-loaded="4"' in dom.stdout
