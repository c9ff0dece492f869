"""Model.score: log p(continuation | prefix) from llama.cpp on the real SmolLM2 GGUF."""

from __future__ import annotations

import pytest
from models_fixtures import ADD_PROMPT, SMOLLM2, llamacpp_config

from codeens.models.base import CannotScore, ModelConfig, ModelUnavailable, SamplingParams
from codeens.models.llamacpp import LlamaCpp
from codeens.models.replay import Replay

pytest_plugins = ["models_fixtures"]

PREFIX = ADD_PROMPT.prefix  # def add(a, b): + its docstring
GREEDY = SamplingParams(temperature=0.0, max_tokens=16)


def test_a_continuation_that_follows_scores_higher_than_a_scrambled_one(
    smollm2: LlamaCpp,
) -> None:
    right = smollm2.score(PREFIX, "    return a + b\n")
    scrambled = smollm2.score(PREFIX, "    b + return a\n")
    assert right.tokens == scrambled.tokens > 0  # the same tokens, reordered
    assert right.logprob < 0 and right.mean == pytest.approx(right.logprob / right.tokens)
    assert right.logprob > scrambled.logprob + 5
    assert smollm2.score(PREFIX, "    return a + b\n") == right  # deterministic


def test_the_prefix_conditions_the_score(smollm2: LlamaCpp) -> None:
    code = "def add(a, b):\n    return a + b\n\n\nadd.__doc__ = '''"
    about = smollm2.score(code, "Return the sum of a and b.")
    other = smollm2.score(code, "Return the product of a and b.")
    assert about.tokens == other.tokens and about.logprob > other.logprob


def test_scoring_leaves_sampling_as_it_was(smollm2_file: object) -> None:
    """The decoder keeps the scored tokens in its cache and the next request reuses the
    prefix it shares with them (here all of a base model's prompt): it must see nothing
    of the scored continuation.

    Compared with a request after the same request, not with a cold one: either way only
    the prompt's last token is evaluated again, alone, and a batch of one token computes
    other floats than the whole prompt's batch did (greedy answers can differ from a cold
    run's; a property of prefix reuse, not of scoring).
    """
    model = LlamaCpp(llamacpp_config(SMOLLM2, chat=False, name="base", n_ctx=1024))
    try:
        model.complete(ADD_PROMPT, 1, GREEDY, seed=0)
        again = [c.text for c in model.complete(ADD_PROMPT, 1, GREEDY, seed=0)]
        model.score(PREFIX, "    return a * b\n" * 20)
        assert [c.text for c in model.complete(ADD_PROMPT, 1, GREEDY, seed=0)] == again
    finally:
        model.close()


def test_text_longer_than_the_window_or_empty_is_one_line(smollm2: LlamaCpp) -> None:
    with pytest.raises(ModelUnavailable, match="exceed context window"):
        smollm2.score(PREFIX, "x = 1\n" * 2000)
    with pytest.raises(ModelUnavailable, match="nothing to score"):
        smollm2.score(PREFIX, "")
    assert smollm2.score(PREFIX, "    return a + b\n").tokens > 0  # still usable


def test_backends_that_cannot_score_say_so() -> None:
    replay = Replay(ModelConfig(name="r", backend="replay", location="none.jsonl"))
    assert not Replay.can_score and LlamaCpp.can_score
    with pytest.raises(CannotScore, match="the replay backend cannot score text"):
        replay.score("a", "b")
