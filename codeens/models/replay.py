"""Replay recorded generations: deterministic tests, and strategies re-run on old outputs.

``location`` is a JSONL file; each line is one completion::

    {"model": "smollm2", "prompt": "<Prompt.text_for(chat)>", "seed": 7, "text": "...",
     "input_tokens": 12, "output_tokens": 30}

Sample ``i`` of a call with seed ``s`` is the record for (prompt, ``s + i``) when there is
one; otherwise the next record for the prompt, whatever its seed, in file order, that this
call has not returned yet. :func:`record` appends lines in this format.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from codeens.models.base import (
    Completion,
    Model,
    ModelConfig,
    ModelUnavailable,
    Prompt,
    SamplingParams,
)

_APPEND_LOCK = threading.Lock()


def record(
    path: str | Path, model_name: str, prompt_text: str, seed: int, completion: Completion
) -> None:
    """Append one completion to a replay file (created with its folder when missing)."""
    line = {
        "model": model_name,
        "prompt": prompt_text,
        "seed": seed,
        "text": completion.text,
        "input_tokens": completion.input_tokens,
        "output_tokens": completion.output_tokens,
        "mean_logprob": completion.mean_logprob,
        "finish_reason": completion.finish_reason,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(line, ensure_ascii=False) + "\n"
    with _APPEND_LOCK, target.open("a", encoding="utf-8") as handle:
        handle.write(data)


@dataclass(frozen=True)
class _Record:
    seed: int | None
    completion: Completion


class Replay(Model):
    """A model whose answers are read back from a recording."""

    backend = "replay"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        model: str | None = Field(
            None,
            description="Replay this recorded model name (default: this config's name; "
            "'*': any model).",
        )

    options: Options

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.path = Path(os.path.expandvars(config.location)).expanduser()
        self._index: dict[str, list[_Record]] = {}
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        if not self.path.is_file():
            return False, f"replay file not found: {self.path}"
        return True, ""

    def _records(self) -> dict[str, list[_Record]]:
        """The file's records by prompt; re-read when the file changed."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise ModelUnavailable(f"replay file not found: {self.path}") from exc
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return self._index
        wanted = self.options.model or self.config.name
        index: dict[str, list[_Record]] = {}
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    item: dict[str, Any] = json.loads(line)
                    if wanted != "*" and item.get("model") != wanted:
                        continue
                    completion = Completion(
                        text=str(item["text"]),
                        input_tokens=int(item.get("input_tokens") or 0),
                        output_tokens=int(item.get("output_tokens") or 0),
                        mean_logprob=item.get("mean_logprob"),
                        finish_reason=str(item.get("finish_reason") or ""),
                        extra={"replayed_from": f"{self.path}:{number}"},
                    )
                    seed = item.get("seed")
                    index.setdefault(str(item["prompt"]), []).append(
                        _Record(None if seed is None else int(seed), completion)
                    )
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise ModelUnavailable(
                        f"{self.path}:{number}: not a replay record ({exc})"
                    ) from exc
        self._index, self._stamp = index, stamp
        return index

    def complete(
        self, prompt: Prompt, n: int, params: SamplingParams, seed: int
    ) -> list[Completion]:
        with self._lock:
            records = self._records().get(prompt.text_for(self.config.chat), [])
        if not records:
            raise ModelUnavailable(f"{self.path} has no recorded completion for this prompt")
        by_seed: dict[int, int] = {}
        for position, item in enumerate(records):
            if item.seed is not None:
                by_seed.setdefault(item.seed, position)
        # Exact seeds first, so that a fallback never takes a record another sample matches.
        chosen: list[int | None] = [by_seed.get(seed + i) for i in range(n)]
        taken = set(chosen)
        spare = iter(p for p in range(len(records)) if p not in taken)
        for i, slot in enumerate(chosen):
            if slot is None:
                chosen[i] = next(spare, None)
        if None in chosen:
            raise ModelUnavailable(
                f"{self.path} has {len(records)} recorded completions for this prompt; "
                f"{n} were asked"
            )
        return [records[p].completion for p in chosen if p is not None]
