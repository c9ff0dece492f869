"""Local safetensors checkpoints: a model reference in, a directory of weights out.

Weight surgery (merging, MoE building) reads tensors from ``*.safetensors`` files. A
reference may be a checkpoint directory, or a GGUF file (plain path or ``package:...``, see
:mod:`codeens.models.locate`), which is de-quantized by transformers once and saved as
safetensors under ``<cache>/transformers/<sha256 of the file>-<dtype>``: the same cache the
``transformers`` backend loads from, so either one's conversion serves the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codeens.errors import first_line
from codeens.models import locate
from codeens.models.base import ModelUnavailable

DTYPES = ("float32", "bfloat16", "float16")


def checkpoint_dir(location: str, dtype: str = "float32") -> Path:
    """The safetensors directory for ``location``; GGUF files are converted once.

    ``dtype`` is the dtype a GGUF file is de-quantized to (directories are returned as
    they are). Raises :class:`ModelUnavailable` with one line when there is no usable
    checkpoint.
    """
    path = locate.resolve(location)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"{path} has no config.json: not a model checkpoint")
        if not any(path.glob("*.safetensors")):
            raise ModelUnavailable(f"{path} has no *.safetensors weights")
        return path
    if path.suffix == ".gguf":
        return dequantized(path, dtype)[0]
    raise ModelUnavailable(f"{path} is neither a checkpoint directory nor a GGUF file")


def dequantized(gguf: Path, dtype: str = "float32") -> tuple[Path, bool]:
    """(safetensors directory for ``gguf``, whether it was already cached).

    The conversion writes into a private ``*.partial`` directory renamed into place at the
    end, so concurrent first uses never see half a checkpoint.
    """
    if dtype not in DTYPES:
        raise ModelUnavailable(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
    digest = hashlib.sha256()
    with gguf.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    target = locate.cache_dir() / "transformers" / f"{digest.hexdigest()}-{dtype}"
    if (target / "config.json").exists():
        return target, True
    torch, transformers = torch_and_transformers()
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    kwargs: dict[str, Any] = {"gguf_file": gguf.name}
    gguf_config = getattr(transformers, "GgufConfig", None)
    if gguf_config is not None:
        # Plain dense weights; a model kept in GGUF blocks cannot be saved.
        kwargs["quantization_config"] = gguf_config(dequantize=True)
    try:
        with quiet(transformers):
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name
            )
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), dtype=getattr(torch, dtype), **kwargs
            )
            model.save_pretrained(str(partial))
            tokenizer.save_pretrained(str(partial))
    except (OSError, ValueError, ImportError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ModelUnavailable(f"transformers cannot convert {gguf}: {first_line(exc)}") from exc
    try:
        partial.rename(target)
    except OSError:  # another process finished first; its copy is as good
        shutil.rmtree(partial, ignore_errors=True)
    return target, False


def torch_and_transformers() -> tuple[Any, Any]:
    """The torch and transformers modules, imported on first use.

    Raises :class:`ModelUnavailable` naming the one that is missing. Both come back as
    ``Any``: the transformers stubs disagree with its documented calls.
    """
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ModelUnavailable(
            f"{exc.name} is not installed (pip install torch transformers)"
        ) from exc
    return torch, transformers


@contextlib.contextmanager
def quiet(transformers: Any) -> Iterator[None]:
    """No progress bars or info logging from transformers; restored afterwards."""
    logging = transformers.utils.logging
    bars, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
