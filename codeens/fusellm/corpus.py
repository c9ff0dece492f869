"""The training texts: a folder of .py files, a JSONL file, or MBPP's train solutions.

MBPP's train split (task ids 601-974, shipped with codeens) becomes one text per task: the
task statement as a comment, then the reference solution. Only the train split is read, so
an evaluation on the test or validation split never sees its own answers in training.
"""

from __future__ import annotations

import json
from pathlib import Path


class CorpusError(ValueError):
    """The corpus cannot be read; one line."""


def load_texts(data: str | None, text_field: str = "text") -> list[str]:
    """The corpus's texts, in a fixed order (file names sorted, JSONL lines as they come)."""
    if data is None:
        return mbpp_train_texts()
    path = Path(data).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.py") if p.is_file())
        if not files:
            raise CorpusError(f"data {path}: no .py files in it")
        return [t for t in (_read(p) for p in files) if t.strip()]
    if path.is_file() and path.suffix == ".jsonl":
        return _jsonl(path, text_field)
    if not path.exists():
        raise CorpusError(f"data {path}: no such file or folder")
    raise CorpusError(f"data {path}: give a folder of .py files or a .jsonl file")


def mbpp_train_texts() -> list[str]:
    from codeens.evals.mbpp import RANGES, read_records

    low, high = RANGES["train"]
    records = [r for r in read_records(False, None) if low <= int(r["task_id"]) <= high]
    return [mbpp_text(r["text"], r["code"]) for r in records]


def mbpp_text(statement: str, code: str) -> str:
    code = code.replace("\r\n", "\n").replace("\t", "    ").strip("\n")
    return f"# {statement.strip()}\n{code}\n"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"data {path}: cannot read it ({exc})") from exc


def _jsonl(path: Path, field: str) -> list[str]:
    texts = []
    for number, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"data {path} line {number}: not JSON ({exc.msg})") from exc
        value = record.get(field) if isinstance(record, dict) else None
        if not isinstance(value, str):
            raise CorpusError(f"data {path} line {number}: no string field {field!r}")
        if value.strip():
            texts.append(value)
    if not texts:
        raise CorpusError(f"data {path}: no texts")
    return texts
