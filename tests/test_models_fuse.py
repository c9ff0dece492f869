"""The ``fuse`` backend: token- and span-level fusion over real llama.cpp models.

Tiny GGUF pairs built here (two byte-level BPE vocabularies of 320 and 290 tokens, so some
token of one is several of the other) and the embedded SmolLM2/Gemma pair for the real
case of two unrelated tokenizers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from models_fixtures import GEMMA, SMOLLM2
from tiny_gguf import build_tiny_gguf

from codeens.config import ConfigError, load_config
from codeens.models import ModelConfig, Prompt, SamplingParams
from codeens.models.fuse import Fuse
from codeens.models.fusion import Member, Output
from codeens.models.fusion_tokens import TokenOptions, fuse_tokens
from codeens.models.llamacpp import LlamaCpp
from codeens.models.pool import ModelPool
from codeens.models.vocab import UnionVocabulary, vocabulary

pytest_plugins = ["models_fixtures"]

PROMPT = Prompt(messages=({"role": "user", "content": "add"},), prefix="def add(a, b):\n")
GREEDY = SamplingParams(temperature=0.0, max_tokens=24)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fuse-tiny")
    return {
        "a": build_tiny_gguf(root / "a.gguf", vocab_size=320, seed=0),
        "b": build_tiny_gguf(root / "b.gguf", vocab_size=290, seed=1),
        "c": build_tiny_gguf(root / "c.gguf", vocab_size=320, seed=2),  # a's vocabulary
    }


def member(name: str, location: Path | str, **options: object) -> ModelConfig:
    return ModelConfig(
        name=name,
        backend="llamacpp",
        location=str(location),
        chat=False,
        options={"n_ctx": 256, **options},
    )


def fused(*members: ModelConfig, **options: object) -> Fuse:
    return Fuse(
        ModelConfig(
            name="fused",
            backend="fuse",
            chat=False,
            options={
                "members": [m.name for m in members],
                "member_configs": [m.model_dump() for m in members],
                **options,
            },
        )
    )


def greedy_text(config: ModelConfig, params: SamplingParams = GREEDY) -> str:
    model = LlamaCpp(config)
    try:
        return model.complete(PROMPT, 1, params, seed=0)[0].text
    finally:
        model.close()


def fused_completion(model: Fuse, params: SamplingParams = GREEDY, seed: int = 0):  # type: ignore[no-untyped-def]
    try:
        return model.complete(PROMPT, 1, params, seed=seed)[0]
    finally:
        model.close()


@pytest.fixture(scope="module")
def tiny_loads(tiny: dict[str, Path]) -> Iterator[dict[str, object]]:
    pool = ModelPool()
    loads = {}
    for name in ("a", "b"):
        backend = LlamaCpp(member(name, tiny[name]))
        backend.share_loads(pool)
        loads[name] = backend.loaded()
    yield loads
    pool.close()


def test_union_vocabulary_round_trips_every_token(tiny_loads: dict[str, object]) -> None:
    vocabs = [vocabulary(load.llama) for load in tiny_loads.values()]  # type: ignore[attr-defined]
    assert vocabs[0].digest != vocabs[1].digest
    union = UnionVocabulary(vocabs)
    several = 0
    for i, vocab in enumerate(vocabs):
        for token, piece in enumerate(vocab.pieces):
            uid = int(union.of_token[i][token])
            if token in vocab.eog:
                assert uid == 0
                continue
            if not piece:
                assert uid == -1
                continue
            assert union.texts[uid] == piece
            single = int(union.single[i][uid])
            assert vocab.pieces[single] == piece
            other = 1 - i
            several += int(union.single[other][uid]) < 0
    assert several > 0  # some string is one token in one model and several in the other


def test_weights_one_zero_reproduce_the_first_member(tiny: dict[str, Path]) -> None:
    a, b = member("a", tiny["a"]), member("b", tiny["b"])
    want = greedy_text(a)
    got = fused_completion(fused(a, b, weights=[1.0, 0.0]))
    assert got.text == want
    assert got.extra["fused_share"] == 0.0


def test_identical_members_reproduce_one_member_in_both_modes(tiny: dict[str, Path]) -> None:
    a, twin = member("a", tiny["a"]), member("twin", tiny["a"], n_seq_max=4)
    want = greedy_text(a)
    assert want  # the comparison below means something
    assert fused_completion(fused(a, twin)).text == want
    assert fused_completion(fused(a, twin, mode="span")).text == want
    assert fused_completion(fused(a, twin, mode="span", boundary="token")).text == want


@pytest.mark.parametrize("threshold", [0.0, 0.02])
def test_speculative_drafts_give_the_step_by_step_tokens(
    tiny: dict[str, Path], threshold: float
) -> None:
    a, c = member("a", tiny["a"]), member("c", tiny["c"])
    params = SamplingParams(temperature=0.0, max_tokens=64)
    options = {"weights": [0.6, 0.4], "threshold": threshold}
    fast = fused_completion(fused(a, c, **options), params)
    slow = fused_completion(fused(a, c, drafts="never", **options), params)
    assert fast.text == slow.text
    assert fast.output_tokens == slow.output_tokens == 64
    assert fast.extra["fused_share"] == slow.extra["fused_share"]
    assert fast.text != greedy_text(a, params)  # c's weight changed something


def test_drafted_sampling_with_one_voter_is_step_by_step_sampling(tiny: dict[str, Path]) -> None:
    a, c = member("a", tiny["a"]), member("c", tiny["c"])
    params = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=48)
    fast = fused_completion(fused(a, c, weights=[1.0, 0.0], drafts="always"), params, seed=5)
    slow = fused_completion(fused(a, c, weights=[1.0, 0.0], drafts="never"), params, seed=5)
    assert fast.text == slow.text and fast.output_tokens == slow.output_tokens >= 48


def test_verifying_a_draft_draws_from_the_fused_distribution() -> None:
    """x ~ q, then keep-or-resample: the emitted token is distributed as f."""
    from codeens.models.fusion import draw
    from codeens.models.fusion_tokens import _verify

    q = np.array([0.6, 0.3, 0.1, 0.0])
    f = np.array([0.2, 0.3, 0.4, 0.1])
    rng = np.random.default_rng(0)
    counts = np.zeros(4)
    for _ in range(20000):
        drafted = draw(q, rng)
        counts[_verify(drafted, q, f, 1.0, 1.0, rng)] += 1
    np.testing.assert_allclose(counts / counts.sum(), f, atol=0.015)
    # greedy: the fused argmax, whatever was drafted
    assert _verify(0, q, f, 0.0, 1.0, rng) == 2


def test_threshold_lets_a_confident_first_member_decide_alone(tiny: dict[str, Path]) -> None:
    a, b = member("a", tiny["a"]), member("b", tiny["b"])
    alone = fused_completion(fused(a, b, threshold=1e-6))
    assert alone.text == greedy_text(a)
    assert alone.extra["fused_share"] == 0.0
    always = fused_completion(fused(a, b))
    assert always.extra["fused_share"] == 1.0


def test_top_k_over_the_whole_vocabulary_equals_the_full_union(tiny: dict[str, Path]) -> None:
    a, b = member("a", tiny["a"]), member("b", tiny["b"])
    full = fused_completion(fused(a, b))
    topk = fused_completion(fused(a, b, top_k=400))
    assert topk.text == full.text


def _check_caches_after_union_fusion(
    loads: list[object], locations: list[str], quantised: bool
) -> None:
    """Fuse over the union with sampling, then compare each member's incrementally built
    cache with a fresh evaluation of its tokens: the cells span exactly its tokens and the
    logits agree (to float32 rounding for the tiny f32 models; a quantised model's
    single-token and batched evaluations differ by up to ~0.8 in a logit, so there the
    rows must correlate, which a cache holding other tokens does not)."""
    vocabs = [vocabulary(load.llama) for load in loads]  # type: ignore[attr-defined]
    union = UnionVocabulary(vocabs)
    members = [
        Member(
            name=location,
            decoder=load.decoder,  # type: ignore[attr-defined]
            vocab=vocab,
            tokenize=lambda text, llama=load.llama: list(  # type: ignore[attr-defined]
                llama.tokenize(text, add_bos=False, special=False)
            ),
            prompt=tuple(load.llama.tokenize(b"def add(a, b):\n", add_bos=False)),  # type: ignore[attr-defined]
        )
        for location, load, vocab in zip(locations, loads, vocabs, strict=True)
    ]
    result = fuse_tokens(
        members,
        union,
        TokenOptions(),
        Output((), 40),
        temperature=1.0,
        top_p=1.0,
        rng=np.random.default_rng(3),
    )
    assert result.steps >= 10
    # Some chosen string was several tokens in one member: the streams differ in length.
    assert len(result.members_out[0]) != len(result.members_out[1])
    for m, vocab, location in zip(members, vocabs, locations, strict=True):
        held = (b"".join(vocab.pieces[t] for t in m.out) + m.pending).decode(errors="ignore")
        # every chosen string but the last, which ended the text and was not fed
        assert result.text.startswith(held) and len(result.text) - len(held) <= 16
        incremental = m.logits()
        assert m.decoder.held() == (0, len(m.tokens) - 1)
        fresh = LlamaCpp(member("fresh", location, n_ctx=m.decoder.settings.n_ctx))
        try:
            expected = fresh.loaded().decoder.logits_after(m.tokens)
        finally:
            fresh.close()
        if quantised:
            assert np.corrcoef(incremental, expected)[0, 1] > 0.99
        else:
            np.testing.assert_allclose(incremental, expected, rtol=1e-3, atol=1e-3)


def test_retokenised_choices_keep_every_cache_consistent(
    tiny: dict[str, Path], tiny_loads: dict[str, object]
) -> None:
    locations = [str(tiny["a"]), str(tiny["b"])]
    _check_caches_after_union_fusion(list(tiny_loads.values()), locations, quantised=False)


def test_span_fusion_across_vocabularies(tiny: dict[str, Path]) -> None:
    a, b = member("a", tiny["a"]), member("b", tiny["b"])
    out = fused_completion(fused(a, b, mode="span", boundary="word", span_tokens=4))
    assert out.output_tokens > 0
    assert out.finish_reason in ("stop", "length")


def test_packllm_weights_follow_prompt_perplexity(tiny: dict[str, Path]) -> None:
    a, b = member("a", tiny["a"]), member("b", tiny["b"])
    out = fused_completion(fused(a, b, weights="packllm", tau=0.5))
    weights = out.extra["weights"]
    ce = []
    for config in (a, b):
        alone = LlamaCpp(config)
        try:
            load = alone.loaded()
            tokens = load.renderer.completion(PROMPT.prefix, ()).tokens
            ce.append(-float(np.mean(load.decoder.score(tokens, 1))))
        finally:
            alone.close()
    z = -np.asarray(ce) / 0.5
    expected = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(weights, expected, atol=1e-4)
    assert abs(weights[0] - weights[1]) > 1e-3  # the two models read the prompt differently


def test_smollm2_gemma_union_with_one_zero_weight_is_smollm2(
    smollm2_file: Path, gemma_file: Path
) -> None:
    s, g = member("smol", SMOLLM2, n_ctx=512), member("gemma", GEMMA, n_ctx=512)
    params = SamplingParams(temperature=0.0, max_tokens=32)
    want = greedy_text(s, params)
    got = fused_completion(fused(s, g, weights=[1.0, 0.0]), params)
    assert got.text == want
    both = fused_completion(fused(s, g), params)
    assert both.output_tokens > 0
    pool = ModelPool()
    try:
        loads = []
        for config in (s, g):
            backend = LlamaCpp(config)
            backend.share_loads(pool)
            loads.append(backend.loaded())
        _check_caches_after_union_fusion(loads, [SMOLLM2, GEMMA], quantised=True)
    finally:
        pool.close()


def test_config_resolves_members_and_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "codeens.toml"
    path.write_text(
        '[[models]]\nname = "fused"\nbackend = "fuse"\n'
        'options = { members = ["qwen-coder-0.5b", "qwen-coder-1.5b"], mode = "token" }\n'
    )
    config, _ = load_config(path)
    model = config.model("fused")
    resolved = model.options["member_configs"]
    assert [m["name"] for m in resolved] == ["qwen-coder-0.5b", "qwen-coder-1.5b"]
    assert model.chat is True
    assert model.sampling == config.model("qwen-coder-0.5b").sampling
    assert model.price_output_per_mtok == pytest.approx(0.05 + 0.15)
    Fuse(model)  # its options validate

    path.write_text(
        '[[models]]\nname = "fused"\nbackend = "fuse"\noptions = { members = ["nope"] }\n'
    )
    with pytest.raises(ConfigError, match="unknown member 'nope'"):
        load_config(path)


FUSED_CONFIG = """
[[models]]
name = "smol-a"
backend = "llamacpp"
location = "{smol}"
sampling = {{ temperature = 0.0, max_tokens = 96 }}
options = {{ n_ctx = 1024 }}

