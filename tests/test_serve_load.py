"""A bounded load test: 100 requests from 8 client threads against 2 running + 2 queued.

Every request must get a 200 or a clean 429 (OpenAI error shape, Retry-After), and the log
must hold exactly one run per request: the accepted ones with their outcome, the turned
away ones as ``rejected``. The figures print with ``pytest -s``.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import openai
from serve_fixtures import (
    ADD,
    CORRECT,
    WRONG_MINUS,
    chat_prompt,
    client,
    replay,
    serving,
    stub_prompt,
    write_config,
)

REQUESTS, CLIENTS = 100, 8
HELLO = [{"role": "user", "content": "hello"}]
STUB = [{"role": "user", "content": f"```python\n{ADD}```"}]


def test_load_every_request_is_answered_or_turned_away_and_logged(tmp_path: Path) -> None:
    replay(tmp_path, "alpha", stub_prompt(), [CORRECT, WRONG_MINUS, CORRECT, CORRECT])
    replay(tmp_path, "beta", stub_prompt(), [WRONG_MINUS, CORRECT, CORRECT, CORRECT])
    replay(tmp_path, "alpha", chat_prompt(HELLO), ["hi"])
    config = write_config(tmp_path)
    outcomes: list[tuple[int, float, str]] = []  # status, seconds, run id ("" for 429)
    lock = threading.Lock()
    todo = iter(range(REQUESTS))

    def work(url: str) -> None:
        ask = client(url, timeout=120).chat.completions.create
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            # Every other request has a stub: solved in the sandbox; the rest is chat.
            model, messages = ("codeens-vote", STUB) if i % 2 else ("alpha", HELLO)
            started = time.monotonic()
            try:
                reply = ask(model=model, messages=messages)  # type: ignore[arg-type]
                got = (
                    200,
                    time.monotonic() - started,
                    (reply.model_extra or {})["codeens"]["run_id"],
                )
            except openai.RateLimitError as exc:
                assert int(exc.response.headers["retry-after"]) >= 1
                assert exc.response.json()["error"]["code"] == "queue_full"
                got = (429, time.monotonic() - started, "")
            with lock:
                outcomes.append(got)

    db = tmp_path / "log.db"
    with serving(config, db, max_concurrent=2, queue=2) as (url, store):
        started = time.monotonic()
        threads = [threading.Thread(target=work, args=(url,)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
        runs = [r for r in store.runs(None) if r.kind == "serve"]

    answered = [o for o in outcomes if o[0] == 200]
    refused = [o for o in outcomes if o[0] == 429]
    latencies = sorted(o[1] for o in answered)
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * len(latencies)) - 1)]
    print(
        f"\nserve load: {REQUESTS} requests, {CLIENTS} client threads, 2 running + 2 queued: "
        f"{len(answered)} answered (200), {len(refused)} turned away (429), "
        f"wall {wall:.1f} s, latency of answered p50 {p50 * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms; {len(runs)} serve runs in the log"
    )
    assert len(outcomes) == REQUESTS and len(answered) + len(refused) == REQUESTS
    assert answered, "nothing was answered"
    by_status: dict[str, int] = {}
    for run in runs:
        by_status[run.status] = by_status.get(run.status, 0) + 1
    assert len(runs) == REQUESTS
    assert by_status.get("rejected", 0) == len(refused)
    assert {r.id for r in runs if r.status != "rejected"} == {o[2] for o in answered}
    assert set(by_status) <= {"solved", "unverified", "rejected"}, by_status
