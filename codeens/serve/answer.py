"""A finished answer and its OpenAI-shaped JSON: the completion, and the stream's chunks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Answer:
    """What a request got: one text per choice and what ``codeens`` says about them.

    ``status`` is ``solved``/``unsolved``/``unverified`` as for ``codeens solve``
    (plain chat is always ``unverified``), or ``timeout`` when the deadline passed before
    an answer; ``timed_out`` says the deadline cut the work short either way.
    """

    run_id: str
    mode: str  # "solve": stubs were found and verified; "chat": plain text
    status: str
    strategy: str
    members: tuple[str, ...]
    contents: tuple[str, ...]
    tests_passed: int = 0
    tests_total: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    timed_out: bool = False

    def codeens(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "strategy": self.strategy,
            "members": list(self.members),
            "visible_tests": {"passed": self.tests_passed, "total": self.tests_total},
            "cost": self.cost,
            "timed_out": self.timed_out,
        }

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def completion_id(run_id: str) -> str:
    return f"chatcmpl-{run_id}"


def completion(answer: Answer, model: str, created: int | None = None) -> dict[str, Any]:
    """The ``chat.completion`` object of a non-streamed request."""
    return {
        "id": completion_id(answer.run_id),
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
            for i, text in enumerate(answer.contents)
        ],
        "usage": answer.usage(),
        "codeens": answer.codeens(),
    }


@dataclass(frozen=True)
class ChunkMaker:
    """Builds the ``chat.completion.chunk`` objects of one streamed request."""

    run_id: str
    model: str
    created: int

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": completion_id(self.run_id),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def progress(self, text: str, n: int, first: bool = False) -> dict[str, Any]:
        """Work in progress: an empty delta (the role on the first) and what is happening."""
        delta: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
        choices = [{"index": i, "delta": delta, "finish_reason": None} for i in range(n)]
        return self.chunk(choices, codeens={"run_id": self.run_id, "progress": text})

    def answer(self, answer: Answer, include_usage: bool) -> Iterator[dict[str, Any]]:
        """The answer's text line by line per choice, then each choice's end with the
        ``codeens`` object, then (when asked) the usage in a chunk with no choices."""
        for index, text in enumerate(answer.contents):
            for piece in text.splitlines(keepends=True) or [""]:
                yield self.chunk(
                    [{"index": index, "delta": {"content": piece}, "finish_reason": None}]
                )
        ends = [
            {"index": i, "delta": {}, "finish_reason": "stop"} for i in range(len(answer.contents))
        ]
        yield self.chunk(ends, codeens=answer.codeens())
        if include_usage:
            yield self.chunk([], usage=answer.usage())
