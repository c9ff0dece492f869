"""The training loop: ``lambda * CE_lm + (1 - lambda) * CE(target, fused)``, resumable.

Batches are drawn in a seeded order (a fresh permutation per epoch); AdamW with a linear
warm-up, then a linear decay to a tenth of the rate; gradients clipped at 1. Every
``save_every`` steps the model, optimizer, scheduler and step go to a state folder next
to the output (written whole, then renamed), and a run started again with the same recipe
continues from there.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codeens.fusellm.examples import Example

STATE = ".codeens-fuse-state"


@dataclass(frozen=True)
class Settings:
    lambda_: float
    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    save_every: int
    seed: int
    digest: str  # the recipe's: a state folder from another recipe is never resumed


@dataclass(frozen=True)
class StepLoss:
    step: int
    loss: float
    lm: float
    fusion: float


class StateMismatch(ValueError):
    """The output folder holds the state of a run with a different recipe."""


def train(
    model: Any,
    examples: Sequence[Example],
    settings: Settings,
    out_dir: Path,
    pad_id: int,
    on_step: Callable[[StepLoss], None] = lambda _loss: None,
) -> list[StepLoss]:
    """Train ``model`` in place; returns the loss of every step of this call and earlier
    calls of the same run (read back from the state folder when resuming)."""
    import torch

    torch.manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(settings))
    losses: list[StepLoss] = []
    start = _resume(model, optimizer, scheduler, out_dir / STATE, settings, losses)
    order = _order(len(examples), settings)
    model.train()
    for step in range(start, settings.steps):
        batch = [examples[i] for i in order[step]]
        loss = _step(model, batch, settings.lambda_, pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss[0].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        record = StepLoss(step + 1, *(float(x) for x in loss[1:]))
        losses.append(record)
        on_step(record)
        if (step + 1) % settings.save_every == 0 and step + 1 < settings.steps:
            _save(model, optimizer, scheduler, out_dir / STATE, settings, losses)
    model.eval()
    return losses


def _step(model: Any, batch: Sequence[Example], lambda_: float, pad_id: int) -> tuple[Any, ...]:
    """(loss, lm loss, fusion loss) of one batch; the first carries the graph."""
    import torch

    length = max(len(e.ids) for e in batch)
    width = max(e.fused_ids.shape[1] for e in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    labelled = torch.zeros((len(batch), length), dtype=torch.bool)
    fused_ids = torch.zeros((len(batch), length, width), dtype=torch.long)
    fused_probs = torch.zeros((len(batch), length, width), dtype=torch.float32)
    for row, e in enumerate(batch):
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids)
        mask[row, :n] = 1
        labelled[row, e.first_label : n] = True
        k = e.fused_ids.shape[1]
        fused_ids[row, :n, :k] = torch.from_numpy(e.fused_ids)
        fused_probs[row, :n, :k] = torch.from_numpy(e.fused_probs)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, dim=-1)
    keep = labelled[:, 1:]
    count = keep.sum().clamp(min=1)
    gold = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    lm = -(gold * keep).sum() / count
    soft = (fused_probs[:, 1:] * logp.gather(-1, fused_ids[:, 1:])).sum(-1)
    fusion = -(soft * keep).sum() / count
    loss = lambda_ * lm + (1.0 - lambda_) * fusion
    return loss, loss.detach(), lm.detach(), fusion.detach()


def _schedule(settings: Settings) -> Callable[[int], float]:
    warm = max(settings.warmup_steps, 0)
    total = max(settings.steps, 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        left = (total - step) / max(total - warm, 1)
        return max(0.1, left)

    return factor


def _order(count: int, settings: Settings) -> list[list[int]]:
    """The example indices of every step: seeded permutations, one per epoch."""
    per_epoch = math.ceil(count / settings.batch_size)
    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < settings.steps:
        perm = np.random.default_rng(settings.seed + epoch).permutation(count)
        for b in range(per_epoch):
            chunk = perm[b * settings.batch_size : (b + 1) * settings.batch_size]
            batches.append([int(i) for i in chunk])
        epoch += 1
    return batches[: settings.steps]


def _save(
    model: Any,
    optimizer: Any,
    scheduler: Any,
    state: Path,
    settings: Settings,
    losses: list[StepLoss],
) -> None:
    import torch
    import transformers

    from codeens.models.checkpoint import quiet

    partial = state.with_name(state.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with quiet(transformers):
        model.save_pretrained(str(partial / "model"))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        partial / "optimizer.pt",
    )
    (partial / "state.json").write_text(
        json.dumps(
            {
                "digest": settings.digest,
                "step": losses[-1].step if losses else 0,
                "losses": [vars(x) for x in losses],
            }
        )
    )
    old = state.with_name(state.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if state.exists():
        state.rename(old)
    partial.rename(state)
    shutil.rmtree(old, ignore_errors=True)


def _resume(
    model: Any,
    optimizer: Any,
    scheduler: Any,
    state: Path,
    settings: Settings,
    losses: list[StepLoss],
) -> int:
    """The step to start from (0 without a state folder); loads the saved state."""
    if not (state / "state.json").is_file():
        return 0
    import torch
    from safetensors.torch import load_file

    saved = json.loads((state / "state.json").read_text())
    if saved.get("digest") != settings.digest:
        raise StateMismatch(
            f"{state.parent} holds a fusion run of another recipe; choose an empty --out"
        )
    weights: dict[str, Any] = {}
    for path in sorted((state / "model").glob("*.safetensors")):
        weights.update(load_file(str(path)))
    model.load_state_dict(weights, strict=False)
    both = torch.load(state / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(both["optimizer"])
    scheduler.load_state_dict(both["scheduler"])
    losses.extend(StepLoss(**x) for x in saved.get("losses", []))
    return int(saved["step"])


def finish(state_parent: Path) -> None:
    """Remove the state folder once the final model is written."""
    shutil.rmtree(state_parent / STATE, ignore_errors=True)
