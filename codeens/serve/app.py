"""The HTTP routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/chat/completions``.

Checks run in this order, each ending the request with its error in the OpenAI shape:
the API key (401), the body size (413), JSON and fields (400), the model name (404), then
the queue (429, logged as a ``rejected`` run). An accepted request is always a run row.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from codeens.errors import first_line
from codeens.serve.admission import Admission
from codeens.serve.answer import Answer, ChunkMaker, completion
from codeens.serve.catalog import route, served_names
from codeens.serve.engine import Engine
from codeens.serve.errors import ApiError, error_body
from codeens.serve.events import ForwardProgress
from codeens.serve.guard import check_key, read_body
from codeens.serve.job import Job
from codeens.serve.protocol import parse_request
from codeens.serve.runs import unanswered_run
from codeens.serve.sampling import sampled_members, seeded
from codeens.serve.settings import ServeSettings
from codeens.serve.stream import ProgressFeed, events


def create_app(engine: Engine, settings: ServeSettings, key: str | None) -> FastAPI:
    """The app; accepted work finishes before it shuts down (the engine stays open)."""
    admission = Admission(settings.max_concurrent, settings.queue)
    started = int(time.time())
    # After the budget, the strategy still runs what it has in the sandbox.
    grace_s = 2 * engine.config.sandbox.timeout + 5

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(admission.close)

    app = FastAPI(title="codeens", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> Response:
        return JSONResponse(exc.body(), exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error"), exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> Response:
        return JSONResponse(error_body(f"internal error: {first_line(exc)}", "server_error"), 500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        running, waiting = admission.counts()
        return {"status": "ok", "running": running, "waiting": waiting}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_key(request, key)
        data = [
            {"id": name, "object": "model", "created": started, "owned_by": "codeens"}
            for name in served_names(engine.config)
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        check_key(request, key)
        chat = parse_request(await read_body(request, settings.max_body_bytes), settings.max_n)
        asked = route(engine.config, chat.model)
        members = sampled_members(chat, asked.members)
        config = seeded(chat, engine.config)
        run_id = uuid.uuid4().hex[:12]
        accepted_at = time.monotonic()
        feed = ProgressFeed(asyncio.get_running_loop()) if chat.stream else None
        progress = ForwardProgress(feed.put if feed is not None else None)

        def work() -> Answer:
            left = settings.deadline_s - (time.monotonic() - accepted_at)
            job = Job(run_id, chat, asked, config, members, progress, left)
            return engine.answer(job)

        future = admission.submit(work)
        if future is None:
            retry = admission.retry_after()
            await asyncio.to_thread(
                unanswered_run, engine.shared.store, run_id, chat.model, "rejected", "queue full"
            )
            raise ApiError(
                429,
                f"the server is busy ({admission.capacity} requests accepted); retry in {retry} s",
                kind="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(retry)},
            )
        wait_s = settings.deadline_s + grace_s

        def late() -> Answer:
            # The work still completes its run row; the client is told it ran out of time.
            probe = Job(run_id, chat, asked, config, members, progress, None)
            return engine.late(probe, "the ensemble was still working", log=False)

        if feed is not None:
            maker = ChunkMaker(run_id, chat.model, int(time.time()))
            usage = chat.stream_options is not None and chat.stream_options.include_usage
            stream = events(future, feed, maker, chat.n, usage, wait_s, late)
            return StreamingResponse(stream, media_type="text/event-stream")
        try:
            answer = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), wait_s)
        except TimeoutError:
            answer = late()
        return JSONResponse(completion(answer, chat.model))

    return app
