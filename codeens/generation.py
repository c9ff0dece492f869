"""Asking models for completions: loading, pricing, logging and the request cache.

Every backend goes through :class:`Generator`, so every completion is priced and logged the
same way, and an identical request (same model, prompt, sampling parameters and seed) is
served from the log instead of being generated again. The generator reads the log but
never writes it: :class:`codeens.recorder.Recorder` does.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass

from codeens.models.base import MODELS, Completion, Model, ModelConfig, Prompt, SamplingParams
from codeens.storage import Store


@dataclass(frozen=True)
class Generated:
    """One completion as it came back (or was served from the log): everything its log row
    holds except what the pipeline derives from the text (the extracted code)."""

    model: str
    backend: str
    request_key: str
    prompt: str
    params_json: str
    seed: int
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    mean_logprob: float | None = None
    latency_s: float = 0.0
    cost: float = 0.0
    cached_from: int | None = None
    extra_json: str = ""  # what the backend reported beside the text


def request_key(model: ModelConfig, prompt_text: str, params: SamplingParams, seed: int) -> str:
    """What makes two requests identical: the model's identity, the prompt, params, seed."""
    identity = {
        "model": model.name,
        "backend": model.backend,
        "location": model.location,
        "chat": model.chat,
        "options": model.options,
        "prompt": prompt_text,
        "params": params.model_dump(mode="json"),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _extra(completion: Completion) -> str:
    return json.dumps(completion.extra, sort_keys=True, default=str) if completion.extra else ""


def price(model: ModelConfig, completion: Completion, seconds: float) -> float:
    """Cost from the configured prices: per token, per second, or both."""
    return (
        completion.input_tokens * model.price_input_per_mtok / 1e6
        + completion.output_tokens * model.price_output_per_mtok / 1e6
        + seconds * model.price_per_second
    )


class Generator:
    """Loads models on first use and returns logged, priced samples.

    With ``charge_cached`` a sample served from the log carries the original's cost and
    latency instead of zero.
    """

    def __init__(self, store: Store, run_id: str, *, charge_cached: bool = False) -> None:
        from codeens.models.pool import ModelPool

        self.store = store
        self.run_id = run_id
        self.charge_cached = charge_cached
        self._models: dict[str, Model] = {}  # one backend instance per configured name
        # What they load, by what makes two loads the same: configured models over one
        # file share one copy, freed by close().
        self._pool = ModelPool()
        self._lock = threading.Lock()

    def for_run(self, run_id: str, store: Store | None = None) -> Generator:
        """A generator logging under another run that shares this one's loaded models;
        reading another log (a Ray worker's per-problem copy) when ``store`` is given."""
        other = Generator(store or self.store, run_id, charge_cached=self.charge_cached)
        other._models = self._models
        other._pool = self._pool
        other._lock = self._lock
        return other

    def model(self, config: ModelConfig) -> Model:
        """The backend instance for ``config``, made on first use; it loads through this
        generator's pool when it can (:class:`~codeens.models.pool.SharesLoads`)."""
        from codeens.models.pool import SharesLoads

        with self._lock:
            if config.name not in self._models:
                model = MODELS.get(config.backend)(config)
                if isinstance(model, SharesLoads):
                    model.share_loads(self._pool)
                self._models[config.name] = model
            return self._models[config.name]

    def sample(
        self,
        config: ModelConfig,
        prompt: Prompt,
        n: int,
        seed: int,
        params: SamplingParams | None = None,
    ) -> list[Generated]:
        """``n`` completions with seeds ``seed .. seed+n-1``, cached ones taken from the log.

        Nothing is written here: the run's recorder logs what the pipeline makes of them.
        Raises whatever the backend raises when it cannot generate (ModelUnavailable...).
        """
        params = params or config.sampling
        text = prompt.text_for(config.chat)
        keys = [request_key(config, text, params, seed + i) for i in range(n)]
        out: list[Generated | None] = [self._from_cache(key) for key in keys]
        missing = [i for i, g in enumerate(out) if g is None]
        if missing:
            # One call for a contiguous run keeps batching backends efficient.
            first = missing[0]
            count = missing[-1] - first + 1
            model = self.model(config)
            started = time.perf_counter()
            completions = model.complete(prompt, count, params, seed + first)
            elapsed = time.perf_counter() - started
            share = elapsed / max(1, len(completions))
            for offset, completion in enumerate(completions[:count]):
                i = first + offset
                if out[i] is None:
                    out[i] = Generated(
                        model=config.name,
                        backend=config.backend,
                        request_key=keys[i],
                        prompt=text,
                        params_json=params.model_dump_json(),
                        seed=seed + i,
                        text=completion.text,
                        input_tokens=completion.input_tokens,
                        output_tokens=completion.output_tokens,
                        mean_logprob=completion.mean_logprob,
                        latency_s=share,
                        cost=price(config, completion, share),
                        extra_json=_extra(completion),
                    )
        return [g for g in out if g is not None]

    def _from_cache(self, key: str) -> Generated | None:
        hit = self.store.cached_generation(key)
        if hit is None:
            return None
        # A repeated request costs nothing, unless runs are compared as if each had
        # generated on its own (an eval charges every strategy for what it used).
        charge = self.charge_cached
        return Generated(
            model=hit.model,
            backend=hit.backend,
            request_key=hit.request_key,
            prompt=hit.prompt,
            params_json=hit.params_json,
            seed=hit.seed,
            text=hit.raw_output,
            input_tokens=hit.input_tokens,
            output_tokens=hit.output_tokens,
            mean_logprob=hit.mean_logprob,
            latency_s=hit.latency_s if charge else 0.0,
            cost=hit.cost if charge else 0.0,
            cached_from=hit.id,
            extra_json=hit.extra_json,
        )

    def close(self) -> None:
        """Close every backend instance, then free what they loaded."""
        for model in self._models.values():
            model.close()
        self._models.clear()
        self._pool.close()
