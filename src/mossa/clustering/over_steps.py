"""ARI over training checkpoints: one implementation and one figure for both experiments.

The regex experiment (a GPT-2 trained from scratch, Wu & Varshney) and the analysis over
instruction tuning of a real model (``tables/clustering_over_training.csv``) ask the same
question: at which step and in which layer do hidden states start to cluster by task? Both
score each (step, split, layer) with :func:`checkpoint_ari_rows` and draw the result with
:func:`ari_over_steps_figure`, so their numbers and pictures read the same way.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.metrics import silhouette_score

from mossa.clustering.ari import task_clustering_ari

SILHOUETTE_SAMPLE = 2000  # silhouette costs O(N^2 d): estimated on a seeded subsample


def checkpoint_ari_rows(
    step: int,
    split: str,
    states: np.ndarray,
    labels: dict[str, np.ndarray],
    *,
    n_init: int = 5,
    max_iter: int = 300,
    seed: int = 0,
    silhouette: bool = False,
    extra: dict | None = None,
) -> list[dict]:
    """Rows (step, split, layer, labels, ari[, silhouette]) of one checkpoint's states.

    Parameters
    ----------
    step, split : the checkpoint and the set of instances (copied into every row)
    states : array [L+1, N, d]  one state per instance at each layer (layer 0 = embeddings)
    labels : dict kind -> array [N]
        Label sets to score against (e.g. ``{"task": ..., "cluster": ...}``); k-means runs
        with k = the number of distinct labels of each kind. A kind with fewer than two
        labels gets NaN (no partition to find).
    n_init, max_iter, seed : k-means settings (see :func:`task_clustering_ari`)
    silhouette : also give the silhouette of the true labels (separation without k-means)
    extra : further columns copied into every row (e.g. ``{"position": "separator"}``)
    """
    states = np.asarray(states)
    if states.ndim != 3:
        raise ValueError(f"states must be 3-D [layers, n, d], got shape {states.shape}")
    rows = []
    for kind, y in labels.items():
        y = np.asarray(y)
        k = len(np.unique(y))
        for layer in range(states.shape[0]):
            x = np.asarray(states[layer], dtype=np.float64)
            row = {"step": int(step), "split": split, "layer": layer, "labels": kind}
            row |= extra or {}
            row["ari"] = (
                task_clustering_ari(x, y, n_init=n_init, max_iter=max_iter, seed=seed)
                if k >= 2
                else math.nan
            )
            if silhouette:
                row["silhouette"] = silhouette_of_labels(x, y, seed) if k >= 2 else math.nan
            rows.append(row)
    return rows


def silhouette_of_labels(x: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Silhouette of the true ``labels`` of states ``x`` [n, d] (0 when all states are equal)."""
    if np.ptp(x, axis=0).max() == 0:  # every state identical: no separation at all
        return 0.0
    sample = SILHOUETTE_SAMPLE if len(x) > SILHOUETTE_SAMPLE else None
    return float(silhouette_score(x, labels, sample_size=sample, random_state=seed))


def series(rows: list[dict], **match) -> tuple[list[int], list[float]]:
    """(steps, ARI) of the rows whose fields equal ``match``, ordered by step."""
    picked = sorted((r["step"], r["ari"]) for r in rows if all(r[k] == v for k, v in match.items()))
    return [s for s, _ in picked], [a for _, a in picked]


def ari_over_steps_figure(
    rows: list[dict],
    *,
    splits: tuple[str, ...],
    title: str,
    ylabel: str,
    xlabel: str = "training step",
    **match,
) -> bytes:
    """PNG: ARI against step, one line per layer (viridis, shallow to deep), a panel per split.

    Only rows whose fields equal ``match`` (e.g. ``position="separator"``) are drawn.
    """
    layers = sorted({r["layer"] for r in rows})
    cmap = colormaps["viridis"]
    fig = Figure(figsize=(5.5 * len(splits), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(splits), sharey=True))
    for ax, split in zip(axes, splits, strict=True):
        for layer in layers:
            steps, values = series(rows, split=split, layer=layer, **match)
            colour = cmap(layer / max(layers[-1], 1))
            ax.plot(steps, values, marker="o", ms=3.5, color=colour, label=f"layer {layer}")
        ax.set_title(f"{split} instances")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return buf.getvalue()
