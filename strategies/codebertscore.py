"""``codebertscore``: pass rate first, then CodeBERTScore (consensus or against a reference).

CodeBERTScore (Zhou et al.) is BERTScore on code: every token of the candidate is matched
to its most similar reference token by cosine of contextual embeddings (precision), every
reference token to the candidate (recall), optionally idf-weighted; F1 and F3 =
10PR/(9P+R). This implementation follows the ``code-bert-score`` package (0.4.1): the text
is stripped, special tokens stay as match targets with weight 0, punctuation-only tokens
are dropped, idf is log((N+1)/(df+1)) over the references, no baseline rescaling. Each text
is encoded on its own (the package batches with padding; results agree to ~1e-6).

It correlates only weakly with correctness, so it only orders candidates with equal pass
rates. Without a reference, a candidate's score is its mean score against every other
candidate: the one most like the rest wins.
"""

from __future__ import annotations

import ast
import math
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from codeens.encoders import MINILM, Encoder, EncoderUnavailable, load_encoder
from codeens.extract import normalize
from codeens.strategies.base import Decision, Strategy, StrategyCannotRun
from codeens.strategies.interface import Candidate, Context

if TYPE_CHECKING:
    import torch

_PUNCT = set(string.punctuation) - set("+-*/&|~")  # operators carry meaning in code
_SPACE_MARKS = "\u0120\u010a\u0109"  # byte-level BPE's space, newline, tab


@dataclass(frozen=True)
class Scores:
    """CodeBERTScore of one candidate against one reference (or the mean over several)."""

    precision: float
    recall: float
    f1: float
    f3: float


@dataclass(frozen=True)
class _Encoded:
    emb: torch.Tensor  # unit rows, punctuation-only tokens removed
    ids: list[int]  # the ids of the kept rows
    empty: bool  # only the special tokens were left


IdfFn = Callable[[int], float]


def _encode(encoder: Encoder, text: str, layer: int) -> _Encoded:
    ids = encoder.token_ids(text)
    emb = encoder.token_embeddings(ids, layer)
    keep = [not _punctuation(tok) for tok in encoder.tokens(ids)]
    kept = emb[keep]
    kept = kept / kept.norm(dim=-1, keepdim=True)
    return _Encoded(kept, [i for i, k in zip(ids, keep, strict=True) if k], sum(keep) == 2)


def _punctuation(token: str) -> bool:
    # all() of an empty string is True: a bare space or newline token goes too, as upstream.
    return all(c in _PUNCT for c in token.strip(_SPACE_MARKS))


def idf_from(encoder: Encoder, documents: list[str] | None) -> IdfFn:
    """idf per token id over ``documents``; None means no idf (1, special tokens 0)."""
    if documents is None:
        special = {encoder.tokenizer.cls_token_id, encoder.tokenizer.sep_token_id}
        return lambda i: 0.0 if i in special else 1.0
    counts = Counter(i for doc in documents for i in set(encoder.token_ids(doc)))
    n = len(documents)
    return lambda i: math.log((n + 1) / (counts.get(i, 0) + 1))


def _pair(cand: _Encoded, ref: _Encoded, idf: IdfFn) -> Scores:
    import torch

    sim = cand.emb @ ref.emb.T
    cand_w = torch.tensor([idf(i) for i in cand.ids], dtype=torch.float32)
    ref_w = torch.tensor([idf(i) for i in ref.ids], dtype=torch.float32)
    p = float((sim.max(dim=1).values * cand_w / cand_w.sum()).sum())
    r = float((sim.max(dim=0).values * ref_w / ref_w.sum()).sum())
    f1 = 2 * p * r / (p + r) if p + r else math.nan
    f3 = 10 * p * r / (9 * p + r) if 9 * p + r else math.nan
    if cand.empty or ref.empty:  # upstream zeroes P and R but keeps a finite F
        p = r = 0.0
    return Scores(*(0.0 if math.isnan(v) else v for v in (p, r, f1, f3)))


def score(
    cands: list[str],
    refs: list[str],
    *,
    encoder: str | Encoder = MINILM,
    num_layers: int | None = None,
    idf: bool = False,
) -> list[Scores]:
    """``code_bert_score.score(cands, refs, ...)`` for one reference per candidate."""
    if len(cands) != len(refs):
        raise ValueError("different number of candidates and references")
    enc = load_encoder(encoder) if isinstance(encoder, str) else encoder
    layer = enc.default_layers if num_layers is None else num_layers
    weights = idf_from(enc, refs if idf else None)
    encoded = {t: _encode(enc, t, layer) for t in dict.fromkeys([*cands, *refs])}
    return [_pair(encoded[c], encoded[r], weights) for c, r in zip(cands, refs, strict=True)]


