"""Models made of other models: a ``[[models]]`` entry whose options name ``members``.

When the configuration is read, each member name (a configured model, else an embedded
one) is resolved to that model's whole config and written under the entry's
``member_configs`` option. The backend then builds its members without the configuration
in hand, and the request cache key, which covers the options, changes whenever a member
does. Fields the entry leaves unset are derived from its members:

* ``chat`` and ``sampling``: the first member's (so the members are prompted, and stop,
  the way the first one would be on its own);
* prices: the sum of the members' (every member reads the prompt and every token).

Lineage-aware voting counts a composite as kin of its members (its roots are theirs,
:mod:`codeens.strategies.lineage`), not as an independent voter.

A member may not itself be a composite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from codeens.models.base import ModelConfig

MEMBERS = "members"
RESOLVED = "member_configs"
_PRICES = ("price_input_per_mtok", "price_output_per_mtok", "price_per_second")


def is_composite(model: ModelConfig) -> bool:
    return MEMBERS in model.options


def expand(
    models: Iterable[ModelConfig], lookup: Callable[[str], ModelConfig | None]
) -> tuple[ModelConfig, ...]:
    """``models`` with every composite's members resolved (see the module docstring).

    ``lookup`` finds a model by name among the configured and embedded ones. Raises
    ValueError (one line) for an unknown member, a composite member or a bad list.
    """
    return tuple(_expand(m, lookup) if is_composite(m) else m for m in models)


def _expand(model: ModelConfig, lookup: Callable[[str], ModelConfig | None]) -> ModelConfig:
    names = model.options[MEMBERS]
    if (
        not isinstance(names, list | tuple)
        or not names
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(f"model {model.name!r}: options.members must list model names")
    members = []
    for name in names:
        member = lookup(name)
        if member is None:
            raise ValueError(f"model {model.name!r}: unknown member {name!r}")
        if is_composite(member) or member.name == model.name:
            raise ValueError(f"model {model.name!r}: member {name!r} is itself a composite")
        members.append(member)
    update: dict[str, object] = {
        "options": {**model.options, RESOLVED: [m.model_dump(mode="json") for m in members]}
    }
    unset = set(ModelConfig.model_fields) - model.model_fields_set
    first = members[0]
    if "chat" in unset:
        update["chat"] = first.chat
    if "sampling" in unset:
        update["sampling"] = first.sampling
    if unset.issuperset(_PRICES):
        for price in _PRICES:
            update[price] = sum(getattr(m, price) for m in members)
    return model.model_copy(update=update)


def locations(model: ModelConfig) -> list[str]:
    """The model files a model needs: its own location, or its members'."""
    if not is_composite(model):
        return [model.location]
    resolved = model.options.get(RESOLVED) or []
    return [str(m.get("location", "")) for m in resolved]
