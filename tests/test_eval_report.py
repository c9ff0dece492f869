"""`codeens report` on a small real eval run, opened in headless Chromium.

The run is two MBPP problems answered by replay models (see test_eval_run.py) with the
real sandbox; the report is written by the CLI and the HTML page is loaded by Debian's
chromium, which must decode every embedded plot and render a page that is not blank.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from conftest import run_cli
from eval_fixtures import MBPP_DATA, browser, run_eval, setup_replay

pytestmark = pytest.mark.docker

IDS = ["11", "12"]


@pytest.fixture(scope="module")
def eval_runs(
    tmp_path_factory: pytest.TempPathFactory, sandbox_image: str
) -> tuple[Path, list[str]]:
    """Two finished runs in one log: majority, then majority and cascade."""
    tmp = tmp_path_factory.mktemp("eval-report")
    config = setup_replay(tmp, "mbpp", IDS)
    db = tmp / "eval.db"
    ids = []
    for strategies in ("majority", "majority,cascade"):
        done = run_eval(
            tmp,
            config,
            db,
            "mbpp",
            "--data",
            str(MBPP_DATA),
            "--problems",
            ",".join(IDS),
            "--samples",
            "2",
            "--strategies",
            strategies,
        )
        assert done.returncode == 0, done.stderr
        ids.append(json.loads(done.stdout)["run_id"])
    return db, ids


def test_report_renders_in_headless_chromium(
    tmp_path: Path, eval_runs: tuple[Path, list[str]]
) -> None:
    db, (run_id, _) = eval_runs
    out = tmp_path / "report"
    done = run_cli("report", run_id, "--out", str(out), "--db", str(db), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    markdown = (out / "report.md").read_text()
    assert "| good |" in markdown and "| majority |" in markdown
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["cost_frontier.png", "latency.png", "oracle_gap.png", "pass_at_1.png"]
    for name in plots:
        assert f"(plots/{name})" in markdown
    page = out / "report.html"
    assert "http://" not in page.read_text() and "https://" not in page.read_text()

    dom = browser("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body is not None, dom.stdout[:500]
    assert 'data-images="4"' in body.group(0)
    assert 'data-images-loaded="4"' in body.group(0), "every plot decoded in the browser"

    shot = tmp_path / "shot.png"
    taken = browser(f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri())
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    with Image.open(shot) as image:
        stat = ImageStat.Stat(image.convert("L"))
    assert stat.stddev[0] > 10, "the rendered page is not blank"


def test_compare_report_shows_both_runs(tmp_path: Path, eval_runs: tuple[Path, list[str]]) -> None:
    db, (first, second) = eval_runs
    out = tmp_path / "compare"
    done = run_cli(
        "report", "--compare", first, second, "--out", str(out), "--db", str(db), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    markdown = (out / "report.md").read_text()
    assert first in markdown and second in markdown
    # cascade is only in run B: its row has no value for A.
    assert re.search(r"\| strategy \| cascade \| - \| \d+\.\d \| - \|", markdown), markdown
    assert re.search(r"\| strategy \| majority \| (\d+\.\d) \| \1 \| \+0\.0 \|", markdown)
    dom = browser("--dump-dom", (out / "report.html").as_uri())
    assert 'data-images-loaded="2"' in dom.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--out", "x"], "one RUN_ID"),
        (["report", "nope", "--out", "x"], "no eval run"),
        (["report", "a", "--compare", "b", "c", "--out", "x"], "one RUN_ID"),
    ],
)
def test_bad_report_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
