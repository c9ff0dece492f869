"""`codeens serve` end to end: a real uvicorn server on 127.0.0.1, the official `openai`
client, replay members, real sandboxes and a real SQLite log."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from serve_fixtures import (
    ADD,
    CORRECT,
    CORRECT_OTHER,
    PROSE,
    WRONG_MINUS,
    WRONG_TIMES,
    chat_prompt,
    client,
    replay,
    run_function,
    serving,
    stub_prompt,
    write_config,
)

from codeens.strategies.base import STRATEGIES

QUESTION = [{"role": "user", "content": "What is a closure in Python?"}]
ALPHA_SAYS = "A closure is a function that remembers\nthe variables of the scope it was made in."
BETA_SAYS = "A function object that keeps references to names of its enclosing scope."
AGGREGATED = "A closure is an inner function\nthat keeps the enclosing scope's variables\nalive."


@pytest.fixture
def members(tmp_path: Path) -> Path:
    """alpha and beta with recordings for add.py and for the closure question."""
    prompt = stub_prompt()
    replay(tmp_path, "alpha", prompt, [WRONG_MINUS, CORRECT, CORRECT, PROSE])
    replay(tmp_path, "beta", prompt, [WRONG_TIMES, CORRECT_OTHER, WRONG_MINUS, CORRECT_OTHER])
    replay(tmp_path, "alpha", chat_prompt(QUESTION), [ALPHA_SAYS, ALPHA_SAYS + " (2)"])
    replay(tmp_path, "beta", chat_prompt(QUESTION), [BETA_SAYS])
    replay(tmp_path, "beta", chat_prompt(QUESTION, [ALPHA_SAYS, BETA_SAYS]), [AGGREGATED])
    return tmp_path


def _stub_message() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Please implement this:\n\n```python\n{ADD}```\n"}]


def test_models_list_and_health(members: Path) -> None:
    with serving(write_config(members), members / "log.db") as (url, _store):
        listed = [m.id for m in client(url).models.list()]
        health = httpx.get(f"{url}/health").json()
    assert listed == ["codeens", *(f"codeens-{s}" for s in STRATEGIES.names()), "alpha", "beta"]
    assert {"codeens-vote", "codeens-cascade", "codeens-moa"} <= set(listed)
    assert health == {"status": "ok", "running": 0, "waiting": 0}


def test_a_stub_is_answered_with_verified_code(members: Path) -> None:
    with serving(write_config(members), members / "log.db") as (url, store):
        reply = client(url).chat.completions.create(model="codeens-vote", messages=_stub_message())
    content = reply.choices[0].message.content or ""
    add = run_function(content, "add")
    assert add(2, 3) == 5 and add(100, 23) == 123 and add(-7, -8) == -15
    assert content.startswith("```python\n") and content.endswith("```")
    extra = reply.model_extra or {}
    info = extra["codeens"]
    assert info["status"] == "solved" and info["mode"] == "solve" and info["strategy"] == "vote"
    assert info["visible_tests"] == {"passed": 3, "total": 3}
    assert info["cost"] == pytest.approx(sum(10 + i for i in range(4)) * (1.0 + 2.0) / 1e6)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 8 * 40 and reply.usage.total_tokens > 8 * 40
    assert reply.id == f"chatcmpl-{info['run_id']}" and reply.model == "codeens-vote"
    run = store.run(info["run_id"])
    assert run is not None and (run.kind, run.status) == ("serve", "solved")
    generations = store.generations(run.id, "add")
    assert len(generations) == 8
    (decision,) = store.decisions(run.id)
    writers = {g.model for g in generations if g.code_hash == decision.chosen_hash}
    assert info["members"] == sorted(writers) and writers


@pytest.mark.docker
def test_a_member_alone_in_the_docker_sandbox_with_two_choices(
    members: Path, sandbox_image: str
) -> None:
    config = write_config(members, backend="docker")
    with serving(config, members / "log.db") as (url, store):
        reply = client(url).chat.completions.create(model="beta", messages=_stub_message(), n=2)
    first, second = (c.message.content or "" for c in reply.choices)
    assert run_function(first, "add")(40, 2) == 42
    assert "sum((a, b))" in first
    # The next distinct candidate by visible pass rate: a failing one, said so after it.
    assert run_function(second, "add")(40, 2) != 42
    assert "unsolved" not in first and "visible tests" in second
    info = (reply.model_extra or {})["codeens"]
    assert info["strategy"] == "vote" and info["members"] == ["beta"]
    run = store.run(info["run_id"])
    assert run is not None and json.loads(run.models_json) == ["beta"]
    assert {e.backend for e in store.executions(run_id=run.id)} == {"docker"}


def test_plain_chat_per_strategy(members: Path) -> None:
    with serving(write_config(members), members / "log.db") as (url, store):
        ask = client(url).chat.completions.create
        moa = ask(model="codeens-moa", messages=QUESTION)  # type: ignore[arg-type]
        cascade = ask(model="codeens-cascade", messages=QUESTION, n=2)  # type: ignore[arg-type]
        beta = ask(model="beta", messages=QUESTION)  # type: ignore[arg-type]
        runs = {r.id: r for r in store.runs(None)}
    assert moa.choices[0].message.content == AGGREGATED
    info = (moa.model_extra or {})["codeens"]
    assert info["status"] == "unverified" and info["mode"] == "chat"
    assert info["members"] == ["alpha", "beta"] and info["visible_tests"]["total"] == 0
    assert [c.message.content for c in cascade.choices] == [ALPHA_SAYS, ALPHA_SAYS + " (2)"]
    assert (cascade.model_extra or {})["codeens"]["members"] == ["alpha"]
    assert beta.choices[0].message.content == BETA_SAYS
    moa_run = runs[info["run_id"]]
    assert (moa_run.kind, moa_run.status, moa_run.strategy) == ("serve", "unverified", "moa")
    origins = [g.origin for g in store.generations(moa_run.id)]
    assert origins == ["chat:proposer", "chat:proposer", "chat"]
    assert moa.usage is not None and moa.usage.prompt_tokens == 3 * 40


def test_streamed_chat_sends_progress_then_the_answer(members: Path) -> None:
    with serving(write_config(members), members / "log.db") as (url, _store):
        chunks = list(
            client(url).chat.completions.create(
                model="codeens-moa",
                messages=QUESTION,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    first_text = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    assert first_text >= 2
    progress = [(c.model_extra or {}).get("codeens", {}).get("progress") for c in chunks]
    assert progress[0].startswith("accepted as run")
    assert any(p and "aggregating" in p for p in progress[:first_text])
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == AGGREGATED
    # Line by line: as many content chunks as lines.
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 3
    ends = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert (ends[0].model_extra or {})["codeens"]["status"] == "unverified"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_streamed_stub_reports_the_pipeline(members: Path) -> None:
    with serving(write_config(members), members / "log.db") as (url, _store):
        chunks = list(
            client(url).chat.completions.create(
                model="codeens", messages=_stub_message(), stream=True
            )
        )
    progress = [(c.model_extra or {}).get("codeens", {}).get("progress") for c in chunks]
    assert any(p and "generating" in p for p in progress)
    assert any(p and "sandbox" in p for p in progress)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert run_function(text, "add")(2, 2) == 4


def test_sampling_parameters_reach_the_members(members: Path) -> None:
    replay(members, "alpha", chat_prompt(QUESTION), [ALPHA_SAYS + " (seed 7)"], seed=7)
    with serving(write_config(members), members / "log.db") as (url, store):
        reply = client(url).chat.completions.create(
            model="alpha",
            messages=QUESTION,  # type: ignore[arg-type]
            temperature=0.2,
            top_p=0.5,
            max_tokens=50,
            seed=7,
            stop=["END"],
        )
        (row,) = store.generations((reply.model_extra or {})["codeens"]["run_id"])
    assert reply.choices[0].message.content == ALPHA_SAYS + " (seed 7)"
    assert row.seed == 7
    assert json.loads(row.params_json) == {
        "temperature": 0.2, "top_p": 0.5, "max_tokens": 50, "stop": ["END"]
    }  # fmt: skip
