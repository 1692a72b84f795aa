"""Plain float64 numpy/scipy references for Procrustes, mutual k-NN and RSA.

Literal and slow (Python loops over layers, rows and pairs), sharing nothing with mossa's
batched torch code but the definitions:

* Procrustes: columns centred, each side scaled to unit Frobenius norm, the orthogonal R
  of ``scipy.linalg.orthogonal_procrustes`` (narrower side padded with zero columns), and
  1 - d²/2 with d = ||x̂ - ŷ R||_F.
* mutual k-NN: cosine similarity row by row, neighbours by sorting, shared share per row.
* RSA: 1 - Pearson correlation for each pair i < j (``np.corrcoef``), then the Spearman
  correlation with average ranks counted pairwise (no sorting).

The ``origin`` variants are the bootstrap definitions: rows of a resample that are copies
of one original row (same origin) count as that row.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.linalg import orthogonal_procrustes


def _layers(f, x, y, *args):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 2:
        return f(x, y, *args)
    return np.array([f(a, b, *args) for a, b in zip(x, y, strict=True)])


def _procrustes_2d(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    x = x / np.linalg.norm(x)
    y = y / np.linalg.norm(y)
    width = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, width - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, width - y.shape[1])))
    r, _ = orthogonal_procrustes(y, x)  # argmin_R ||y R - x||_F over orthogonal R
    distance_sq = np.sum((x - y @ r) ** 2)
    return 1.0 - distance_sq / 2.0


def procrustes(x, y):
    """1 - d²/2 for the orthogonal Procrustes distance d of unit-norm centred x and y."""
    return _layers(_procrustes_2d, x, y)


def _neighbour_origins(x: np.ndarray, k: int, origin: np.ndarray) -> list[list[int]]:
    """Per row, the origins of its k most cosine-similar rows of other origin."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = []
    for i in range(len(x)):
        candidates = [
            (float(unit[i] @ unit[j]), j) for j in range(len(x)) if origin[j] != origin[i]
        ]
        candidates.sort(key=lambda pair: -pair[0])
        out.append([int(origin[j]) for _, j in candidates[:k]])
    return out


def _mutual_knn_2d(x: np.ndarray, y: np.ndarray, k: int, origin=None) -> float:
    origin = np.arange(len(x)) if origin is None else np.asarray(origin)
    nx = _neighbour_origins(x, k, origin)
    ny = _neighbour_origins(y, k, origin)
    shared = [sum((Counter(a) & Counter(b)).values()) / k for a, b in zip(nx, ny, strict=True)]
    return float(np.mean(shared))


def mutual_knn(x, y, k: int = 10):
    """Mean over rows of |N_x(i) ∩ N_y(i)| / k, cosine neighbours, the row itself excluded."""
    return _layers(_mutual_knn_2d, x, y, k)


def mutual_knn_resampled(x, y, k: int, rows) -> float:
    """Mutual k-NN of x[rows], y[rows]: copies of a row are that row, overlap as multisets."""
    rows = np.asarray(rows)
    x = np.asarray(x, dtype=np.float64)[rows]
    y = np.asarray(y, dtype=np.float64)[rows]
    return _mutual_knn_2d(x, y, k, origin=rows)


def _average_ranks(values: list[float]) -> np.ndarray:
    """Rank of each value among all (1-based), ties sharing the mean of their ranks."""
    v = np.asarray(values)
    return np.array([1 + np.sum(v < a) + (np.sum(v == a) - 1) / 2 for a in v])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def spearman(a, b) -> float:
    return _pearson(_average_ranks(a), _average_ranks(b))


def correlation_distances(x: np.ndarray, rows=None) -> list[float]:
    """1 - Pearson(x_i, x_j) for every pair of positions i < j holding different rows."""
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    out = []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if rows[i] != rows[j]:  # one order per pair of rows, so copies tie exactly
                a, b = sorted((rows[i], rows[j]))
                out.append(1.0 - np.corrcoef(x[a], x[b])[0, 1])
    return out


def _rsa_2d(x: np.ndarray, y: np.ndarray) -> float:
    return spearman(correlation_distances(x), correlation_distances(y))


def rsa(x, y):
    """Spearman correlation of the upper triangles of the correlation-distance matrices."""
    return _layers(_rsa_2d, x, y)


def rsa_resampled(x, y, rows) -> float:
    """RSA of x[rows], y[rows] over pairs of positions holding different original rows."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return spearman(correlation_distances(x, rows), correlation_distances(y, rows))
