"""How well hidden states cluster by task: k-means with k = number of tasks, then ARI.

The Adjusted Rand Index compares the k-means partition with the task labels: 1 means the
clusters are exactly the tasks, about 0 means no more agreement than chance.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score


def task_clustering_ari(
    states: np.ndarray,
    labels: np.ndarray,
    *,
    n_clusters: int | None = None,
    n_init: int = 5,
    max_iter: int = 300,
    seed: int = 0,
) -> float:
    """Adjusted Rand Index between a k-means clustering of ``states`` and ``labels``.

    Parameters
    ----------
    states : array [n, d]  one hidden state per instance
    labels : array [n]  task of each instance
    n_clusters : number of k-means clusters; default the number of distinct labels
    n_init : k-means restarts (the lowest-inertia one is kept)
    max_iter : Lloyd iterations per restart
    seed : random state of the k-means initialisation

    Returns
    -------
    float in [-0.5, 1]
    """
    states = np.asarray(states, dtype=np.float64)
    labels = np.asarray(labels)
    if states.ndim != 2:
        raise ValueError(f"states must be 2-D [n, d], got shape {states.shape}")
    if labels.shape != (states.shape[0],):
        raise ValueError(f"labels must have shape ({states.shape[0]},), got {labels.shape}")
    if not np.isfinite(states).all():
        raise ValueError("states contain NaN or infinite values")
    k = len(np.unique(labels)) if n_clusters is None else n_clusters
    if not 1 <= k <= states.shape[0]:
        raise ValueError(f"n_clusters must be in [1, {states.shape[0]}], got {k}")
    with warnings.catch_warnings():
        # Untrained layers may have fewer distinct points than k; k-means then warns and
        # leaves clusters duplicated, which ARI scores correctly (as a coarser partition).
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed)
        assignment = kmeans.fit_predict(states)
    return float(adjusted_rand_score(labels, assignment))
