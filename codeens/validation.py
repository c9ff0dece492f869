"""One line for what is wrong with a config or recipe file, whatever its format.

Every user-written file (``codeens.toml``, merge and MoE recipes) is validated by a frozen
pydantic model; these helpers turn the first problem into one line naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
# Union members and tagged choices add their type names to an error's location.
_TYPE_TAG = re.compile(r"[\[\]()]|^(float|int|bool|str|list|dict)$")


def first_error(exc: ValidationError) -> str:
    """The first problem as ``unknown key 'a.b'``, ``missing key 'a'`` or ``a.b: message``.

    A misspelt key usually explains the other errors (it is the key that was meant), so an
    unknown key is reported first.
    """
    errors = exc.errors()
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = ".".join(str(p) for p in error["loc"] if not _TYPE_TAG.search(str(p)))
    if error["type"] == "extra_forbidden":
        return f"unknown key {where!r}"
    if error["type"] == "missing":
        return f"missing key {where!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse_yaml(text: str, model: type[M], where: str, error: type[Exception]) -> M:
    """Validate YAML ``text`` as ``model``; ``error`` with one line when it cannot be."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise error(f"{where}: not valid YAML{at}") from exc
    if not isinstance(data, dict):
        raise error(f"{where}: expected a mapping of keys")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{where}: {first_error(exc)}") from exc


def load_yaml(path: Path, model: type[M], error: type[Exception]) -> tuple[M, str]:
    """:func:`parse_yaml` of a file; returns the model and the text (kept for lineage)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read recipe {path}: {exc}") from exc
    return parse_yaml(text, model, str(path), error), text
