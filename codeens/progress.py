"""A progress line on stderr while models load, generate and run; silent when not wanted."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Progress:
    """A rich status spinner when stderr is a terminal and not ``--quiet``; else nothing."""

    def __init__(self, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = enabled
        self._status: Any = None
        self._console: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console

            self._console = Console(stderr=True)
            self._status = self._console.status("starting")
            self._status.start()
        return self

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def note(self, text: str) -> None:
        """A line that stays (a model that failed, a stage decided)."""
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
