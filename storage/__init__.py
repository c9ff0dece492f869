"""The SQLite log: one file, one write path, append-only migrations.

This package is a leaf: it imports nothing else from codeens.
"""

from codeens.storage.db import default_db_path
from codeens.storage.models import (
    Decision,
    EvolveStep,
    Execution,
    Generation,
    Lineage,
    Problem,
    Run,
)
from codeens.storage.store import Store

__all__ = [
    "Decision",
    "EvolveStep",
    "Execution",
    "Generation",
    "Lineage",
    "Problem",
    "Run",
    "Store",
    "default_db_path",
]
