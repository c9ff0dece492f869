"""Loaded weights shared by the backends of one :class:`~codeens.generation.Generator`.

A backend instance stands for one configured model (its name, chat flag, options); what
it loads can be worth sharing: two configured models over one GGUF file, say, one
sampled hot and one greedy. Such a backend takes a :class:`ModelPool` (see
:class:`SharesLoads`) and asks it for its load under a key saying what makes two loads
the same; the pool loads each key once, hands the same object to every asker, and frees
everything when its owner closes it. A backend used on its own keeps a pool of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Protocol, TypeVar, cast, runtime_checkable


class Loaded(Protocol):
    """Anything a pool holds: it can be freed."""

    def close(self) -> None: ...


L = TypeVar("L", bound=Loaded)


class ModelPool:
    """Loaded models by key, each loaded once and freed by :meth:`close`."""

    def __init__(self) -> None:
        self._loaded: dict[Hashable, Loaded] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], L]) -> L:
        """The object loaded under ``key``, loading it with ``load`` the first time.

        ``load`` must return the same type for the same key: the pool hands back whatever
        it holds. A load that raises leaves nothing behind, and the next ask tries again.
        """
        with self._lock:  # one load per key, however many threads ask at once
            held = self._loaded.get(key)
            if held is None:
                held = self._loaded[key] = load()
            return cast(L, held)

    def __len__(self) -> int:
        return len(self._loaded)

    def close(self) -> None:
        """Free everything loaded, in load order reversed; the pool can be used again."""
        with self._lock:
            held, self._loaded = list(self._loaded.values()), {}
        for loaded in reversed(held):
            loaded.close()


@runtime_checkable
class SharesLoads(Protocol):
    """A backend that can load through a pool it is given instead of its own."""

    def share_loads(self, pool: ModelPool) -> None:
        """Load through ``pool`` from now on (called before the first request)."""
