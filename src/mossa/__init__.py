"""mossa: where and when language models hold task-specific information."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public numeric API, imported lazily so that `import mossa` (and `mossa --help`) does not
# pay for torch until a function is used.
_LAZY = {
    "cka": "mossa.similarity",
    "cka_matrix": "mossa.similarity",
    "pca_dims": "mossa.similarity",
    "permutation_null": "mossa.similarity",
    "bootstrap_ci": "mossa.similarity",
    "procrustes": "mossa.similarity",
    "mutual_knn": "mossa.similarity",
    "rsa": "mossa.similarity",
    "StreamingCKA": "mossa.similarity",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mossa' has no attribute {name!r}")
