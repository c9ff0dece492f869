"""Knowledge fusion (``codeens fuse``): alignment, source tables, fused targets, training.

Real tiny models built here: two GGUF sources run by llama.cpp (byte-level BPE vocabularies
of 320 and 290 tokens, so a token of one is often several of the other) and a transformers
target whose vocabulary is the 320-token one.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from tiny_gguf import build_tiny_gguf
from tiny_models import CORPUS, build_tiny_llama

from codeens.cli import main
from codeens.fusellm import sources
from codeens.fusellm.align import VocabMap, dtw_path, matches
from codeens.fusellm.examples import build, cut_texts
from codeens.fusellm.pipeline import fuse
from codeens.fusellm.recipe import parse_fuse_recipe
from codeens.storage import Store

TEXTS = sorted(set(CORPUS))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fusellm")
    corpus = root / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return {
        "a": build_tiny_gguf(root / "a.gguf", vocab_size=320, seed=0),
        "b": build_tiny_gguf(root / "b.gguf", vocab_size=290, seed=1),
        "target": build_tiny_llama(root / "target", seed=3),
        "corpus": corpus,
    }


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODEENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def recipe_dict(tiny: dict[str, Path], **changes: Any) -> dict[str, Any]:
    base = {
        "sources": [str(tiny["a"]), str(tiny["b"])],
        "target": str(tiny["target"]),
        "data": str(tiny["corpus"]),
        "steps": 4,
        "batch_size": 2,
        "save_every": 2,
        "max_seq_len": 48,
        "learning_rate": 1e-3,
    }
    return {**base, **changes}


def tokenizer_of(directory: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))


def test_dtw_path_covers_both_sides_and_matches_equal_strings() -> None:
    source = ["de", "f", " add", "(", "a", ",", " b", "):"]
    target = ["def", " add", "(a", ",", " b", ")", ":"]
    path = dtw_path(source, target)
    assert path[0] == (0, 0) and path[-1] == (len(source) - 1, len(target) - 1)
    assert {i for i, _ in path} == set(range(len(source)))
    assert {j for _, j in path} == set(range(len(target)))
    assert all(b[0] - a[0] in (0, 1) and b[1] - a[1] in (0, 1) for a, b in itertools.pairwise(path))
    assert matches(source, target) == {1: 2, 3: 5, 4: 6}


def test_vocab_map_exact_then_nearest() -> None:
    target = ["", "def", " add", "returned", " retur"]
    vmap = VocabMap([" add", "def", " return", "xyz"], target)
    assert [vmap(0), vmap(1)] == [2, 1]
    assert vmap(2) == 4  # one edit from " retur", three from "returned"
    assert vmap.nearest_used == 1
    vmap(2)
    assert vmap.nearest_used == 1  # memoised


def test_source_table_is_a_distribution_with_its_cross_entropy(tiny: dict[str, Path]) -> None:
    scorer = sources.open_scorer(tiny["b"], n_ctx=128)
    try:
        whole = len(scorer.vocab)
        made = sources.compute(scorer, "b", TEXTS[:3], top_k=whole)
        small = sources.compute(scorer, "b", TEXTS[:3], top_k=5)
    finally:
        scorer.close()
    for index in range(3):
        ids, logprobs = made.topk_ids[index], made.topk_logprobs[index]
        predicted = ids[:, 0] >= 0
        assert not predicted[0] and predicted[1:].all()  # no BOS: the first token is given
        total = np.exp(logprobs[predicted].astype(np.float64)).sum(axis=1)
        np.testing.assert_allclose(total, 1.0, rtol=1e-4)
        gold = made.tokens[index][predicted]
        rows = np.nonzero(predicted)[0]
        gold_lp = [logprobs[r][list(ids[r]).index(g)] for r, g in zip(rows, gold, strict=True)]
        assert made.ce[index] == pytest.approx(-float(np.mean(gold_lp)), rel=1e-4)
        assert made.ce[index] == pytest.approx(small.ce[index])
        # the top 5 are the 5 most likely of the whole distribution, in order
        np.testing.assert_array_equal(small.topk_ids[index][1:], ids[1:, :5])
        assert "".join(made.strings(index)).encode("latin-1").decode() == TEXTS[index]


def test_tables_are_cached_by_model_and_texts(tiny: dict[str, Path]) -> None:
    first, hit = sources.table(str(tiny["a"]), TEXTS[:2], 4, n_ctx=128)
    again, hit_again = sources.table(str(tiny["a"]), TEXTS[:2], 4, n_ctx=128)
    _, hit_other = sources.table(str(tiny["a"]), TEXTS[:3], 4, n_ctx=128)
    assert (hit, hit_again, hit_other) == (False, True, False)
    for x, y in zip(first.topk_logprobs, again.topk_logprobs, strict=True):
        np.testing.assert_array_equal(x, y)
    assert again.vocab == first.vocab and list(again.ce) == list(first.ce)


def test_target_as_its_own_source_gives_its_own_distribution(tiny: dict[str, Path]) -> None:
    """Same model, same tokenizer: every position matches and the fused distribution is
    the target's own top-k, renormalised."""
    import torch

    tokenizer = tokenizer_of(tiny["target"])
    texts = cut_texts(tokenizer, TEXTS[:3], 40)
    scorer = sources.open_scorer(tiny["target"])
    table = sources.compute(scorer, "self", texts, top_k=6)
    vocab = sources.token_strings(tokenizer)
    tokenised = [sources.tokenise_hf(tokenizer, t) for t in texts]
    examples = build(tokenised, vocab, [table], [VocabMap(table.vocab, vocab)], "minCE")
    for ex in examples:
        assert len(ex.ids) <= 40
        assert ex.matched[0] == len(ex.ids) - ex.first_label
        with torch.inference_mode():
            logits = scorer.model(torch.tensor([list(ex.ids)])).logits[0]
        probs = torch.softmax(logits.double(), -1)
        for position in range(ex.first_label, len(ex.ids)):
            top = torch.topk(probs[position - 1], 6)
            want = dict(
                zip(top.indices.tolist(), (top.values / top.values.sum()).tolist(), strict=True)
            )
            pairs = zip(
                ex.fused_ids[position].tolist(), ex.fused_probs[position].tolist(), strict=True
            )
            got = {k: v for k, v in pairs if v > 0}
            assert got.keys() == want.keys()
            for key in want:
                assert got[key] == pytest.approx(want[key], abs=1e-4)
    scorer.close()


