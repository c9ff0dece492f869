"""The OpenAI-compatible backend against real servers on 127.0.0.1.

(a) llama-cpp-python's own OpenAI server running SmolLM2; (b) a small fault-injecting
server written here, which plays a script of failures and counts the requests it sees.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from models_fixtures import ADD_PROMPT

from codeens.models import ModelConfig, ModelUnavailable, SamplingParams
from codeens.models.base import Completion
from codeens.models.llamacpp import LlamaCpp
from codeens.models.openai_compat import EndpointError, OpenAICompat

pytest_plugins = ["models_fixtures"]

SAMPLED = SamplingParams(temperature=0.8, max_tokens=24)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def openai_model(base_url: str, chat: bool = True, **options: Any) -> OpenAICompat:
    return OpenAICompat(
        ModelConfig(
            name="remote",
            backend="openai",
            location="served-model",
            chat=chat,
            options={"base_url": base_url, **options},
        )
    )


# --- (a) llama-cpp-python's server -----------------------------------------------------


@pytest.fixture(scope="session")
def llama_server(smollm2_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free port; its base URL, stopped afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_file)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024"]
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    base_url = f"http://127.0.0.1:{port}/v1"
    # Its log goes to a file: an unread pipe fills up with llama.cpp's loading chatter.
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {tail}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer within 60 s")
            time.sleep(0.2)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_real_server_chat(llama_server: str) -> None:
    model = openai_model(llama_server)
    try:
        out = model.complete(ADD_PROMPT, 2, SAMPLED, seed=4)
        again = model.complete(ADD_PROMPT, 2, SAMPLED, seed=4)
    finally:
        model.close()
    assert len(out) == 2
    for done in out:
        assert done.text.strip()
        assert done.input_tokens > 10 and 0 < done.output_tokens <= 24
        # llama.cpp's server ignores n: one choice per request, seeds seed + i.
        assert done.extra["choices_in_request"] == 1
    assert [c.extra["seed"] for c in out] == [4, 5]
    assert [c.text for c in out] == [c.text for c in again]


def test_real_server_completion(llama_server: str) -> None:
    model = openai_model(llama_server, chat=False)
    try:
        [done] = model.complete(ADD_PROMPT, 1, SamplingParams(temperature=0, max_tokens=16), 0)
    finally:
        model.close()
    assert done.text.strip() and not done.text.startswith("def add")
    assert done.input_tokens > 5 and 0 < done.output_tokens <= 16


def test_real_server_matches_in_process_greedy(llama_server: str, smollm2: LlamaCpp) -> None:
    """The same GGUF, the same template, greedy: over HTTP or in process, the same answer.

    llama.cpp's server applies repeat_penalty 1.1 by default, which changes even greedy
    decoding (it stopped after the code block, 17 tokens, where the in-process model went
    on); ``extra_body`` turns it off so that both sample from the same distribution.
    """
    greedy = SamplingParams(temperature=0, max_tokens=24)
    model = openai_model(llama_server, extra_body={"repeat_penalty": 1.0})
    try:
        [remote] = model.complete(ADD_PROMPT, 1, greedy, seed=0)
    finally:
        model.close()
    [local] = smollm2.complete(ADD_PROMPT, 1, greedy, seed=0)
    assert remote.text == local.text
    assert (remote.input_tokens, remote.output_tokens) == (local.input_tokens, local.output_tokens)


# --- (b) a fault-injecting server --------------------------------------------------------


class FaultServer:
    """Answers like an OpenAI server after playing ``script``, one fault per request.

    Faults: "429" (with Retry-After), "500", "503", "401", "slow" (answers after the
    client's timeout), "malformed" (200 with broken JSON), "drop" (closes the connection
    without answering), "n400" (400 when n > 1 is asked). "ok" and anything past the script
    answer properly, after ``delay`` seconds. Every sleep is bounded.
    """

    def __init__(self, script: list[str], delay: float = 0.0, retry_after: str = "0.3") -> None:
        self.script = script
        self.delay = delay
        self.retry_after = retry_after
        self.attempts = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[tuple[str, dict[str, Any], str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    index = server.attempts
                    server.attempts += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.requests.append((self.path, body, self.headers["Authorization"]))
                fault = server.script[index] if index < len(server.script) else "ok"
                try:
                    self.act(fault, body, index)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a slow answer
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def act(self, fault: str, body: dict[str, Any], index: int) -> None:
                if fault == "429":
                    self.send(429, {"error": {"message": "slow down"}}, server.retry_after)
                elif fault in ("500", "503"):
                    self.send(int(fault), {"error": {"message": "overloaded"}})
                elif fault == "401":
                    self.send(401, {"error": {"message": "Incorrect API key provided"}})
                elif fault == "n400" and body.get("n", 1) > 1:
                    self.send(400, {"error": {"message": "n must be 1"}})
                elif fault == "malformed":
                    self.send_raw(200, b'{"choices": [ {"text": "cut off')
                elif fault == "drop":
                    self.close_connection = True  # no status line at all
                else:
                    time.sleep(1.5 if fault == "slow" else server.delay)
                    self.send(200, answer(self.path, body, index))

            def send(self, status: int, data: Any, retry_after: str | None = None) -> None:
                headers = {"Retry-After": retry_after} if retry_after else {}
                self.send_raw(status, json.dumps(data).encode(), headers)

            def send_raw(
                self, status: int, payload: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def answer(path: str, body: dict[str, Any], index: int) -> dict[str, Any]:
    """A well-formed answer with ``n`` choices; the texts say which request they came from."""
    choices: list[dict[str, Any]] = []
    for i in range(int(body.get("n", 1))):
        text = f"answer {index}.{i} seed {body.get('seed')}"
        if path.endswith("/chat/completions"):
            choices.append({"index": i, "message": {"role": "assistant", "content": text}})
        else:
            choices.append({"index": i, "text": text})
        choices[-1]["finish_reason"] = "stop"
    usage = {"prompt_tokens": 7, "completion_tokens": 5 * len(choices), "total_tokens": 0}
    return {"id": "x", "object": "chat.completion", "choices": choices, "usage": usage}


FAST_RETRY = {"backoff_s": 0.01, "max_backoff_s": 2.0, "timeout_s": 0.5}


def _timed(server: FaultServer, seed: int = 0, **options: float) -> tuple[Completion, float]:
    """One sampled completion through ``server``: what came back and the seconds it took."""
    model = openai_model(server.base_url, **options)
    try:
        started = time.monotonic()
        [done] = model.complete(ADD_PROMPT, 1, SAMPLED, seed=seed)
        return done, time.monotonic() - started
    finally:
        model.close()
        server.close()


@pytest.mark.parametrize("fault", ["429", "500", "slow", "malformed", "drop"])
def test_transient_fault_is_retried(fault: str) -> None:
    server = FaultServer([fault])
    done, waited = _timed(server, seed=9, **FAST_RETRY)
    assert server.attempts == 2
    assert done.text == "answer 1.0 seed 9"
    assert (done.input_tokens, done.output_tokens) == (7, 5)
    if fault == "429":
        assert waited >= 0.3  # Retry-After honoured, not just the 10 ms backoff


def test_backoff_doubles_with_equal_jitter() -> None:
    server = FaultServer(["500", "500"])
    _, waited = _timed(server, backoff_s=0.2, max_backoff_s=2.0, timeout_s=0.5)
    assert server.attempts == 3
    # Waits of 0.1-0.2 s, then 0.2-0.4 s: at least the fixed halves, at most the full ones.
    assert 0.3 <= waited < 0.6 + 0.5


def test_retry_after_is_capped_by_max_backoff() -> None:
    server = FaultServer(["429"], retry_after="30")
    _, waited = _timed(server, **{**FAST_RETRY, "max_backoff_s": 0.2})
    assert server.attempts == 2
    assert 0.2 <= waited < 1.5


def test_unauthorized_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEENS_TEST_KEY", "sk-test")
    server = FaultServer(["401"] * 5)
    model = openai_model(server.base_url, api_key_env="CODEENS_TEST_KEY", **FAST_RETRY)
    try:
        with pytest.raises(EndpointError) as caught:
            model.complete(ADD_PROMPT, 1, SAMPLED, seed=0)
    finally:
        model.close()
        server.close()
    message = str(caught.value)
    assert "\n" not in message
    assert "HTTP 401: Incorrect API key provided" in message and "$CODEENS_TEST_KEY" in message
    assert caught.value.status == 401
    assert server.attempts == 1
    assert server.requests[0][2] == "Bearer sk-test"


def test_missing_key_is_reported_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEENS_NO_SUCH_KEY", raising=False)
    server = FaultServer([])
    model = openai_model(server.base_url, api_key_env="CODEENS_NO_SUCH_KEY")
    try:
        assert model.available() == (
            False,
            f"$CODEENS_NO_SUCH_KEY is not set (API key for {server.base_url})",
        )
        with pytest.raises(ModelUnavailable, match=r"CODEENS_NO_SUCH_KEY is not set"):
            model.complete(ADD_PROMPT, 1, SAMPLED, seed=0)
    finally:
        model.close()
        server.close()
    assert server.attempts == 0


def test_retries_exhausted_is_one_clear_line() -> None:
    server = FaultServer(["503"] * 10)
    model = openai_model(server.base_url, **{**FAST_RETRY, "max_retries": 2})
    try:
        with pytest.raises(ModelUnavailable) as caught:
            model.complete(ADD_PROMPT, 1, SAMPLED, seed=0)
    finally:
        model.close()
        server.close()
    assert server.attempts == 3
    assert str(caught.value) == (
        f"{server.base_url}/chat/completions: gave up after 3 attempts; "
        "last error: HTTP 503: overloaded"
    )


def test_max_concurrency_is_shared_by_threads_and_instances() -> None:
    server = FaultServer([], delay=0.15)
    models = [openai_model(server.base_url, max_concurrency=2) for _ in range(2)]
    errors: list[BaseException] = []

    def call(model: OpenAICompat, seed: int) -> None:
        try:
            model.complete(ADD_PROMPT, 1, SAMPLED, seed=seed)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(models[i % 2], i)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        for model in models:
            model.close()
        server.close()
    assert not errors
    assert server.attempts == 8
    assert server.max_in_flight == 2


def test_n_samples_in_one_request_with_exact_usage() -> None:
    server = FaultServer([])
    model = openai_model(server.base_url)
    try:
        out = model.complete(ADD_PROMPT, 3, SAMPLED, seed=2)
    finally:
        model.close()
        server.close()
    assert server.attempts == 1 and server.requests[0][1]["n"] == 3
    assert [c.text for c in out] == [f"answer 0.{i} seed 2" for i in range(3)]
    assert sum(c.input_tokens for c in out) == 7  # the prompt is billed once
    assert sum(c.output_tokens for c in out) == 15


def test_server_rejecting_n_is_asked_one_at_a_time() -> None:
    server = FaultServer(["n400"] * 20)
    model = openai_model(server.base_url)
    try:
        out = model.complete(ADD_PROMPT, 3, SAMPLED, seed=2)
        assert server.attempts == 4  # the rejected batch, then one request per sample
        assert [c.text for c in out] == [f"answer {i + 1}.0 seed {2 + i}" for i in range(3)]
        model.complete(ADD_PROMPT, 2, SAMPLED, seed=0)
        assert server.attempts == 6  # remembered: no second batch attempt
    finally:
        model.close()
        server.close()


def test_base_model_uses_the_completions_endpoint() -> None:
    server = FaultServer([])
    model = openai_model(server.base_url, chat=False)
    try:
        [done] = model.complete(ADD_PROMPT, 1, SamplingParams(stop=("\n",)), seed=1)
    finally:
        model.close()
        server.close()
    path, body, _ = server.requests[0]
    assert path == "/v1/completions"
    assert body["prompt"] == ADD_PROMPT.prefix and "messages" not in body
    assert body["stop"] == ["\n"] and body["model"] == "served-model"
    assert done.text == "answer 0.0 seed 1"


def test_greedy_asks_once() -> None:
    server = FaultServer([])
    model = openai_model(server.base_url)
    try:
        out = model.complete(ADD_PROMPT, 3, SamplingParams(temperature=0), seed=1)
    finally:
        model.close()
        server.close()
    assert server.attempts == 1 and "n" not in server.requests[0][1]
    assert len(out) == 3 and len({c.text for c in out}) == 1
    assert [c.output_tokens for c in out] == [5, 0, 0]