def consensus(
    codes: list[str], *, encoder: Encoder, num_layers: int | None = None, idf: bool = False
) -> list[Scores]:
    """Each code's mean scores as candidate against every other code as reference.

    idf, when on, is taken over ``codes`` (each once), not over the n(n-1) pairs.
    """
    if len(codes) < 2:
        return [Scores(1.0, 1.0, 1.0, 1.0) for _ in codes]
    layer = encoder.default_layers if num_layers is None else num_layers
    weights = idf_from(encoder, codes if idf else None)
    encoded = [_encode(encoder, c, layer) for c in codes]
    means = []
    for i, cand in enumerate(encoded):
        pairs = [_pair(cand, ref, weights) for j, ref in enumerate(encoded) if j != i]
        means.append(
            Scores(
                sum(s.precision for s in pairs) / len(pairs),
                sum(s.recall for s in pairs) / len(pairs),
                sum(s.f1 for s in pairs) / len(pairs),
                sum(s.f3 for s in pairs) / len(pairs),
            )
        )
    return means


def consensus_scores(codes: list[str], metric: Literal["f1", "f3"] = "f1") -> list[float]:
    """Mean CodeBERTScore F1 (or F3) of each code against the others, on MiniLM.

    One code scores 1.0; no code, no score. Raises EncoderUnavailable when MiniLM is not
    installed.
    """
    return [getattr(s, metric) for s in consensus(codes, encoder=load_encoder(MINILM))]


class CodeBERTScoreRank(Strategy):
    """Visible-test pass rate first; ties ordered by CodeBERTScore."""

    name = "codebertscore"
    summary = "pass rate, ties broken by CodeBERTScore (consensus or against a reference)"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        encoder: str = Field(
            MINILM, description="minilm, codebert-python, a model directory or a hub id."
        )
        num_layers: int | None = Field(
            None, ge=0, description="Hidden layer to read (default: per encoder)."
        )
        idf: bool = Field(False, description="idf-weight tokens (over the compared codes).")
        metric: Literal["f1", "f3"] = Field("f1", description="F3 weighs recall 9x.")
        reference: str | None = Field(
            None,
            description="A reference solution: a .py path (from the working directory) "
            "or the code itself.",
        )

    options: Options

    def solve(self, ctx: Context) -> Decision:
        candidates = ctx.sample_all()
        opts = self.options
        mode = "consensus" if opts.reference is None else "reference"
        if not candidates:  # nothing to score: no need to load an encoder
            return Decision(None, {"mode": mode, "scores": []})
        encoder, fallback = self._encoder(ctx)
        layers = opts.num_layers if fallback is None else None
        texts = [normalize(c.code) for c in candidates]
        try:
            if opts.reference is None:
                scores = consensus(texts, encoder=encoder, num_layers=layers, idf=opts.idf)
            else:
                ref = normalize(_reference(opts.reference, ctx.stub.name))
                weights = idf_from(encoder, [*texts, ref] if opts.idf else None)
                layer = encoder.default_layers if layers is None else layers
                encoded_ref = _encode(encoder, ref, layer)
                scores = [_pair(_encode(encoder, t, layer), encoded_ref, weights) for t in texts]
        except ValueError as exc:  # a layer the encoder does not have
            raise StrategyCannotRun(str(exc)) from exc
        rows = sorted(
            (_row(c, s, opts.metric) for c, s in zip(candidates, scores, strict=True)),
            key=lambda r: (-r["pass_rate"], -r["score"], -r["duplicates"], r["length"], r["id"]),
        )
        trace: dict[str, Any] = {
            "mode": mode,
            "encoder": encoder.name,
            "encoder_location": encoder.location,
            "num_layers": encoder.default_layers if layers is None else layers,
            "idf": opts.idf,
            "metric": opts.metric,
            "scores": [{k: v for k, v in r.items() if k not in ("record", "id")} for r in rows],
        }
        if fallback is not None:
            trace["encoder_fallback"] = fallback
        return Decision(rows[0]["record"] if rows else None, trace)

    def _encoder(self, ctx: Context) -> tuple[Encoder, str | None]:
        """The configured encoder, or MiniLM with the reason it had to stand in."""
        try:
            return load_encoder(self.options.encoder), None
        except EncoderUnavailable as exc:
            if self.options.encoder == MINILM:
                raise StrategyCannotRun(str(exc)) from exc
            reason = f"{exc}; using minilm instead"
        ctx.note(f"codebertscore: {reason}")
        try:
            return load_encoder(MINILM), reason
        except EncoderUnavailable as exc:
            raise StrategyCannotRun(str(exc)) from exc


def _row(candidate: Candidate, scores: Scores, metric: str) -> dict[str, Any]:
    result = candidate.result
    rounded = {k: round(v, 6) for k, v in asdict(scores).items()}
    return {
        "candidate": candidate.hash[:12],
        "models": candidate.models,
        "pass_rate": round(result.pass_rate, 6) if result else 0.0,
        "executed": result is not None,
        **rounded,
        "score": rounded[metric],
        "duplicates": len(candidate.samples),
        "length": len(candidate.code),
        "id": candidate.hash,
        "record": candidate,
    }


def _reference(value: str, name: str) -> str:
    """The reference code: a file's text or the value itself; only ``name`` when it has it."""
    text = value
    if "\n" not in value and value.strip().endswith(".py"):
        path = Path(value).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StrategyCannotRun(f"cannot read reference {path}: {exc}") from exc
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return ast.get_source_segment(text, node) or text
    return text
