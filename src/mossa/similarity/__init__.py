"""Representation similarity: CKA (biased and debiased), its calibration, and PCA dims.

Usable on its own with any two matrices (numpy or torch); nothing here depends on models
or tasks. See docs/similarity.md for the estimators and numerics.
"""

from mossa.similarity._validation import DegenerateInputWarning
from mossa.similarity.calibration import (
    BootstrapResult,
    NullResult,
    bootstrap_ci,
    permutation_null,
)
from mossa.similarity.cka import cka, cka_matrix
from mossa.similarity.pca import pca_dims

__all__ = [
    "BootstrapResult",
    "DegenerateInputWarning",
    "NullResult",
    "bootstrap_ci",
    "cka",
    "cka_matrix",
    "pca_dims",
    "permutation_null",
]
