"""A bounded queue of work: ``running`` requests at once, ``waiting`` more queued, and
the rest turned away at once (HTTP 429) with an estimate of when to retry."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Admission:
    """Runs accepted work in worker threads; refuses work beyond the bound."""

    def __init__(self, running: int, waiting: int) -> None:
        self.running_limit = running
        self.capacity = running + waiting
        self._executor = ThreadPoolExecutor(running, thread_name_prefix="codeens-serve")
        self._lock = threading.Lock()
        self._accepted = 0  # accepted and not finished: running plus waiting
        self._running = 0
        self._mean_s = 1.0  # moving mean of a request's work, for Retry-After

    def submit(self, work: Callable[[], T]) -> Future[T] | None:
        """``work``'s future, or None when the queue is full. An accepted piece of work
        always runs: it is never cancelled, so its run row is always completed."""
        with self._lock:
            if self._accepted >= self.capacity:
                return None
            self._accepted += 1

        def run() -> T:
            started = time.monotonic()
            with self._lock:
                self._running += 1
            try:
                return work()
            finally:
                with self._lock:
                    self._running -= 1
                    self._accepted -= 1
                    self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - started)

        return self._executor.submit(run)

    def counts(self) -> tuple[int, int]:
        """Requests running and waiting now."""
        with self._lock:
            return self._running, self._accepted - self._running

    def retry_after(self) -> int:
        """Whole seconds until a place is likely free: the queue's length in mean requests."""
        with self._lock:
            rounds = self._accepted / self.running_limit
            return max(1, min(3600, math.ceil(rounds * self._mean_s)))

    def close(self) -> None:
        """Wait for the accepted work to finish; accept no more."""
        with self._lock:
            self.capacity = 0
        self._executor.shutdown(wait=True)
