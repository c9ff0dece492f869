"""Kept only for ``gates.py`` and ``mixtral.py``: the reader is :mod:`codeens.tensors_io`."""

from codeens.tensors_io import Checkpoint as Checkpoint