[[models]]
name = "smol-b"
backend = "llamacpp"
location = "{smol}"
sampling = {{ temperature = 0.0, max_tokens = 96 }}
options = {{ n_ctx = 1024, n_seq_max = 2 }}

[[models]]
name = "fused-token"
backend = "fuse"
options = {{ members = ["smol-a", "smol-b"], mode = "token" }}

[[models]]
name = "fused-span"
backend = "fuse"
options = {{ members = ["smol-a", "smol-b"], mode = "span" }}
"""


@pytest.mark.docker
def test_solve_and_eval_take_fused_members(
    tmp_path: Path, sandbox_image: str, smollm2_file: Path, isolated_db: Path
) -> None:
    import json
    import shutil

    from conftest import REPO, run_cli

    (tmp_path / "codeens.toml").write_text(FUSED_CONFIG.format(smol=SMOLLM2))
    problem = tmp_path / "add.py"
    shutil.copy(REPO / "examples" / "problems" / "add.py", problem)
    names = "fused-token,fused-span,smol-a"
    solve = run_cli(
        "solve", str(problem), "--json", "--models", names, "--samples", "1",
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert solve.returncode in (0, 1), solve.stderr  # solved or not: it ran
    data = json.loads(solve.stdout)
    by_model = {c["model"]: c["candidate"] for c in data["candidates"]}
    assert set(by_model) == set(names.split(","))
    # Two copies of one model fused greedily write what one of them writes.
    assert by_model["smol-a"] is not None
    assert by_model["fused-token"] == by_model["fused-span"] == by_model["smol-a"]
    from codeens.storage import Store

    logged = {g.model: g for g in Store(isolated_db).generations(data["run_id"])}
    extra = json.loads(logged["fused-token"].extra_json)
    assert extra["weights"] == [0.5, 0.5] and extra["fused_share"] == 1.0
    evaluated = run_cli(
        "eval", "mbpp", "--limit", "1", "--models", "fused-span", "--samples", "1",
        "--strategies", "vote", "--json", "--quiet", cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    summary = json.loads(evaluated.stdout)
    assert list(summary["models"]) == ["fused-span"]
    assert summary["models"]["fused-span"]["tokens"] > 0
