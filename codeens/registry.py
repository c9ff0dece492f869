"""One registry mechanism for every extension point, built-ins and plugins alike.

Each extension point is an entry-point group. codeens declares its own implementations in
its pyproject under the same groups that third-party packages use, so a built-in is found
exactly the way a plugin is. Nothing is imported until a name is asked for.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(LookupError):
    """No implementation is registered under the requested name."""


class Registry(Generic[T]):
    """Named implementations of one extension point, loaded lazily from entry points."""

    def __init__(self, group: str, kind: str) -> None:
        self.group = group
        self.kind = kind
        self._extra: dict[str, T] = {}

    def _entry_points(self) -> dict[str, EntryPoint]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def register(self, name: str, obj: T) -> None:
        """Register an implementation at run time (tests, embedding applications)."""
        self._extra[name] = obj

    def unregister(self, name: str) -> None:
        """Forget an implementation registered with :meth:`register` (entry points stay)."""
        self._extra.pop(name, None)

    @contextmanager
    def registered(self, name: str, obj: T) -> Iterator[T]:
        """Register ``obj`` for the duration of a ``with`` block, then restore what was there."""
        saved = {name: self._extra[name]} if name in self._extra else {}
        self._extra[name] = obj
        try:
            yield obj
        finally:
            self._extra.pop(name, None)
            self._extra.update(saved)

    def names(self) -> list[str]:
        return sorted(set(self._entry_points()) | set(self._extra))

    def get(self, name: str) -> T:
        if name in self._extra:
            return self._extra[name]
        found = self._entry_points().get(name)
        if found is None:
            raise UnknownName(self._unknown(name))
        obj: T = found.load()
        return obj

    def check(self, names: list[str]) -> list[str]:
        """``names`` unchanged when each is registered (nothing is loaded); otherwise the
        ValueError a pydantic validator raises, naming the first unknown one."""
        for name in names:
            if name not in self._extra and name not in self._entry_points():
                raise ValueError(self._unknown(name))
        return names

    def _unknown(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r} (known: {', '.join(known) or 'none'}){hint}"
