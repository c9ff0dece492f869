"""Which models share ancestry: each model's lineage is the set of its roots.

Rule, for one configured model:

1. An explicit ``lineage`` in its config is its one root (the family name: two
   quantisations of one model, or a fine-tune, name the same family).
2. Otherwise, when the log records how its location was built (a merge or MoE row in the
   ``lineage`` table), its roots are the union of its sources' roots, recursively: a merge
   of A and B has roots {A, B}, and a merge of that with C has {A, B, C}.
3. Otherwise, for a composite (a model whose options name ``members``, such as a fused
   decoder), the union of its members' roots: its outputs are theirs, mixed.
4. Otherwise the model is its own root: its location, else its name. Two members over the
   same weights (the same model under two prompts or two sampling settings) therefore
   share a root without any configuration.

A source of a recorded build is named by what the recipe called it (``model`` or
``location``, else its resolved ``path``); a configured model whose location is that name
or that path stands for it, so a merge of a configured model shares that model's root
(its explicit family, when it has one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from codeens.models.base import ModelConfig
from codeens.models.composite import RESOLVED, is_composite
from codeens.storage.models import Lineage
from codeens.strategies.interface import LogReader

MAX_DEPTH = 32  # a merge of a merge of ...; a cycle in a hand-edited log stops here


def _names(location: str) -> set[str]:
    """The spellings of a location the log may use: as written and resolved."""
    if not location:
        return set()
    names = {location}
    path = Path(location).expanduser()
    if path.exists():
        names.add(str(path.resolve()))
    return names


def _source_names(source: object) -> tuple[str, set[str]]:
    """A recorded source's display name and every spelling it goes by."""
    if isinstance(source, str):
        return source, {source}
    if isinstance(source, Mapping):
        spellings = [str(source[k]) for k in ("model", "location", "path") if source.get(k)]
        if spellings:
            return spellings[0], set(spellings)
    return json.dumps(source, sort_keys=True), set()


class Lineages:
    """The roots of each configured model, read once from the log."""

    def __init__(self, models: Sequence[ModelConfig], history: LogReader) -> None:
        self._rows: dict[str, Lineage] = {}
        for row in reversed(list(history.lineage(None))):  # newest last: it wins
            self._rows[row.model_dir] = row
        self._explicit: dict[str, str] = {}  # a location spelling -> its configured family
        self._own: dict[str, str] = {}  # a location spelling -> the model it is
        for model in models:
            for name in _names(model.location):
                if model.lineage:
                    self._explicit.setdefault(name, model.lineage)
                self._own.setdefault(name, _own(model))
        self.roots: dict[str, frozenset[str]] = {m.name: self.of(m) for m in models}

    def of(self, model: ModelConfig) -> frozenset[str]:
        if model.lineage:
            return frozenset({model.lineage})
        members = model.options.get(RESOLVED) if is_composite(model) else None
        if members:
            return frozenset().union(*(self.of(ModelConfig.model_validate(m)) for m in members))
        return self._roots(_own(model), _names(model.location), 0)

    def _roots(self, display: str, spellings: set[str], depth: int) -> frozenset[str]:
        known = sorted(spellings)
        explicit = next((self._explicit[s] for s in known if s in self._explicit), None)
        if explicit is not None:
            return frozenset({explicit})
        row = next((self._rows[s] for s in known if s in self._rows), None)
        if row is None or depth >= MAX_DEPTH:
            return frozenset({next((self._own[s] for s in known if s in self._own), display)})
        roots: set[str] = set()
        for source in json.loads(row.sources_json or "[]"):
            name, names = _source_names(source)
            roots |= self._roots(name, names, depth + 1)
        return frozenset(roots) or frozenset({display})


def _own(model: ModelConfig) -> str:
    return model.location or model.name
