"""Source models' next-token distributions over the corpus: computed once, kept on disk.

For every text and every token of a source's own tokenisation, the source's ``top_k``
most likely next tokens (ids and log-probabilities over its whole vocabulary) for the
position that predicts that token, and per text the source's mean cross-entropy on the
gold tokens (what MinCE and AvgCE weigh sources by). Evaluating the sources is the
expensive part of FuseLLM, so a table is cached under ``<cache>/fusellm``, keyed by the
model file, the texts and ``top_k``; training only reads it.

GGUF sources run in llama.cpp (all logits of a text in one evaluation); checkpoint
directories run in transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codeens.models import locate

FORMAT = 1


@dataclass(frozen=True)
class Tokenised:
    """One text in one model's tokens: ``ids`` as fed (leading special tokens included)."""

    ids: tuple[int, ...]
    leading: int  # special tokens before the text's own (a BOS)

    @property
    def text_ids(self) -> tuple[int, ...]:
        return self.ids[self.leading :]


@dataclass(frozen=True)
class SourceTable:
    """One source's distributions. Row ``i`` of a text is for its ``i``-th text token;
    a token without a prediction (the first, when there is no BOS) has ids ``-1``."""

    model: str
    vocab: tuple[str, ...]
    tokens: tuple[np.ndarray, ...]  # per text: text token ids
    topk_ids: tuple[np.ndarray, ...]  # per text: (tokens, k) int32
    topk_logprobs: tuple[np.ndarray, ...]  # per text: (tokens, k) float32
    ce: np.ndarray  # per text: mean -log p(gold) over predicted tokens

    def strings(self, index: int) -> list[str]:
        return [self.vocab[t] for t in self.tokens[index]]


class Scorer:
    """A loaded source model: tokenise, and give all next-token logits of a sequence."""

    vocab: tuple[str, ...]

    def tokenise(self, text: str) -> Tokenised:
        raise NotImplementedError

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """(len(ids), vocab) float32: row r predicts the token after ``ids[r]``."""
        raise NotImplementedError

    def close(self) -> None:
        return None


def table(
    location: str,
    texts: Sequence[str],
    top_k: int,
    *,
    n_ctx: int = 1024,
    on_text: Callable[[int, int], None] = lambda _done, _total: None,
) -> tuple[SourceTable, bool]:
    """(the table for ``location`` over ``texts``, whether it came from the cache)."""
    path = locate.resolve(location)
    cache = locate.cache_dir() / "fusellm" / _key(path, texts, top_k)
    if (cache / "table.npz").is_file():
        return _read(cache, location), True
    scorer = open_scorer(path, n_ctx)
    try:
        result = compute(scorer, location, texts, top_k, on_text=on_text)
    finally:
        scorer.close()
    _write(cache, result)
    return result, False


def compute(
    scorer: Scorer,
    model: str,
    texts: Sequence[str],
    top_k: int,
    *,
    on_text: Callable[[int, int], None] = lambda _done, _total: None,
) -> SourceTable:
    tokens, ids_out, logprobs_out, ces = [], [], [], []
    for index, text in enumerate(texts):
        tokenised = scorer.tokenise(text)
        rows = scorer.logits(tokenised.ids)
        ids, logprobs, ce = top_of(rows, tokenised, top_k)
        tokens.append(np.asarray(tokenised.text_ids, dtype=np.int32))
        ids_out.append(ids)
        logprobs_out.append(logprobs)
        ces.append(ce)
        on_text(index + 1, len(texts))
    return SourceTable(
        model=model,
        vocab=scorer.vocab,
        tokens=tuple(tokens),
        topk_ids=tuple(ids_out),
        topk_logprobs=tuple(logprobs_out),
        ce=np.asarray(ces, dtype=np.float64),
    )


