"""Do the states of all tasks group by task cluster? (the numbers behind Fig. 4, 11, 12)

Per model and layer: k-means (k = number of clusters) of every seen task's states scored
against the cluster labels with the Adjusted Rand Index, and the silhouette of the true
cluster labels (how separated the clusters are, independent of k-means).
"""

from __future__ import annotations

import math

import numpy as np

from mossa.clustering.ari import task_clustering_ari
from mossa.clustering.over_steps import silhouette_of_labels


def clustering_rows(
    states: dict[str, np.ndarray], labels: np.ndarray, *, seed: int, n_init: int = 5
) -> list[dict]:
    """Rows of clustering.csv.

    Parameters
    ----------
    states : dict model -> array [L+1, N, d]
        Stacked states of all seen tasks (rows in the order of ``labels``).
    labels : array [N]
        Cluster label of each row.
    seed : int
        k-means initialisation and silhouette subsample seed.

    Returns
    -------
    list of dict  model, layer, ari, silhouette (NaN with fewer than 2 clusters)
    """
    labels = np.asarray(labels)
    k = len(np.unique(labels))
    rows = []
    for model, hidden in states.items():
        for layer in range(hidden.shape[0]):
            x = np.asarray(hidden[layer], dtype=np.float64)
            if k < 2:
                ari = sil = math.nan
            else:
                ari = task_clustering_ari(x, labels, n_init=n_init, seed=seed)
                sil = silhouette_of_labels(x, labels, seed)
            rows.append({"model": model, "layer": layer, "ari": ari, "silhouette": sil})
    return rows
