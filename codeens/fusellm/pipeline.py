"""``codeens fuse``: corpus, source tables, alignment, training, output with lineage.

The output directory is a transformers checkpoint (weights, config, tokenizer) with
``codeens_lineage.json``: the target and sources, the recipe, and what the run measured
(steps, losses, how many positions each source gave a distribution for, wall time per
stage, peak memory).
"""

from __future__ import annotations

import functools
import json
import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codeens.fusellm import sources as source_tables
from codeens.fusellm.align import VocabMap
from codeens.fusellm.corpus import load_texts
from codeens.fusellm.examples import build, cut_texts
from codeens.fusellm.recipe import FuseRecipe, FuseRecipeError
from codeens.fusellm.train import Settings, StepLoss, finish, train
from codeens.models import locate
from codeens.models.base import ModelUnavailable

LINEAGE_FILE = "codeens_lineage.json"


@dataclass
class FuseResult:
    """What a fusion run produced; also the content of ``codeens_lineage.json``."""

    model_dir: str
    method: str
    sources: list[dict[str, str]]
    parameters: dict[str, Any]
    texts: int
    steps: int
    first_loss: float
    last_loss: float
    matched: dict[str, float]  # source -> share of predicted target positions it covered
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    cached_sources: list[str] = field(default_factory=list)


def location_of(reference: str) -> str:
    """An embedded model's file for its catalog name; anything else as given."""
    from codeens.embedded import embedded

    entry = embedded(reference)
    return entry.config.location if entry is not None else reference


def fuse(
    recipe: FuseRecipe,
    out_dir: Path,
    *,
    log: Callable[[str], None] = lambda _line: None,
    on_step: Callable[[StepLoss, int], None] = lambda _loss, _total: None,
) -> FuseResult:
    """Train ``recipe.target`` on the fused sources into ``out_dir``.

    Raises :class:`FuseRecipeError` (one line) for anything the user can fix.
    """
    from codeens.fusellm.corpus import CorpusError
    from codeens.fusellm.train import StateMismatch
    from codeens.models.checkpoint import checkpoint_dir, quiet, torch_and_transformers

    if (out_dir / LINEAGE_FILE).is_file():
        raise FuseRecipeError(f"{out_dir} already holds a fused model; choose an empty --out")
    seconds: dict[str, float] = {}
    clock = time.monotonic()
    try:
        target_dir = checkpoint_dir(location_of(recipe.target))
        source_paths = [location_of(s) for s in recipe.sources]
        for name, location in zip(recipe.sources, source_paths, strict=True):
            try:
                locate.resolve(location)
            except ModelUnavailable as exc:
                raise FuseRecipeError(f"source {name}: {exc}") from exc
        texts = load_texts(recipe.data, recipe.text_field)
    except (ModelUnavailable, CorpusError) as exc:
        raise FuseRecipeError(str(exc)) from exc
    texts = texts[: recipe.limit] if recipe.limit else texts
    torch, transformers = torch_and_transformers()
    with quiet(transformers):
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(target_dir))
    texts = cut_texts(tokenizer, texts, recipe.max_seq_len)
    seconds["prepare"] = time.monotonic() - clock

    clock = time.monotonic()
    tables, cached = [], []
    for name, location in zip(recipe.sources, source_paths, strict=True):
        log(f"source {name}: next-token distributions over {len(texts)} texts")
        try:
            made, hit = source_tables.table(
                location,
                texts,
                recipe.top_k,
                n_ctx=2 * recipe.max_seq_len + 16,
                on_text=functools.partial(_every, log, name),
            )
        except ModelUnavailable as exc:
            raise FuseRecipeError(f"source {name}: {exc}") from exc
        tables.append(made)
        if hit:
            cached.append(name)
    seconds["sources"] = time.monotonic() - clock

    clock = time.monotonic()
    target_vocab = source_tables.token_strings(tokenizer)
    maps = [VocabMap(t.vocab, target_vocab) for t in tables]
    tokenised = [source_tables.tokenise_hf(tokenizer, text) for text in texts]
    examples = build(tokenised, target_vocab, tables, maps, recipe.fusion)
    predicted = sum(len(e.ids) - e.first_label for e in examples) or 1
    matched = {
        name: round(sum(e.matched[s] for e in examples) / predicted, 4)
        for s, name in enumerate(recipe.sources)
    }
    seconds["align"] = time.monotonic() - clock
    log(
        "aligned: "
        + ", ".join(f"{name} gives {share:.0%} of positions" for name, share in matched.items())
    )

    clock = time.monotonic()
    with quiet(transformers):
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(target_dir), dtype=torch.float32
        )
    steps = recipe.steps or math.ceil(len(examples) / recipe.batch_size)
    settings = Settings(
        lambda_=recipe.lambda_,
        steps=steps,
        batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate,
        warmup_steps=recipe.warmup_steps,
        save_every=recipe.save_every,
        seed=recipe.seed,
        digest=recipe.digest(),
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        losses = train(
            model,
            examples,
            settings,
            out_dir,
            int(pad or 0),
            on_step=lambda loss: on_step(loss, steps),
        )
    except StateMismatch as exc:
        raise FuseRecipeError(str(exc)) from exc
    seconds["train"] = time.monotonic() - clock
    with quiet(transformers):
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    finish(out_dir)
    result = FuseResult(
        model_dir=str(out_dir.resolve()),
        method=f"fusellm:{recipe.fusion}",
        sources=[{"model": recipe.target, "path": str(target_dir), "role": "target"}]
        + [
            {"model": name, "path": str(location), "role": "source"}
            for name, location in zip(recipe.sources, source_paths, strict=True)
        ],
        parameters=recipe.model_dump(mode="json", by_alias=True),
        texts=len(examples),
        steps=steps,
        first_loss=_mean([x.loss for x in losses[:10]]),
        last_loss=_mean([x.loss for x in losses[-10:]]),
        matched=matched,
        seconds={k: round(v, 1) for k, v in seconds.items()},
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        cached_sources=cached,
    )
    (out_dir / LINEAGE_FILE).write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def _every(log: Callable[[str], None], name: str, done: int, total: int) -> None:
    if done == total or done % 50 == 0:
        log(f"source {name}: {done}/{total} texts")


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4) if values else float("nan")
