"""The chat completion request as the server accepts it: pydantic models that forbid
unknown fields, and one function turning a body into a request or a 400 naming the field.

The official ``openai`` client sends only the parameters a caller gives, so every field
here is one a caller chose. Standard OpenAI fields codeens cannot honour (tools, logprobs,
penalties, response formats...) are refused by name rather than silently ignored.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codeens.serve.errors import ApiError


class TextPart(BaseModel):
    """A text part of a message's content (image and audio parts are not supported)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "developer", "user", "assistant"]
    content: str | tuple[TextPart, ...]
    name: str | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    include_usage: bool = False


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``: the fields codeens honours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    messages: tuple[Message, ...] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    seed: int | None = None
    stop: str | tuple[str, ...] | None = Field(None)
    user: str | None = None

    @property
    def stops(self) -> tuple[str, ...] | None:
        if self.stop is None:
            return None
        return (self.stop,) if isinstance(self.stop, str) else self.stop

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def last_user_text(self) -> str:
        users = [m for m in self.messages if m.role == "user"]
        return users[-1].text if users else ""


def parse_request(body: bytes, max_n: int) -> ChatRequest:
    """The request in ``body``; ApiError 400 with one line naming what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    stops = request.stops or ()
    if len(stops) > 4 or any(not s for s in stops):
        raise ApiError(400, "stop: at most 4 non-empty sequences", param="stop")
    if request.n > max_n:
        raise ApiError(400, f"n: at most {max_n} choices per request (got {request.n})", param="n")
    return request


def _invalid(exc: ValidationError) -> ApiError:
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(p) for p in error["loc"]]
    # Union members and literal tags add type names to the location; keep the field path.
    where = ".".join(p for p in loc if p not in {"str", "tuple[TextPart, ...]"})
    if error["type"] == "extra_forbidden":
        if len(loc) == 1:
            known = ", ".join(ChatRequest.model_fields)
            message = f"unsupported field {where!r} (codeens serve accepts: {known})"
        else:
            message = f"unsupported field {where!r}"
        return ApiError(400, message, param=where, code="unsupported_field")
    if error["type"] == "missing":
        return ApiError(400, f"missing field {where!r}", param=where)
    return ApiError(400, f"{where}: {error['msg']}", param=where)
