"""`mbr-exec`: the program whose outputs most other samples share (Shi et al. 2022).

Recorded completions (`replay`): see agreement_fixtures.py; the CLI, the Docker sandbox
and the SQLite log are real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agreement_fixtures import (
    ALPHA_INPUTS,
    BETA_INPUTS,
    BIG,
    BIG_TIMES,
    CORRECT,
    RAISES,
    SUMMED,
    SWAPPED,
    TIMES,
    chosen_body,
    copy_problem,
    model,
    short_hash,
    solve,
)

from codeens.problem import load_problem
from codeens.strategies.inputs import parse_calls, prompt_for_inputs, visible_calls
from eval_fixtures import MBPP_DATA, run_eval, setup_replay


@pytest.fixture
def problem(tmp_path: Path) -> Path:
    return copy_problem(tmp_path)


def test_inputs_are_single_standalone_calls_of_the_target(problem: Path) -> None:
    reply = (
        "```python\nadd(1,2)\n    add(1, 2)  # the same once normalised\nadd(10, 5)\n"
        "assert add(3, 3) == 6\nadd(x, 1)\nadd([i for i in range(3)], len('ab'))\n"
        "add(1,\n  2)\nsub(1, 2)\nprint(add(1, 2))\n    return add(a - 1, b)\n```"
    )
    assert parse_calls(reply, "add") == [
        "add(1, 2)", "add(10, 5)", "add(3, 3)", "add([i for i in range(3)], len('ab'))",
    ]  # fmt: skip
    tests = "def test_x():\n    y = 3\n    assert add(y, 1) == 4\n    assert not add(2, -2)\n"
    assert visible_calls(tests, "add") == ["add(2, -2)"]  # add(y, 1) reads a local
    loaded = load_problem(problem)
    stub = loaded.stubs[0]
    prompt = prompt_for_inputs(loaded, stub, loaded.tests_for("add"), 10)
    assert prompt.prefix.endswith(
        '    """\n    pass\n\n\n# example calls\nadd(2, 3)\nadd(-4, 1)\nadd(0, 0)\nadd('
    )
    assert "Write 10 new, different calls of `add`" in prompt.text_for(True)


def test_the_agreeing_programs_win_over_duplicates_and_log_probability(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    # Every program but TIMES passes the visible tests. Three correct programs, written
    # differently, agree on every input; BIG is sampled twice and both wrong programs are
    # likelier by log-probability.
    models = [
        model(tmp_path, problem, "alpha", [(BIG, -0.05), (BIG, -0.05), (CORRECT, -0.4),
                                            (SWAPPED, -0.2)], ALPHA_INPUTS),
        model(tmp_path, problem, "beta", [(SUMMED, -0.3), (BIG_TIMES, -0.01), (TIMES, -0.01),
                                           (TIMES, -0.01)], BETA_INPUTS),
    ]  # fmt: skip
    code, data = solve(tmp_path, problem, "mbr-exec", models, 4)
    assert code == 0
    trace = data["trace"]["add"]
    assert trace["pool"] == {"visible_filter": True, "pass_rate": 1.0, "candidates": 5, "of": 6}
    calls = trace["inputs"]["calls"]
    assert [(c["call"], c["from"], c["used"]) for c in calls] == [
        ("add(2, 3)", "visible", True), ("add(-4, 1)", "visible", True),
        ("add(0, 0)", "visible", True), ("add(10, 5)", "alpha", True),
        ("add(20, 1)", "beta", True), ("add(1, 1)", "alpha", True),
        ("add('a', 1)", "alpha", False),  # every program raises: outside the domain
        ("add(3, 3)", "alpha", True),
    ]  # fmt: skip
    assert calls[3]["distinct_outputs"] == 3 and calls[6]["no_output"] == 5
    assert trace["inputs"]["sources"] == [
        {"model": "alpha", "samples": 1, "kept": 4}, {"model": "beta", "samples": 1, "kept": 1},
    ]  # fmt: skip
    h = {name: short_hash(problem, p) for name, p in
         [("correct", CORRECT), ("swapped", SWAPPED), ("summed", SUMMED), ("big", BIG),
          ("big_times", BIG_TIMES)]}  # fmt: skip
    rows = [(r["candidate"], r["agreement"], r["mean_logprob"]) for r in trace["candidates"]]
    assert rows == [
        (h["swapped"], 2, -0.2), (h["summed"], 2, -0.3), (h["correct"], 2, -0.4),
        (h["big"], 1, -0.05), (h["big_times"], 0, -0.01),
    ]  # fmt: skip
    assert trace["candidates"][0]["agrees_with"] == [h["summed"], h["correct"]]
    assert trace["candidates"][3]["agrees_with"] == []  # its duplicate is itself
    assert trace["chosen"] == {"candidate": h["swapped"], "agreement": 2}
    assert "return b + a" in chosen_body(data)
    assert trace["why"] == (
        "agrees with 2 of 5 other samples on all 7 compared inputs; 3 candidates tied, "
        "broken by mean log-probability, then duplicates, then shorter code"
    )

    # On the visible calls alone every program agrees: log-probability picks a wrong one.
    _, plain = solve(
        tmp_path, problem, "mbr-exec", models, 4, "[strategies.mbr-exec]\ninputs = 0\n"
    )
    assert plain["trace"]["add"]["chosen"] == {"candidate": h["big_times"], "agreement": 5}


def test_a_program_that_raises_agrees_with_nobody(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    # RAISES is half of the samples and the likeliest; it raises on add(10, 5) and
    # add(20, 1), so it agrees with nobody there, not even its own duplicates.
    models = [
        model(tmp_path, problem, "alpha", [(RAISES, -0.01), (RAISES, -0.01), (CORRECT, -0.3),
                                            (BIG, -0.1)], ALPHA_INPUTS),
        model(tmp_path, problem, "beta", [(RAISES, -0.01), (RAISES, -0.01), (SWAPPED, -0.2),
                                           (BIG_TIMES, -0.1)], BETA_INPUTS),
    ]  # fmt: skip
    code, data = solve(tmp_path, problem, "mbr-exec", models, 4)
    assert code == 0
    trace = data["trace"]["add"]
    raises = next(r for r in trace["candidates"] if r["candidate"] == short_hash(problem, RAISES))
    assert (raises["samples"], raises["agreement"], raises["agrees_with"]) == (4, 0, [])
    assert raises["no_output"] == 2
    assert [(r["agreement"]) for r in trace["candidates"]] == [1, 1, 0, 0, 0]
    assert trace["chosen"] == {"candidate": short_hash(problem, SWAPPED), "agreement": 1}
    assert "return b + a" in chosen_body(data)


@pytest.mark.timeout(600)
def test_eval_runs_both_agreement_strategies(tmp_path: Path, sandbox_image: str) -> None:
    config = setup_replay(tmp_path, "mbpp", ["11"])
    args = ["mbpp", "--data", str(MBPP_DATA), "--problems", "11", "--samples", "2"]
    done = run_eval(
        tmp_path, config, tmp_path / "eval.db", *args, "--strategies", "mbr-exec,cluster"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary["strategies"]) == {"mbr-exec", "cluster"}
    for row in summary["strategies"].values():
        assert row["oracle"] == 1.0 and 0.0 <= row["pass@1"] <= 1.0
