"""Spectral complexity of the states: principal components for a share of the variance."""

from __future__ import annotations

import numpy as np

from mossa import similarity


def pca_rows(model: str, task: str, hidden: np.ndarray, variance: float) -> list[dict]:
    """Rows of pca_dims.csv: components explaining ``variance`` of the states, per layer.

    Parameters
    ----------
    hidden : array [L+1, n, d]
    variance : float in (0, 1]

    Returns
    -------
    list of dict  model, task, layer, dims99
    """
    dims = np.atleast_1d(
        similarity.pca_dims(np.asarray(hidden, dtype=np.float64), variance=variance)
    )
    return [
        {"model": model, "task": task, "layer": layer, "dims99": int(dims[layer])}
        for layer in range(len(dims))
    ]
