"""`codeens serve` refusing requests: each error in the OpenAI shape, with its status, and
the queue and the deadline under a request that really takes time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from serve_fixtures import (
    ADD,
    CORRECT,
    HANGS,
    chat_prompt,
    client,
    replay,
    serving,
    stub_prompt,
    write_config,
)

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    replay(tmp_path, "alpha", chat_prompt(HELLO), ["hi"])
    replay(tmp_path, "beta", chat_prompt(HELLO), ["hey"])
    replay(tmp_path, "alpha", stub_prompt(), [CORRECT] * 4)
    return write_config(tmp_path)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "\n" not in body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def test_a_key_is_required_when_configured(config: Path, tmp_path: Path) -> None:
    with serving(config, tmp_path / "log.db", key="s3cret") as (url, store):
        with pytest.raises(openai.AuthenticationError) as wrong:
            client(url, key="guess").chat.completions.create(model="alpha", messages=HELLO)  # type: ignore[arg-type]
        missing = httpx.post(f"{url}/v1/chat/completions", json={"model": "alpha"})
        models = httpx.get(f"{url}/v1/models")
        reply = client(url, key="s3cret").chat.completions.create(model="alpha", messages=HELLO)  # type: ignore[arg-type]
        health = httpx.get(f"{url}/health")
        runs = store.runs(None)
    assert wrong.value.status_code == 401
    assert _error(wrong.value.response)["code"] == "invalid_api_key"
    assert missing.status_code == 401 and "Authorization: Bearer" in _error(missing)["message"]
    assert models.status_code == 401
    assert reply.choices[0].message.content == "hi" and health.status_code == 200
    assert len(runs) == 1  # refused requests are no runs


def test_bad_requests_get_one_clear_400(config: Path, tmp_path: Path) -> None:
    with serving(config, tmp_path / "log.db", max_n=3) as (url, store):
        post = f"{url}/v1/chat/completions"
        malformed = httpx.post(post, content=b'{"model": "alpha", "messages": [', timeout=10)
        not_object = httpx.post(post, json=[1, 2])
        with pytest.raises(openai.BadRequestError) as unknown:
            client(url).chat.completions.create(model="alpha", messages=HELLO, logprobs=True)  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError) as too_many:
            client(url).chat.completions.create(model="alpha", messages=HELLO, n=4)  # type: ignore[arg-type]
        with pytest.raises(openai.NotFoundError) as no_model:
            client(url).chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]
        bad_role = httpx.post(
            post, json={"model": "alpha", "messages": [{"role": "tool", "content": "x"}]}
        )
        hot = httpx.post(post, json={"model": "alpha", "messages": HELLO, "temperature": 3})
        no_path = httpx.get(f"{url}/v2/nothing")
        runs = store.runs(None)
    assert malformed.status_code == 400
    assert _error(malformed)["message"].startswith("the request body is not valid JSON")
    assert not_object.status_code == 400 and "JSON object" in _error(not_object)["message"]
    error = _error(unknown.value.response)
    assert error["message"].startswith("unsupported field 'logprobs' (codeens serve accepts: ")
    assert (error["param"], error["code"]) == ("logprobs", "unsupported_field")
    assert _error(too_many.value.response)["message"] == "n: at most 3 choices per request (got 4)"
    assert _error(no_model.value.response)["code"] == "model_not_found"
    assert "codeens-vote" in _error(no_model.value.response)["message"]
    assert bad_role.status_code == 400 and _error(bad_role)["param"] == "messages.0.role"
    assert hot.status_code == 400 and _error(hot)["param"] == "temperature"
    assert no_path.status_code == 404 and _error(no_path)["message"] == "Not Found"
    assert runs == []


def test_a_body_over_the_limit_gets_413(config: Path, tmp_path: Path) -> None:
    with serving(config, tmp_path / "log.db", max_body_bytes=4096) as (url, _store):
        post = f"{url}/v1/chat/completions"
        big = [{"role": "user", "content": "x" * 5000}]
        declared = httpx.post(post, json={"model": "alpha", "messages": big})

        def chunks() -> Any:  # no Content-Length: the limit holds while reading
            yield b'{"model": "alpha", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}]}'

        streamed = httpx.post(post, content=chunks())
        fits = httpx.post(post, json={"model": "alpha", "messages": HELLO})
    for response in (declared, streamed):
        assert response.status_code == 413
        assert _error(response)["message"] == "the request body is larger than 4096 bytes"
    assert fits.status_code == 200


def test_a_full_queue_gets_429_and_a_late_request_times_out(tmp_path: Path) -> None:
    """One request at a time and one waiting; the running one hangs in the sandbox."""
    replay(tmp_path, "alpha", stub_prompt(), [HANGS] * 4)
    replay(tmp_path, "beta", stub_prompt(), [HANGS] * 4)
    replay(tmp_path, "alpha", chat_prompt(HELLO), ["hi"])
    config = write_config(tmp_path, timeout=2.0)
    stub = [{"role": "user", "content": ADD}]  # a bare file counts too
    with serving(config, tmp_path / "log.db", max_concurrent=1, queue=1, deadline_s=1.0) as (
        url,
        store,
    ):
        streamed: list[tuple[float, Any]] = []
        started = time.monotonic()

        def slow() -> None:
            stream = client(url).chat.completions.create(
                model="codeens", messages=stub, stream=True
            )  # type: ignore[arg-type]
            streamed.extend((time.monotonic() - started, c) for c in stream)

        first = threading.Thread(target=slow)
        first.start()
        while httpx.get(f"{url}/health").json()["running"] < 1:
            time.sleep(0.02)
        waiting: dict[str, Any] = {}
        second = threading.Thread(
            target=lambda: waiting.update(
                reply=client(url).chat.completions.create(model="alpha", messages=HELLO)  # type: ignore[arg-type]
            )
        )
        second.start()
        while httpx.get(f"{url}/health").json()["waiting"] < 1:
            time.sleep(0.02)
        with pytest.raises(openai.RateLimitError) as full:
            client(url).chat.completions.create(model="alpha", messages=HELLO)  # type: ignore[arg-type]
        first.join()
        second.join()
        runs = {r.id: r for r in store.runs(None)}
    assert full.value.status_code == 429
    assert int(full.value.response.headers["retry-after"]) >= 1
    assert _error(full.value.response)["type"] == "rate_limit_error"
    assert sorted(r.status for r in runs.values()) == ["rejected", "timeout", "unsolved"]
    # The waiting request left the queue after its deadline: answered, and logged, as late.
    late = (waiting["reply"].model_extra or {})["codeens"]
    assert late["status"] == "timeout" and runs[late["run_id"]].status == "timeout"
    # The stream's first chunks came while the candidates were still running in the sandbox.
    progress_at = streamed[0][0]
    assert streamed[-1][0] - progress_at > 1.0
    final = [(c.model_extra or {}).get("codeens") for _t, c in streamed if c.choices]
    assert next(f for f in final if f and "status" in f)["status"] == "unsolved"
