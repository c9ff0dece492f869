"""Running the app under uvicorn: in the foreground (the command) or in a thread (tests,
or a program that embeds the server), announcing the address it really bound."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    """A uvicorn server that says where it listens once the socket is bound."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[str], None]) -> None:
        super().__init__(config)
        self.announce = announce
        self.url = ""

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self.url = f"http://{host}:{port}"
            self.announce(self.url)


def _config(app: Any, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")


def serve(app: Any, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM); accepted requests finish first."""
    _Server(_config(app, host, port, "info"), announce).run()


@contextmanager
def running(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a thread while the block runs; yields the base URL (``http://host:port``)."""
    ready = threading.Event()
    server = _Server(_config(app, host, port, "warning"), lambda _url: ready.set())
    thread = threading.Thread(target=server.run, name="codeens-serve-http", daemon=True)
    thread.start()
    while not ready.wait(0.05):
        if not thread.is_alive():
            raise RuntimeError(f"the server did not start on {host}:{port}")
    try:
        yield server.url
    finally:
        server.should_exit = True
        thread.join(timeout=60)
