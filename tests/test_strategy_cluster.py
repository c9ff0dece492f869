"""`cluster`: filter on the visible tests, cluster by outputs, weigh clusters across models.

Recorded completions (`replay`): see agreement_fixtures.py; the CLI, the Docker sandbox
and the SQLite log are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from agreement_fixtures import (
    ALPHA_INPUTS,
    BETA_INPUTS,
    BIG,
    BIG_TIMES,
    CORRECT,
    RAISES,
    SWAPPED,
    TIMES,
    chosen_body,
    copy_problem,
    model,
    short_hash,
    solve,
)


@pytest.fixture
def problem(tmp_path: Path) -> Path:
    return copy_problem(tmp_path)


def test_one_models_repeated_mistake_weighs_less_than_agreement_across_models(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    # alpha samples BIG three times; the correct cluster has one sample from each model.
    # By size BIG would win (3 samples against 2); by weight sqrt(3) < 1 + 1. One input is
    # asked of each model, and one kept of each however many they write.
    models = [
        model(tmp_path, problem, "alpha", [(BIG, -0.1)] * 3 + [(CORRECT, -0.2)], ALPHA_INPUTS, 1),
        model(tmp_path, problem, "beta", [(SWAPPED, -0.3)] + [(TIMES, -0.1)] * 3, BETA_INPUTS, 1),
    ]
    code, data = solve(
        tmp_path, problem, "cluster", models, 4, "[strategies.cluster]\ninputs = 1\n"
    )
    assert code == 0
    trace = data["trace"]["add"]
    assert trace["filter"] == {
        "pass_rate": 1.0, "survivors": 3, "of": 4, "rule": "passes every visible test",
    }  # fmt: skip
    assert [c["call"] for c in trace["inputs"]["calls"]][3:] == ["add(10, 5)", "add(20, 1)"]
    assert [s["kept"] for s in trace["inputs"]["sources"]] == [1, 1]
    correct, swapped, big = (short_hash(problem, p) for p in (CORRECT, SWAPPED, BIG))
    shown = [
        (c["candidates"], c["models"], c["samples"], c["weight"], c["complete"])
        for c in trace["clusters"]
    ]
    assert shown == [
        ([correct, swapped], {"alpha": 1, "beta": 1}, 2, 2.0, True),
        ([big], {"alpha": 3}, 3, 1.732051, True),
    ]
    assert trace["clusters_total"] == 2
    top, other = trace["clusters"]
    # Inside the cluster the likelier program wins, though the other one is shorter.
    assert top["representative"] == correct == trace["chosen"]["candidate"]
    assert "def add(a: int, b: int) -> int:\n    return a + b" in top["code"]
    assert "a - b" in other["code"]
    assert other["differs_from_chosen"] == [
        {"call": "add(10, 5)", "output": "5", "chosen_output": "15"},
        {"call": "add(20, 1)", "output": "19", "chosen_output": "21"},
    ]
    assert "return a + b\n" in chosen_body(data)
    assert trace["why"].startswith(
        "weightiest of 2 clusters on 5 compared inputs: 2 samples from 2 model(s), "
        "weight 2.000 (next: 1.732)"
    )


def test_a_program_that_raises_is_a_cluster_of_its_own_ranked_last(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    # RAISES is the heaviest (two samples from each model: weight 2.83) but raises on
    # add(10, 5) and add(20, 1): it agrees with nobody and ranks after every cluster whose
    # programs returned on every input, out of the top 3 shown.
    models = [
        model(tmp_path, problem, "alpha", [(RAISES, -0.01)] * 2 + [(CORRECT, -0.3), (BIG, -0.1)],
              ALPHA_INPUTS),
        model(tmp_path, problem, "beta", [(RAISES, -0.01)] * 2 + [(SWAPPED, -0.2),
                                                                 (BIG_TIMES, -0.2)], BETA_INPUTS),
    ]  # fmt: skip
    code, data = solve(tmp_path, problem, "cluster", models, 4)
    assert code == 0
    trace = data["trace"]["add"]
    assert trace["clusters_total"] == 4
    assert [(c["candidates"], c["weight"]) for c in trace["clusters"]] == [
        ([short_hash(problem, SWAPPED), short_hash(problem, CORRECT)], 2.0),
        ([short_hash(problem, BIG)], 1.0),
        ([short_hash(problem, BIG_TIMES)], 1.0),
    ]
    assert "return b + a" in chosen_body(data)

    # Shown in full, it comes last and incomplete.
    _, everything = solve(
        tmp_path, problem, "cluster", models, 4, "[strategies.cluster]\ntop_k = 9\n"
    )
    last = everything["trace"]["add"]["clusters"][-1]
    assert last["candidates"] == [short_hash(problem, RAISES)]
    assert (last["complete"], last["samples"], last["weight"]) == (False, 4, 2.828427)
    assert last["differs_from_chosen"][0] == {
        "call": "add(10, 5)", "output": None, "chosen_output": "15",
    }  # fmt: skip


def test_without_a_passing_candidate_the_top_pass_rate_survives(
    tmp_path: Path, problem: Path, sandbox_image: str
) -> None:
    # Every program fails add(0, 0) == 0; the likeliest one was sampled once.
    off = "```python\ndef add(a, b):\n    return a + b if a else 1\n```"
    off_too = "```python\ndef add(a, b):\n    return a + b if a != 0 else b + 1\n```"
    models = [model(tmp_path, problem, "alpha", [(off, -0.5), (off_too, -0.1)], None)]
    code, data = solve(tmp_path, problem, "cluster", models, 2)
    assert code == 1 and data["status"] == "unsolved"
    trace = data["trace"]["add"]
    assert trace["filter"]["rule"] == "none passes every visible test: the top visible pass rate"
    assert trace["inputs"]["sources"][0]["error"]  # nothing recorded: visible calls only
    # They agree on the visible calls (both return 1 for add(0, 0)): one cluster.
    assert trace["clusters_total"] == 1 and trace["chosen"]["candidate"] == short_hash(
        problem, off_too
    )
