"""Spectral complexity of the states: principal components for a share of the variance.

n centred states span at most n - 1 dimensions, so a count at n - 1 says only that the
states need at least that many: such rows are flagged ``capped``. Counts get no interval
over prompts: resampling prompts with replacement repeats some, which lowers the rank (on
48 prompts whose states need 37 components the resamples gave 23 to 29), so a prompt
bootstrap misplaces the interval. The findings put intervals over tasks instead.
"""

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
    list of dict  model, task, layer, dims99, capped (dims99 >= n - 1: a lower bound)
    """
    dims = np.atleast_1d(
        similarity.pca_dims(np.asarray(hidden, dtype=np.float64), variance=variance)
    )
    cap = np.shape(hidden)[1] - 1
    return [
        {
            "model": model,
            "task": task,
            "layer": layer,
            "dims99": int(dims[layer]),
            "capped": bool(dims[layer] >= cap),
        }
        for layer in range(len(dims))
    ]
