"""The headline evals' SQLite log, kept in git as one xz-compressed file.

The log holds every generation, execution and decision of the eval runs behind the README's
tables. Kept, it lets anyone check a figure against the rows it came from
(``selection_losses.py``, ``codeens report``), lets ``eval_headline.py --reuse`` tabulate
again without a model call, and lets a later session resume or extend a run (a further
strategy group is served the same samples from the log instead of hours of CPU sampling).
Prompts repeat, so the log compresses about 25x.

Usage:
    .venv/bin/python benchmarks/eval_log.py pack     # after a run: db -> archive
    .venv/bin/python benchmarks/eval_log.py unpack   # before one: archive -> db
        [--db benchmarks/results/eval_headline.db] [--force]
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DB = RESULTS / "eval_headline.db"
ARCHIVE = RESULTS / "eval_headline.sqlite.xz"


def pack(db: Path, archive: Path = ARCHIVE) -> None:
    """A consistent copy of ``db`` (SQLite's online backup, safe while a run writes), xz'd."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        source, target = sqlite3.connect(db), sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        with copy.open("rb") as raw, lzma.open(archive.with_suffix(".part"), "wb") as packed:
            shutil.copyfileobj(raw, packed)
    archive.with_suffix(".part").replace(archive)


def unpack(db: Path, archive: Path = ARCHIVE, *, force: bool = False) -> bool:
    """The archive back to ``db``; False (nothing done) when there is none or ``db`` exists."""
    if not archive.exists() or (db.exists() and not force):
        return False
    db.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(archive, "rb") as packed, db.with_suffix(".part").open("wb") as raw:
        shutil.copyfileobj(packed, raw)
    db.with_suffix(".part").replace(db)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("--db", type=Path, default=DB)
    parser.add_argument("--force", action="store_true", help="unpack over an existing db")
    args = parser.parse_args()
    if args.action == "pack":
        if not args.db.exists():
            sys.exit(f"no log at {args.db}")
        pack(args.db)
        print(f"{args.db} -> {ARCHIVE} ({ARCHIVE.stat().st_size / 1e6:.1f} MB)")
    elif unpack(args.db, force=args.force):
        print(f"{ARCHIVE} -> {args.db}")
    else:
        sys.exit(f"nothing done: {args.db} exists (--force to replace) or no {ARCHIVE.name}")


if __name__ == "__main__":
    main()
