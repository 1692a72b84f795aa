"""Representation similarity: CKA (biased and debiased), Procrustes, mutual k-NN and RSA,
their calibration, streaming CKA, and PCA dims.

Usable on its own with any two matrices (numpy or torch); nothing here depends on models
or tasks. See docs/similarity.md for the estimators and numerics.
"""

from mossa.similarity._validation import DegenerateInputWarning
from mossa.similarity.calibration import (
    BootstrapResult,
    ContrastResult,
    NullResult,
    bootstrap_ci,
    bootstrap_replicates,
    contrast_interval,
    paired_bootstrap,
    permutation_null,
)
from mossa.similarity.cka import cka, cka_matrix
from mossa.similarity.measures import MEASURES, mutual_knn, procrustes, rsa
from mossa.similarity.pca import pca_dims
from mossa.similarity.streaming import StreamingCKA

__all__ = [
    "MEASURES",
    "BootstrapResult",
    "ContrastResult",
    "DegenerateInputWarning",
    "NullResult",
    "StreamingCKA",
    "bootstrap_ci",
    "bootstrap_replicates",
    "cka",
    "cka_matrix",
    "contrast_interval",
    "mutual_knn",
    "paired_bootstrap",
    "pca_dims",
    "permutation_null",
    "procrustes",
    "rsa",
]
