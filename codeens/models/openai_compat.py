"""Any OpenAI-compatible HTTP endpoint: OpenAI, vLLM's server, llama.cpp's server, ...

Chat models POST ``{base_url}/chat/completions``; base models POST ``{base_url}/completions``
with ``prompt.prefix``. ``n`` samples go in one request when the server honours ``n``;
servers that return fewer choices, or reject ``n`` with 400/422, are remembered and asked
one sample per request, sample ``i`` with seed ``seed + i``.

Transient failures are retried by tenacity with exponential backoff and equal jitter
(``Retry-After`` is honoured): 408, 429, 5xx, timeouts, connection errors and bodies that
are not the JSON expected. Any other 4xx fails at once with one line
(:class:`EndpointError`). What the process learns about a server (its cap on requests in
flight, the models that ignore ``n``) is one :class:`Endpoint`, shared by every thread and
instance that names the same ``base_url``.

httpx rather than urllib: one pooled, thread-safe client per model with separate connect and
read timeouts, and distinct exception types for timeouts and transport errors, which the
retry policy needs. httpx and tenacity are imported only when a request is made.
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from codeens.models.base import (
    Completion,
    Model,
    ModelConfig,
    ModelUnavailable,
    Prompt,
    SamplingParams,
)

if TYPE_CHECKING:
    from types import TracebackType

    import httpx
    import tenacity


class EndpointError(ModelUnavailable):
    """The endpoint refused the request with a status that retrying will not change."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _Retry(Exception):
    """A transient failure: wait ``delay`` seconds (None: backoff) and try again."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class Slots(Protocol):
    """Requests in flight to one server: entered around each request."""

    def __enter__(self) -> object: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> object: ...


def _semaphore(base_url: str, size: int) -> Slots:
    return threading.BoundedSemaphore(size)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One server as this process knows it: requests in flight are capped by ``slots``;
    ``single_n`` holds the model ids it serves that do not honour ``n`` (asked one sample
    per request from then on)."""

    base_url: str
    slots: Slots
    single_n: set[str] = dataclasses.field(default_factory=set)


