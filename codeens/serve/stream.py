"""Server-sent events of a streamed request: progress while the ensemble works, then the
answer, then ``data: [DONE]``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any

from codeens.serve.answer import Answer, ChunkMaker
from codeens.serve.errors import ApiError, error_body


def event(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


class ProgressFeed:
    """Progress lines from the worker thread, delivered in order to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(self, text: str | None) -> None:
        """From any thread; None marks the end of the work."""
        self._loop.call_soon_threadsafe(self.queue.put_nowait, text)


async def events(
    future: Future[Answer],
    feed: ProgressFeed,
    maker: ChunkMaker,
    n: int,
    include_usage: bool,
    wait_s: float,
    late: Callable[[], Answer],
) -> AsyncIterator[str]:
    """The stream: an opening chunk, one chunk per progress line, the answer's chunks.
    After ``wait_s`` without the answer, ``late()`` is the answer (the work goes on and
    completes its run row)."""
    future.add_done_callback(lambda _f: feed.put(None))
    yield event(maker.progress(f"accepted as run {maker.run_id}", n, first=True))
    end = time.monotonic() + wait_s
    answer: Answer | None = None
    while answer is None:
        try:
            line = await asyncio.wait_for(feed.queue.get(), max(0.0, end - time.monotonic()))
        except TimeoutError:
            answer = late()
            break
        if line is not None:
            yield event(maker.progress(line, n))
            continue
        try:
            answer = future.result()
        except ApiError as exc:
            yield event(exc.body())
            yield event("[DONE]")
            return
        except Exception as exc:
            yield event(error_body(f"internal error: {exc}", "server_error"))
            yield event("[DONE]")
            return
    for chunk in maker.answer(answer, include_usage):
        yield event(chunk)
    yield event("[DONE]")
