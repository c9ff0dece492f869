"""A llama.cpp model's tokens as the bytes they stand for, and the union of vocabularies.

Fusing next-token distributions of models with different tokenizers needs every token as
text. ``llama_token_to_piece`` (special tokens not rendered) already undoes each
tokenizer's own encoding: byte-level BPE's ``Ġ`` and SentencePiece's ``▁`` come back as a
space and byte-fallback tokens as their byte, so the pieces of any two models compare as
plain bytes. End-of-generation tokens, one set per model, become one shared entry of the
union; control tokens render as nothing and are left out of it (their probability mass is
dropped from the fused distribution).
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

EOG = 0
"""The union's entry for "end of generation": every model's end tokens map to it."""


@dataclass(frozen=True)
class Vocabulary:
    """One model's tokens: their bytes, which end generation, and the reverse map."""

    pieces: tuple[bytes, ...]  # by token id
    eog: frozenset[int]
    eos: int  # the end token this model is scored with when a span ends generation
    ids: dict[bytes, int]  # a piece's token id (the lowest id rendering it)

    @property
    def size(self) -> int:
        return len(self.pieces)

    @property
    def digest(self) -> str:
        """Equal for two models whose vocabularies are the same, token for token."""
        h = hashlib.sha256()
        for piece in self.pieces:
            h.update(len(piece).to_bytes(4, "little") + piece)
        h.update(repr(sorted(self.eog)).encode())
        return h.hexdigest()


def vocabulary(llama: Any) -> Vocabulary:
    """The vocabulary of a loaded ``llama_cpp.Llama``."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    n = int(llama.n_vocab())
    buffer = ctypes.create_string_buffer(256)
    pieces: list[bytes] = []
    eog: set[int] = set()
    ids: dict[bytes, int] = {}
    for token in range(n):
        size = llama_cpp.llama_token_to_piece(vocab, token, buffer, 256, 0, False)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = llama_cpp.llama_token_to_piece(vocab, token, buffer, -size, 0, False)
        piece = buffer.raw[:size]
        pieces.append(piece)
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            eog.add(token)
        elif piece:
            ids.setdefault(piece, token)
    eos = int(llama.token_eos())
    if eos not in eog:
        eos = min(eog) if eog else -1
    return Vocabulary(tuple(pieces), frozenset(eog), eos, ids)


class UnionVocabulary:
    """The union of several vocabularies' token strings, with a map per model.

    Built once for a set of models: ``source[i]``/``target[i]`` list model ``i``'s token ids
    and their union ids (many ids of one model may share a union id when they render the
    same bytes; their probabilities add up), and ``single[i]`` gives, per union id, model
    ``i``'s one token for that text, or -1 when the text is several tokens there.
    """

    def __init__(self, vocabularies: Sequence[Vocabulary]) -> None:
        index: dict[bytes, int] = {}
        texts: list[bytes] = [b""]  # entry 0 is EOG
        self.source: list[np.ndarray] = []
        self.target: list[np.ndarray] = []
        for vocab in vocabularies:
            src, dst = [], []
            for token, piece in enumerate(vocab.pieces):
                if token in vocab.eog:
                    uid = EOG
                elif piece:
                    uid = index.get(piece, -1)
                    if uid < 0:
                        uid = index[piece] = len(texts)
                        texts.append(piece)
                else:
                    continue
                src.append(token)
                dst.append(uid)
            self.source.append(np.asarray(src, dtype=np.int64))
            self.target.append(np.asarray(dst, dtype=np.int64))
        self.texts = texts
        self.of_token: list[np.ndarray] = []  # per model: union id by token id, -1 if none
        for vocab, tokens, uids in zip(vocabularies, self.source, self.target, strict=True):
            of_token = np.full(vocab.size, -1, dtype=np.int64)
            of_token[tokens] = uids
            self.of_token.append(of_token)
        self.single: list[np.ndarray] = []
        for vocab in vocabularies:
            single = np.full(len(texts), -1, dtype=np.int64)
            for piece, token in vocab.ids.items():
                single[index[piece]] = token
            single[EOG] = vocab.eos
            self.single.append(single)

    @property
    def size(self) -> int:
        return len(self.texts)

    def project(self, model: int, probs: np.ndarray) -> np.ndarray:
        """Model ``model``'s next-token distribution over the union's entries."""
        return np.bincount(
            self.target[model], weights=probs[self.source[model]], minlength=self.size
        )

    def text(self, uid: int) -> bytes | None:
        """The bytes of a union entry; None for end of generation."""
        return None if uid == EOG else self.texts[uid]