class Endpoints:
    """The endpoints of one process, by base URL.

    A cap on requests in flight protects the server, so it belongs to the server, not to a
    model instance: every instance naming the same ``base_url`` (two configs served by one
    vLLM, or the same config built twice) draws from one semaphore. The first instance
    sets its size; later ``max_concurrency`` values for that URL are ignored.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, Endpoint] = {}
        # Where the slots come from: a process's own semaphore, or one shared by the
        # processes of a cluster (`codeens eval --ray` swaps this in on its workers).
        self.slots_factory: Callable[[str, int], Slots] = _semaphore

    def get(self, base_url: str, max_concurrency: int) -> Endpoint:
        with self._lock:
            endpoint = self._known.get(base_url)
            if endpoint is None:
                slots = self.slots_factory(base_url, max_concurrency)
                endpoint = self._known[base_url] = Endpoint(base_url, slots)
            return endpoint


def parse_choice(choice: dict[str, Any], chat: bool) -> tuple[str, str, float | None]:
    """(text, finish_reason, mean token logprob) of one OpenAI-style choice."""
    message = choice.get("message") or {}
    text = (message.get("content") if chat else choice.get("text")) or ""
    logprobs = choice.get("logprobs") or {}
    values: list[Any] = []
    if isinstance(logprobs, dict):
        if isinstance(logprobs.get("content"), list):
            values = [item.get("logprob") for item in logprobs["content"]]
        elif isinstance(logprobs.get("token_logprobs"), list):
            values = list(logprobs["token_logprobs"])
    numbers = []
    for value in values:  # llama-cpp-python hands back numpy floats
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            continue
    mean = sum(numbers) / len(numbers) if numbers else None
    return str(text), str(choice.get("finish_reason") or ""), mean


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAICompat(Model):
    """A model served over the OpenAI API."""

    backend = "openai"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        base_url: str = Field(
            description="API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1."
        )
        api_key_env: str | None = Field(
            None, description="Environment variable holding the API key; none: no key sent."
        )
        model: str | None = Field(
            None, description="Served model id; default the config's location, else its name."
        )
        timeout_s: float = Field(120.0, gt=0, description="Per-request timeout in seconds.")
        max_retries: int = Field(4, ge=0, description="Retries after the first attempt.")
        backoff_s: float = Field(1.0, ge=0, description="First backoff; doubles per retry.")
        max_backoff_s: float = Field(60.0, ge=0, description="Cap on one wait.")
        max_concurrency: int = Field(
            8, ge=1, description="Requests in flight per endpoint (first setting wins)."
        )
        batch_n: bool = Field(True, description="Ask for n choices in one request.")
        logprobs: bool = Field(False, description="Ask for token logprobs (mean reported).")
        extra_body: dict[str, Any] = Field(
            default_factory=dict,
            description="Fields added to every request, for server-specific knobs such as "
            "llama.cpp's repeat_penalty or vLLM's top_k.",
        )

    options: Options
    # Owned by the backend, one per process: see Endpoints for why not per instance.
    endpoints: ClassVar[Endpoints] = Endpoints()

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.base_url = self.options.base_url.rstrip("/")
        self.model_id = self.options.model or config.location or config.name
        self.endpoint = self.endpoints.get(self.base_url, self.options.max_concurrency)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        env = self.options.api_key_env
        if env and not os.environ.get(env):
            return False, f"${env} is not set (API key for {self.base_url})"
        return True, ""

    def complete(
        self, prompt: Prompt, n: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        chat = self.config.chat
        path = "/chat/completions" if chat else "/completions"
        body: dict[str, Any] = {
            "model": self.model_id,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        body.update(self.options.extra_body)
        if chat:
            body["messages"] = [dict(m) for m in prompt.messages]
            if self.options.logprobs:
                body["logprobs"] = True
        else:
            body["prompt"] = prompt.prefix
            if self.options.logprobs:
                body["logprobs"] = 1
        greedy = params.temperature == 0.0
        want = 1 if greedy else n
        single_n = self.endpoint.single_n
        out: list[Completion] = []
        n_rejected = False
        if want > 1 and self.options.batch_n and self.model_id not in single_n:
            try:
                data = self._post(path, {**body, "n": want, "seed": seed})
            except EndpointError as exc:
                if exc.status not in (400, 422):
                    raise
                n_rejected = True  # the same request without n tells whether n was the cause
            else:
                out = self._completions(data, want, seed)
                if len(out) < want:
                    single_n.add(self.model_id)
        for i in range(len(out), want):
            data = self._post(path, {**body, "seed": seed + i})
            out.extend(self._completions(data, 1, seed + i))
            if n_rejected:
                single_n.add(self.model_id)
        if greedy and n > 1:
            copy = dataclasses.replace(
                out[0], input_tokens=0, output_tokens=0, extra={**out[0].extra, "copy_of": 0}
            )
            out.extend([copy] * (n - 1))
        return out

    def _completions(self, data: dict[str, Any], want: int, seed: int) -> list[Completion]:
        """Completions from one response; usage is split so that the sums are exact."""
        choices = sorted(data["choices"], key=lambda c: int(c.get("index", 0)))[:want]
        parsed = [parse_choice(c, self.config.chat) for c in choices]
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        output_tokens = _split(int(usage.get("completion_tokens") or 0), [p[0] for p in parsed])
        return [
            Completion(
                text=text,
                # One prompt is billed once, however many choices it has.
                input_tokens=prompt_tokens if i == 0 else 0,
                output_tokens=output_tokens[i],
                mean_logprob=mean,
                finish_reason=finish,
                extra={"seed": seed, "choices_in_request": len(parsed)},
            )
            for i, (text, finish, mean) in enumerate(parsed)
        ]

    def _client_for(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                try:
                    import httpx
                except ImportError as exc:
                    raise ModelUnavailable("httpx is not installed (pip install httpx)") from exc
                headers = {"Content-Type": "application/json"}
                env = self.options.api_key_env
                if env:
                    key = os.environ.get(env)
                    if not key:
                        raise ModelUnavailable(f"${env} is not set (API key for {self.base_url})")
                    headers["Authorization"] = f"Bearer {key}"
                self._client = httpx.Client(
                    headers=headers, timeout=httpx.Timeout(self.options.timeout_s)
                )
            return self._client

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import tenacity

        url = self.base_url + path
        client = self._client_for()
        attempts = self.options.max_retries + 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retry),
            reraise=True,
        )
        try:
            data: dict[str, Any] = retrying(self._attempt, client, url, body)
        except _Retry as last:
            raise ModelUnavailable(
                f"{url}: gave up after {attempts} attempts; last error: {last}"
            ) from last
        return data

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's ``Retry-After`` if it sent one, else exponential backoff with equal
        jitter (half of ``backoff_s * 2**retry`` fixed, half random); never over the cap."""
        import tenacity

        failure = state.outcome.exception() if state.outcome else None
        delay = failure.delay if isinstance(failure, _Retry) else None
        if delay is None:
            half, cap = self.options.backoff_s / 2, self.options.max_backoff_s / 2
            fixed = tenacity.wait_exponential(multiplier=half, max=cap)
            jitter = tenacity.wait_random_exponential(multiplier=half, max=cap)
            delay = fixed(state) + jitter(state)
        return min(delay, self.options.max_backoff_s)

    def _attempt(self, client: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            with self.endpoint.slots:
                response = client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retry(f"timed out after {self.options.timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise _Retry(f"connection error: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 408 or status == 429 or status >= 500:
            raise _Retry(
                f"HTTP {status}: {_message(response)}",
                retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            hint = ""
            if status in (401, 403):
                env = self.options.api_key_env
                hint = f" (check the key in ${env})" if env else " (set options.api_key_env)"
            raise EndpointError(f"{url} answered HTTP {status}: {_message(response)}{hint}", status)
        try:
            data = response.json()
        except ValueError as exc:
            raise _Retry(f"malformed JSON in HTTP {status} response") from exc
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise _Retry(f"HTTP {status} response has no 'choices' list")
        if not data["choices"]:
            raise _Retry(f"HTTP {status} response has an empty 'choices' list")
        return data

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _message(response: httpx.Response) -> str:
    """The server's error message on one short line."""
    text = response.text
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str):
            text = error
        elif data.get("detail"):
            text = str(data["detail"])
    line = " ".join(text.split())
    return (line[:200] + "...") if len(line) > 200 else (line or response.reason_phrase)


def _split(total: int, texts: list[str]) -> list[int]:
    """Share ``total`` tokens between texts in proportion to their length; sums to total."""
    if len(texts) == 1:
        return [total]
    weights = [max(len(t), 1) for t in texts]
    shares = [total * w // sum(weights) for w in weights]
    for i in range(total - sum(shares)):
        shares[i % len(shares)] += 1
    return shares
