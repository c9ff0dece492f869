"""Where a candidate merge lives while it is scored: memory when it fits, else the cache.

Every candidate gets its own directory name (the caller's label: a hash of what was
merged), because the request cache keys generations on the model's location: a reused
path would serve one merge's completions for another.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SHM = Path("/dev/shm")
# Room left beside the merge: the tokenizer, the eval's own files, other processes.
HEADROOM = 1.5


def checkpoint_bytes(directory: Path) -> int:
    """The size of a checkpoint's weight files."""
    return sum(p.stat().st_size for p in directory.glob("*.safetensors"))


def scratch_root(needed_bytes: int) -> Path:
    """/dev/shm when it exists and has room for ``needed_bytes`` (with headroom), else a
    folder in codeens's cache directory."""
    if SHM.is_dir():
        try:
            if shutil.disk_usage(SHM).free > HEADROOM * needed_bytes:
                return SHM
        except OSError:
            pass
    from codeens.models.locate import cache_dir

    root = cache_dir().parent / "evolve"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def scratch_dir(root: Path, label: str) -> Iterator[Path]:
    """A fresh directory ``<root>/<tmp>/<label>``, removed with everything in it after."""
    holder = Path(tempfile.mkdtemp(prefix="codeens-evolve-", dir=root))
    try:
        yield holder / label
    finally:
        shutil.rmtree(holder, ignore_errors=True)
