"""The tiny GGUF builder: llama.cpp loads it and its tokenizer matches the HF one."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_gguf import build_tiny_gguf, train_tokenizer
from tiny_models import CHAT_TEMPLATE, CORPUS

llama_cpp = pytest.importorskip("llama_cpp")

SIZES = (320, 290)
EXTRA_TEXTS = ["héllo ∑ 3\n", "  x\t\ty = 'ünïcode' 🐍\r\n", "", " "]


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level map inverted: unicode character -> byte."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("tiny_gguf")
    return {n: build_tiny_gguf(out / f"tiny-{n}.gguf", vocab_size=n) for n in SIZES}


@pytest.fixture(scope="module")
def llamas(ggufs: dict[int, Path]):
    models = {
        n: llama_cpp.Llama(model_path=str(p), n_ctx=256, verbose=False) for n, p in ggufs.items()
    }
    yield models
    for m in models.values():
        m.close()


@pytest.fixture(scope="module")
def hf() -> dict[int, object]:
    return {n: train_tokenizer(n) for n in SIZES}


def test_loads_with_metadata(llamas, hf) -> None:
    for n, llm in llamas.items():
        assert llm.n_vocab() == hf[n].get_vocab_size() == n
        assert llm.token_bos() == hf[n].token_to_id("<s>")
        assert llm.token_eos() == hf[n].token_to_id("</s>")
        assert llm.metadata["general.architecture"] == "llama"
        assert llm.metadata["tokenizer.chat_template"] == CHAT_TEMPLATE
        assert llm.metadata["tokenizer.ggml.add_bos_token"] == "false"


@pytest.mark.parametrize("n", SIZES)
def test_every_token_detokenizes_like_hf(llamas, hf, n: int) -> None:
    llm, tok = llamas[n], hf[n]
    byte_of = _byte_decoder()
    specials = {tok.token_to_id(s) for s in ("<s>", "</s>", "<pad>")}
    for i in range(n):
        got = llm.detokenize([i])
        if i in specials:
            assert got == b"", i
            continue
        expected = bytes(byte_of[c] for c in tok.id_to_token(i))
        assert got == expected, (i, tok.id_to_token(i))
        assert got.decode("utf-8", errors="replace") == tok.decode([i]), i


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("text", sorted(set(CORPUS)) + EXTRA_TEXTS)
def test_tokenize_round_trips_and_matches_hf(llamas, hf, n: int, text: str) -> None:
    llm = llamas[n]
    ids = llm.tokenize(text.encode(), add_bos=False, special=False)
    assert llm.detokenize(ids) == text.encode()
    assert ids == hf[n].encode(text).ids


def test_vocab_sizes_give_different_tokenizations(llamas, hf) -> None:
    text = "def add(a, b):\n    return a + b\n"
    big = llamas[320].tokenize(text.encode(), add_bos=False, special=False)
    small = llamas[290].tokenize(text.encode(), add_bos=False, special=False)
    assert big != small
    assert len(small) > len(big)
    # some token of the larger vocabulary is several tokens of the smaller one
    vocab_small = hf[290].get_vocab()
    assert any(t not in vocab_small for t in hf[320].get_vocab())


def test_greedy_completion_runs(llamas) -> None:
    out = llamas[320].create_completion("def add", max_tokens=8, temperature=0)
    assert isinstance(out["choices"][0]["text"], str)
    assert out["choices"][0]["finish_reason"] in ("length", "stop")


def test_same_seed_same_bytes(tmp_path: Path, ggufs: dict[int, Path]) -> None:
    again = build_tiny_gguf(tmp_path / "again.gguf", vocab_size=320, seed=0)
    assert again.read_bytes() == ggufs[320].read_bytes()
    other = build_tiny_gguf(tmp_path / "other.gguf", vocab_size=320, seed=1)
    assert other.read_bytes() != ggufs[320].read_bytes()
    assert other.stat().st_size == again.stat().st_size
