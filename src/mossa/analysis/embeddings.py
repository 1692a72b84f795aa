"""Two-dimensional t-SNE maps of the states, coloured by cluster in the report (Fig. 4)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from mossa.analysis.paper import PAPER_TSNE_LAYERS, scale_layer

PCA_DIMS = 50  # usual reduction before t-SNE: denoises and speeds up neighbour search
MAX_POINTS = 600  # t-SNE cost grows fast with N; a stratified sample keeps every task visible


def default_layers(n_layers: int, requested: list[int] | None = None) -> list[int]:
    """Layers to embed: ``requested``, or the paper's layers scaled to ``n_layers``."""
    if requested is not None:
        bad = [layer for layer in requested if not 0 <= layer <= n_layers]
        if bad:
            raise ValueError(f"analysis.tsne_layers {bad} outside 0..{n_layers}")
        return sorted(set(requested))
    return sorted({scale_layer(layer, n_layers) for layer in PAPER_TSNE_LAYERS})


def tsne_rows(
    states: dict[str, np.ndarray],
    tasks: list[str],
    clusters: list[str],
    layers: list[int],
    *,
    perplexity: float,
    seed: int,
) -> list[dict]:
    """Rows of tsne.csv: a 2-D embedding of every row of the stacked states per (model, layer).

    Parameters
    ----------
    states : dict model -> array [L+1, N, d]
    tasks, clusters : list of str, length N
        Task and cluster of each row.
    layers : list of int
    perplexity : float
        Capped at (N - 1) / 3 so that small runs still embed.
    seed : int

    Returns
    -------
    list of dict  model, layer, task, cluster, x, y
        For at most :data:`MAX_POINTS` rows, the same equal share of every task's rows
        (seeded) in every map.
    """
    if not states or not layers:
        return []
    keep = stratified_sample(tasks, MAX_POINTS, seed)
    rows = []
    for model, hidden in states.items():
        for layer in layers:
            xy = embed(hidden[layer][keep], perplexity=perplexity, seed=seed)
            rows.extend(
                {
                    "model": model,
                    "layer": layer,
                    "task": tasks[i],
                    "cluster": clusters[i],
                    "x": float(p[0]),
                    "y": float(p[1]),
                }
                for i, p in zip(keep, xy, strict=True)
            )
    return rows


def stratified_sample(groups: list[str], max_points: int, seed: int) -> np.ndarray:
    """Indices of at most ~``max_points`` rows, the same number from each group, sorted."""
    groups_arr = np.asarray(groups)
    names = list(dict.fromkeys(groups))
    per_group = max(1, max_points // max(1, len(names)))
    rng = np.random.default_rng(seed)
    picked = []
    for name in names:
        idx = np.flatnonzero(groups_arr == name)
        picked.append(idx if len(idx) <= per_group else rng.choice(idx, per_group, replace=False))
    return np.sort(np.concatenate(picked))


def embed(x: np.ndarray, *, perplexity: float, seed: int) -> np.ndarray:
    """t-SNE of rows of ``x`` [N, d] after PCA to at most 50 dimensions, [N, 2]."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 states, got {n}")
    x = x - x.mean(axis=0)
    scale = np.abs(x).max()
    if scale == 0:  # all states identical (e.g. an embedding layer on one token)
        return np.zeros((n, 2))
    dims = min(PCA_DIMS, n - 1, x.shape[1])
    if x.shape[1] > dims:
        x = PCA(n_components=dims, random_state=seed).fit_transform(x)
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, (n - 1) / 3),
        init="pca",
        random_state=seed,
    )
    return tsne.fit_transform(x / scale)
