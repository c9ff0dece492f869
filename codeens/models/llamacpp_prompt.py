"""Prompt tokens and stop strings exactly as llama-cpp-python's own calls build them.

The batched decoder in :mod:`codeens.models.llamacpp_batch` bypasses
``Llama.create_chat_completion`` / ``create_completion``, so it must feed llama.cpp the very
tokens those calls would: any difference (a missing BOS, another rendering of the template)
changes every sample. This module mirrors llama-cpp-python 0.3.36:

* chat models: the chat format the ``Llama`` chose at load time (for a GGUF with a chat
  template, a ``Jinja2ChatFormatter`` over ``tokenizer.chat_template`` with the model's own
  BOS/EOS texts), tokenized with ``add_bos = not added_special`` and special tokens parsed;
  the formatter's stop strings (the EOS text) follow the caller's. (Its stopping criterion,
  "the last evaluated token is EOS", never fires before the end-of-generation check does,
  so it has no counterpart here);
* base models: ``create_completion`` on a string: BOS (or CLS) only when the vocabulary
  asks for it, the text tokenized with special tokens parsed, EOS (or SEP) appended only
  when the vocabulary asks for it.

The formatter is built once per loaded model (:class:`PromptRenderer`), not per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codeens.models.base import ModelUnavailable

# Chat formats the Llama can pick by itself (guessed from the template, or the fallback
# when the GGUF has none), mapped to their formatter functions in llama_chat_format.
_NAMED_FORMATTERS = {
    "chatml": "format_chatml",
    "llama-3": "format_llama3",
    "mistral-instruct": "format_mistral_instruct",
    "llama-2": "format_llama2",
}


@dataclass(frozen=True)
class Rendered:
    """What to evaluate and when to stop, for one request."""

    tokens: tuple[int, ...]
    stop: tuple[str, ...]


class PromptRenderer:
    """Renders requests for one loaded ``Llama`` the way its high-level API would."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._formatter: Any = None

    def chat(self, messages: Sequence[dict[str, str]], stop: Sequence[str]) -> Rendered:
        """``create_chat_completion(messages, stop=stop)``'s prompt tokens and stop strings."""
        result = self._chat_formatter()(messages=[dict(m) for m in messages])
        tokens = self._llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stops = list(stop)
        if result.stop is not None:
            stops += result.stop if isinstance(result.stop, list) else [result.stop]
        return Rendered(tuple(tokens), tuple(stops))

    def completion(self, text: str, stop: Sequence[str]) -> Rendered:
        """``create_completion(text, stop=stop)``'s prompt tokens (no suffix, no infill)."""
        llama = self._llama
        bos, eos = self._ends()
        body = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True) if text else []
        return Rendered(tuple(bos + body + eos), tuple(stop))

    def _ends(self) -> tuple[list[int], list[int]]:
        """The tokens ``create_completion`` puts before and after a text prompt."""
        llama = self._llama
        model = llama._model  # the library's own wrapper; its accessors are what it uses
        cls_id, sep_id = model.token_cls(), model.token_sep()
        bos = [cls_id if cls_id != -1 else llama.token_bos()]
        if not model.add_bos_token() or bos[:1] == [-1]:
            bos = []
        eos = [sep_id if sep_id != -1 else llama.token_eos()]
        if not model.add_eos_token() and sep_id == -1:
            eos = []
        return bos, eos

    def scored(self, prefix: str, continuation: str) -> tuple[tuple[int, ...], int]:
        """The tokens of ``prefix`` then ``continuation`` and where the continuation starts.

        The prefix starts as a completion prompt does (BOS when the vocabulary asks for it);
        the two texts are tokenized apart, so the continuation's tokens are the same after
        any prefix and scores of one continuation compare across prefixes. No EOS: the
        continuation is scored as text that goes on, not as the end of the document.
        """
        llama = self._llama
        head = self._ends()[0] + llama.tokenize(prefix.encode(), add_bos=False, special=False)
        tail = llama.tokenize(continuation.encode(), add_bos=False, special=False)
        return (*head, *tail), len(head)

    def _chat_formatter(self) -> Any:
        if self._formatter is None:
            self._formatter = _formatter_of(self._llama)
        return self._formatter


def _formatter_of(llama: Any) -> Any:
    """The ``ChatFormatter`` behind the handler ``create_chat_completion`` would call."""
    from llama_cpp import llama_chat_format

    if llama.chat_handler is not None:
        raise ModelUnavailable("llama.cpp: a custom chat handler cannot be batched")
    name = llama.chat_format
    if name in _NAMED_FORMATTERS:
        return getattr(llama_chat_format, _NAMED_FORMATTERS[name])
    # Llama.__init__ names metadata templates "chat_template.<x>" after their key
    # "tokenizer.chat_template.<x>", and the unnamed one "chat_template.default".
    key = "tokenizer.chat_template" if name == "chat_template.default" else f"tokenizer.{name}"
    template = llama.metadata.get(key)
    if template is None:
        raise ModelUnavailable(f"llama.cpp: unknown chat format {name!r}")
    model = llama._model
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )


def context_error(n_tokens: int, n_ctx: int) -> ValueError:
    """The error ``create_completion`` raises for a prompt that does not fit the window."""
    return ValueError(f"Requested tokens ({n_tokens}) exceed context window of {n_ctx}")