def test_cross_tokenizer_alignment_maps_through_strings(tiny: dict[str, Path]) -> None:
    tokenizer = tokenizer_of(tiny["target"])
    texts = cut_texts(tokenizer, TEXTS, 48)
    table, _ = sources.table(str(tiny["b"]), texts, 5, n_ctx=128)
    vocab = sources.token_strings(tokenizer)
    vmap = VocabMap(table.vocab, vocab)
    tokenised = [sources.tokenise_hf(tokenizer, t) for t in texts]
    examples = build(tokenised, vocab, [table], [vmap], "minCE")
    predicted = sum(len(e.ids) - e.first_label for e in examples)
    share = sum(e.matched[0] for e in examples) / predicted
    assert 0.3 < share < 1.0  # the 290-token vocabulary splits some of the target's tokens
    for source_id in {int(i) for t in table.topk_ids for i in t.ravel() if i >= 0}:
        text = table.vocab[source_id]
        if text in vmap.exact:
            assert vocab[vmap(source_id)] == text
    for ex in examples:
        np.testing.assert_allclose(ex.fused_probs[ex.first_label :].sum(axis=1), 1.0, rtol=1e-5)


def test_avgce_weighs_sources_by_inverse_cross_entropy(tiny: dict[str, Path]) -> None:
    tokenizer = tokenizer_of(tiny["target"])
    texts = cut_texts(tokenizer, TEXTS[:2], 48)
    tables = [sources.table(str(tiny[n]), texts, 3, n_ctx=128)[0] for n in ("a", "b")]
    vocab = sources.token_strings(tokenizer)
    maps = [VocabMap(t.vocab, vocab) for t in tables]
    tokenised = [sources.tokenise_hf(tokenizer, t) for t in texts]
    avg = build(tokenised, vocab, tables, maps, "avgCE")
    alone = build(tokenised, vocab, tables[:1], maps[:1], "avgCE")
    ce = [t.ce[0] for t in tables]
    w = (1 / ce[0]) / (1 / ce[0] + 1 / ce[1])
    ex, ex_a = avg[0], alone[0]
    checked = 0
    for p in range(ex.first_label, len(ex.ids)):
        got = dict(zip(ex.fused_ids[p].tolist(), ex.fused_probs[p].tolist(), strict=True))
        only_a = dict(zip(ex_a.fused_ids[p].tolist(), ex_a.fused_probs[p].tolist(), strict=True))
        if len([v for v in got.values() if v > 0]) > 3:  # both sources offered here
            mass_a = sum(got.get(k, 0.0) for k in only_a if only_a[k] > 0)
            assert mass_a >= w - 1e-4
            checked += 1
    assert checked > 0


