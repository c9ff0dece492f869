"""Progress of a request as events: the pipeline's :class:`Progress` reports, forwarded to
a listener (the stream of a streamed request) instead of a terminal spinner."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from codeens.progress import Progress

Listener = Callable[[str], None]


class ForwardProgress(Progress):
    """Sends each status update and note to ``listen``; repeated lines are sent once."""

    def __init__(self, listen: Listener | None = None) -> None:
        # Enabled, so that a strategy's notes come here rather than to the server's stderr.
        super().__init__(enabled=True)
        self._listen = listen
        self._last = ""

    def __enter__(self) -> ForwardProgress:
        return self

    def update(self, text: str) -> None:
        if self._listen is not None and text != self._last:
            self._last = text
            self._listen(text)

    def note(self, text: str) -> None:
        self.update(text)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