def top_of(rows: np.ndarray, tokenised: Tokenised, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Top-k ids and log-probabilities per text token, and the mean gold cross-entropy."""
    text = tokenised.text_ids
    count = len(text)
    ids = np.full((count, k), -1, dtype=np.int32)
    logprobs = np.full((count, k), -np.inf, dtype=np.float32)
    # text token i is predicted by the row of the token before it, if there is one
    first = 0 if tokenised.leading else 1
    if count <= first:
        return ids, logprobs, float("nan")
    prev = np.arange(first, count) + tokenised.leading - 1
    chosen = rows[prev]
    if k < chosen.shape[1]:
        top = np.argpartition(chosen, chosen.shape[1] - k, axis=1)[:, -k:]
    else:
        top = np.tile(np.arange(chosen.shape[1]), (len(prev), 1))
    top_values = np.take_along_axis(chosen, top, axis=1)
    order = np.argsort(-top_values, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    peak = np.take_along_axis(top_values, order[:, :1], axis=1)  # each row's maximum
    lse = peak[:, 0].astype(np.float64) + np.log(
        np.exp(chosen - peak, dtype=np.float32).sum(axis=1, dtype=np.float64)
    )
    ids[first:] = top
    logprobs[first:] = np.take_along_axis(chosen, top, axis=1) - lse[:, None]
    gold = np.asarray(text[first:], dtype=np.int64)
    ce = float(np.mean(lse - chosen[np.arange(len(prev)), gold]))
    return ids, logprobs, ce


def open_scorer(path: Path, n_ctx: int = 1024) -> Scorer:
    """llama.cpp for a GGUF file (``n_ctx``: the longest text it takes, in its tokens)."""
    if path.is_file() and path.suffix == ".gguf":
        return LlamaScorer(path, n_ctx)
    from codeens.models.checkpoint import checkpoint_dir

    return TransformersScorer(checkpoint_dir(str(path)))


class LlamaScorer(Scorer):
    """A GGUF model in llama.cpp with every position's logits kept (``n_ctx`` rows of the
    whole vocabulary are allocated: keep it near the longest text)."""

    def __init__(self, path: Path, n_ctx: int = 1024) -> None:
        import llama_cpp

        from codeens.models.llamacpp import _bounded_spin, _cpus, _silence
        from codeens.models.vocab import vocabulary

        _bounded_spin()
        _silence(llama_cpp)
        self.llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=512,
            n_threads=_cpus(),
            logits_all=True,
            verbose=False,
        )
        self.vocab = tuple(as_text(p) for p in vocabulary(self.llama).pieces)

    def tokenise(self, text: str) -> Tokenised:
        data = text.encode("utf-8")
        plain = self.llama.tokenize(data, add_bos=False, special=False)
        full = self.llama.tokenize(data, add_bos=True, special=False)
        n_ctx = self.llama.n_ctx()
        return Tokenised(tuple(full[:n_ctx]), len(full) - len(plain))

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        self.llama.reset()  # type: ignore[no-untyped-call]
        self.llama.eval(list(ids))
        return np.array(self.llama.scores[: len(ids)], dtype=np.float32)

    def close(self) -> None:
        self.llama.close()


class TransformersScorer(Scorer):
    """A checkpoint directory in transformers (CPU, float32)."""

    def __init__(self, directory: Path) -> None:
        from codeens.models.checkpoint import quiet, torch_and_transformers

        torch, transformers = torch_and_transformers()
        with quiet(transformers):
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                str(directory), dtype=torch.float32
            ).eval()
        self.vocab = token_strings(self.tokenizer)

    def tokenise(self, text: str) -> Tokenised:
        return tokenise_hf(self.tokenizer, text)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.tensor([list(ids)])).logits[0]
        return np.asarray(out.float().numpy(), dtype=np.float32)


def tokenise_hf(tokenizer: Any, text: str) -> Tokenised:
    """A transformers tokenisation with the tokenizer's own special tokens (a BOS)."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    specials = set(tokenizer.all_special_ids)
    leading = 0
    while leading < len(ids) and ids[leading] in specials:
        leading += 1
    return Tokenised(tuple(ids), leading)


def as_text(piece: bytes) -> str:
    """A token's bytes as a string with one character per byte (latin-1), so that two
    tokens holding different parts of one UTF-8 character never compare equal."""
    return piece.decode("latin-1")


def token_strings(tokenizer: Any) -> tuple[str, ...]:
    """Every token id's bytes (see :func:`as_text`; special tokens: empty).

    Byte-level BPE tokens are mapped back through GPT-2's byte table, SentencePiece tokens
    through ``▁`` (a space) and ``<0xNN>`` byte fallbacks.
    """
    specials = set(tokenizer.all_special_ids)
    byte_level = _byte_level(tokenizer)
    decoder = {c: b for b, c in _bytes_to_unicode().items()}
    out = []
    for i, token in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))):
        if i in specials or token is None:
            out.append("")
        elif _BYTE.fullmatch(token):
            out.append(chr(int(token[3:5], 16)))
        elif byte_level and all(c in decoder for c in token):
            out.append(bytes(decoder[c] for c in token).decode("latin-1"))
        else:
            out.append(as_text(token.replace("\u2581", " ").encode("utf-8")))
    return tuple(out)


_BYTE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return '"ByteLevel"' in json.dumps(json.loads(backend.to_str()).get("decoder"))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map of the 256 bytes to printable characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _key(path: Path, texts: Sequence[str], top_k: int) -> str:
    digest = hashlib.sha256(f"{FORMAT}:{top_k}:".encode())
    if path.is_file():
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        for weights in sorted(path.glob("*.safetensors")):
            stat = weights.stat()
            digest.update(f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()[:24]


def _write(cache: Path, result: SourceTable) -> None:
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    lengths = np.asarray([len(t) for t in result.tokens], dtype=np.int64)
    np.savez(
        partial / "table.npz",
        lengths=lengths,
        tokens=np.concatenate(result.tokens) if result.tokens else np.zeros(0, np.int32),
        topk_ids=np.concatenate(result.topk_ids),
        topk_logprobs=np.concatenate(result.topk_logprobs),
        ce=result.ce,
    )
    (partial / "vocab.json").write_text(json.dumps(list(result.vocab)))
    try:
        partial.rename(cache)
    except OSError:  # another process wrote it first
        import shutil

        shutil.rmtree(partial, ignore_errors=True)


def _read(cache: Path, model: str) -> SourceTable:
    with np.load(cache / "table.npz") as data:
        lengths = data["lengths"]
        cuts = np.cumsum(lengths)[:-1]
        return SourceTable(
            model=model,
            vocab=tuple(json.loads((cache / "vocab.json").read_text())),
            tokens=tuple(np.split(data["tokens"], cuts)),
            topk_ids=tuple(np.split(data["topk_ids"], cuts)),
            topk_logprobs=tuple(np.split(data["topk_logprobs"], cuts)),
            ce=data["ce"],
        )