def test_training_lowers_the_fusion_loss(tiny: dict[str, Path], tmp_path: Path) -> None:
    recipe = parse_fuse_recipe(
        yaml.safe_dump(
            recipe_dict(
                tiny, steps=40, batch_size=4, learning_rate=2e-2, save_every=100, **{"lambda": 0.0}
            )
        )
    )
    seen: list[Any] = []
    result = fuse(recipe, tmp_path / "out", on_step=lambda loss, total: seen.append(loss))
    assert [x.step for x in seen] == list(range(1, 41))
    assert result.last_loss < 0.85 * result.first_loss
    assert all(x.loss == pytest.approx(x.fusion) for x in seen)  # lambda 0: fusion only
    assert 0 < result.matched[str(tiny["b"])] < result.matched[str(tiny["a"])] <= 1


def test_cli_writes_a_loadable_checkpoint_with_lineage(
    tiny: dict[str, Path], tmp_path: Path, isolated_db: Path
) -> None:
    from transformers import AutoModelForCausalLM

    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(tiny)))
    out = tmp_path / "fused"
    assert _run("fuse", "--quiet", str(path), "--out", str(out)) == 0
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert model.config.vocab_size == 320
    lineage = json.loads((out / "codeens_lineage.json").read_text())
    assert lineage["method"] == "fusellm:minCE" and lineage["steps"] == 4
    assert [s["role"] for s in lineage["sources"]] == ["target", "source", "source"]
    assert not (out / ".codeens-fuse-state").exists()
    rows = list(Store(isolated_db).lineage(None))
    assert [(r.kind, r.method) for r in rows] == [("fuse", "fusellm:minCE")]
    assert rows[0].model_dir == str(out.resolve())
    # a second run into the same folder is refused, the model kept
    assert _run("fuse", "--quiet", str(path), "--out", str(out)) == 2
    assert (out / "codeens_lineage.json").is_file()


def test_an_interrupted_run_resumes_to_the_same_weights(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    recipe = parse_fuse_recipe(yaml.safe_dump(recipe_dict(tiny, steps=5, save_every=2)))
    straight = tmp_path / "straight"
    fuse(recipe, straight)

    def stop_at_3(loss: Any, total: int) -> None:
        if loss.step == 3:
            raise KeyboardInterrupt

    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        fuse(recipe, broken, on_step=stop_at_3)
    state = json.loads((broken / ".codeens-fuse-state" / "state.json").read_text())
    assert state["step"] == 2
    seen: list[int] = []
    fuse(recipe, broken, on_step=lambda loss, total: seen.append(loss.step))
    assert seen == [3, 4, 5]
    a, b = (
        load_file(str(straight / "model.safetensors")),
        load_file(str(broken / "model.safetensors")),
    )
    for name in a:
        np.testing.assert_allclose(a[name].numpy(), b[name].numpy(), atol=1e-6)
    # another recipe must not resume this state
    other = parse_fuse_recipe(yaml.safe_dump(recipe_dict(tiny, steps=5, save_every=2, seed=9)))
    with pytest.raises(KeyboardInterrupt):
        fuse(other, tmp_path / "third", on_step=stop_at_3)
    from codeens.fusellm.recipe import FuseRecipeError

    with pytest.raises(FuseRecipeError, match="another recipe"):
        fuse(recipe, tmp_path / "third")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 2}, "unknown key 'epochs'"),
        ({"fusion": "maxCE"}, "fusion"),
        ({"lambda": 1.5}, "lambda"),
        ({"sources": []}, "sources"),
        ({"data": "/no/such/corpus.jsonl"}, "no such file"),
        ({"sources": ["/no/such/model.gguf"]}, "/no/such/model.gguf"),
    ],
)
def test_bad_recipes_are_one_line_and_exit_2(
    tiny: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    message: str,
) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(tiny, **change)))
    assert _run("fuse", str(path), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def _run(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
