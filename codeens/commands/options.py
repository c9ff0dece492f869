"""Options the commands share, and options that are fields of the config models.

A config option takes its type, limits, default and help from the pydantic ``Field`` it
sets, so a limit is written once, in the model. The model is imported only when the
option is parsed or its command's help is shown: ``codeens --help`` loads every command
module and must not pay for pydantic.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from codeens.config import Config

F = TypeVar("F", bound=Callable[..., Any])
CONFIG = "codeens.config:Config"
# Registries whose names a help text lists, as "module:attribute" (imported on first use).
STRATEGIES = "codeens.strategies.base:STRATEGIES"
SANDBOXES = "codeens.sandbox.backends.base:SANDBOXES"
BENCHMARKS = "codeens.evals.benchmarks:BENCHMARKS"
MERGE_METHODS = "codeens.merging.base:METHODS"
DEFAULT_HELP = {
    "db": "SQLite log file.",
    "config": "Config file (default: ./codeens.toml, else the embedded models).",
    "json": "One JSON object.",
    "quiet": "No progress display.",
}


def shared_options(
    *names: Literal["db", "config", "json", "quiet"], **helps: str
) -> Callable[[F], F]:
    """``--db``, ``--config``, ``--json`` and ``--quiet``, as the command's ``db``,
    ``config_path``, ``as_json`` and ``quiet`` parameters. ``helps`` replaces the help of
    an option whose meaning differs for this command (``json="One object per line."``)."""
    unknown = set(helps) - set(names)
    if unknown:
        raise TypeError(f"help for options not asked for: {sorted(unknown)}")
    path = click.Path(path_type=Path)
    declared: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
        "db": (("--db",), {"type": path, "default": None}),
        "config": (("--config", "config_path"), {"type": path, "default": None}),
        "json": (("--json", "as_json"), {"is_flag": True}),
        "quiet": (("--quiet",), {"is_flag": True}),
    }

    def decorate(f: F) -> F:
        for name in reversed(names):  # the last decorator applied is listed first
            decls, attrs = declared[name]
            f = click.option(*decls, help=helps.get(name, DEFAULT_HELP[name]), **attrs)(f)
        return f

    return decorate


class FieldOption(click.Option):
    """An option that sets one field of a pydantic model (by default :class:`Config`).

    ``field`` is a dotted path from the model ("samples", "sandbox.workers"). With
    ``default="config"`` the option's default is None (the config file's value, else the
    model's default, applies) and the help says what the model's default is; with
    ``default="field"`` the field's default is the option's. ``names``: a
    ``"module:REGISTRY"`` whose names the help lists (at ``{names}`` in the help, else at
    its end). Without ``field`` the option only lists ``names``.
    """

    def __init__(
        self,
        param_decls: list[str],
        *,
        field: str | None = None,
        model: str = CONFIG,
        default: Literal["config", "field"] = "config",
        names: str | None = None,
        **attrs: Any,
    ) -> None:
        if default == "field":
            attrs.setdefault("show_default", True)
        super().__init__(param_decls, **attrs)
        self.field = field
        self.model = model
        self.default_from = default
        self.registry = names
        self.description = self.help or ""
        self.field_default: object = None
        self._resolved = False

    def _resolve(self) -> None:
        """Type, limits and default from the field, the first time they are needed."""
        if self._resolved:
            return
        self._resolved = True
        if self.field is not None:
            info = field_info(self.model, self.field)
            self.type = click_type(info)
            self.field_default = info.get_default(call_default_factory=True)
            self.description = self.description or (info.description or "")
            if self.default_from == "field":
                self.default = self.field_default

    def _help(self) -> str | None:
        """The help: the field's description (or the given help), the registry's names as
        they are now, and the model's default when the config decides."""
        text = self.description.rstrip(".")
        if self.registry is not None:
            names = ", ".join(registry_names(self.registry))
            text = text.format(names=names) if "{names}" in text else f"{text}: {names}"
        if self.default_from == "config" and self.field_default is not None:
            label = "default from config" if self.model == CONFIG else "default"
            text += f" ({label}: {self.field_default})"
        return f"{text}." if text else None

    def handle_parse_result(
        self, ctx: click.Context, opts: Any, args: list[str]
    ) -> tuple[Any, list[str]]:
        self._resolve()
        return super().handle_parse_result(ctx, opts, args)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        self._resolve()
        self.help = self._help()
        return super().get_help_record(ctx)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> Any:
        self._resolve()
        return super().shell_complete(ctx, incomplete)


def field_option(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """``@click.option`` for a :class:`FieldOption`; the parameter name comes from the
    declarations as usual (``--memory`` sets ``memory``)."""
    return click.option(*param_decls, cls=FieldOption, **attrs)


def config_overrides(config: Config, ctx: click.Context | None = None) -> Config:
    """``config`` with the value of every config option the command was given."""
    from codeens.config import override

    ctx = ctx or click.get_current_context()
    values = {
        param.field: ctx.params.get(param.name)
        for param in ctx.command.params
        if isinstance(param, FieldOption) and param.model == CONFIG
        if param.field is not None and param.name is not None
    }
    return override(config, values)


def field_info(model: str, field: str) -> FieldInfo:
    """The ``FieldInfo`` at a dotted path of a ``"module:Class"`` pydantic model."""
    module, _, qualname = model.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    *path, last = field.split(".")
    for part in path:
        obj = obj.model_fields[part].annotation
    info: FieldInfo = obj.model_fields[last]
    return info


def registry_names(ref: str) -> list[str]:
    """The names registered in a ``"module:REGISTRY"``."""
    module, _, attr = ref.partition(":")
    names: list[str] = getattr(importlib.import_module(module), attr).names()
    return names


def click_type(info: FieldInfo) -> click.ParamType[Any]:
    """The click type of a field: numbers keep their limits (and must be finite)."""
    bounds: dict[str, Any] = {}
    for item in info.metadata:  # pydantic keeps ge=, gt=, le=, lt= as annotated-types
        for name, key, is_open in (
            ("ge", "min", False),
            ("gt", "min", True),
            ("le", "max", False),
            ("lt", "max", True),
        ):
            if getattr(item, name, None) is not None:
                bounds[key] = getattr(item, name)
                if is_open:
                    bounds[f"{key}_open"] = True
    if info.annotation is int:
        return click.IntRange(**bounds) if bounds else click.INT
    if info.annotation is float:
        return FiniteFloatRange(**bounds)
    return click.STRING


class FiniteFloatRange(click.FloatRange):
    """A float range that also refuses nan and inf (a range check lets nan through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail("must be a finite number", param, ctx)
        return number


class ListsNames(click.Command):
    """A command whose help ends with the names of registries (``lists``: a heading for
    each ``"module:REGISTRY"``), read only when that help is shown."""

    def __init__(self, *args: Any, lists: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lists = lists

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for heading, ref in self.lists.items():
            with formatter.section(heading):
                formatter.write_text(", ".join(registry_names(ref)))
        super().format_epilog(ctx, formatter)
