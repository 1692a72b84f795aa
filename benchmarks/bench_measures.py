"""Procrustes, mutual k-NN and RSA: mossa against the library routine, one layer at a time.

The baselines are what one would call without mossa, per layer in float64 numpy:
``scipy.linalg.orthogonal_procrustes`` (its ``scale`` is the nuclear norm of x̂ᵀ ŷ),
scikit-learn's ``NearestNeighbors(metric="cosine")`` and ``scipy.stats.spearmanr`` of
``scipy.spatial.distance.pdist(..., "correlation")``. mossa runs all layers batched in torch
(float32 products, float64 reductions). One timed run each, after a warm-up call, on the
shared machine: ratios, not absolute times, are the point. Run alone with
``python -m benchmarks.bench_measures`` (``--quick``: smaller shapes) or via ``make bench``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr
from sklearn.neighbors import NearestNeighbors

from mossa.similarity import mutual_knn, procrustes, rsa

SHAPES = [(2, 256, 4096), (2, 2000, 256)]  # [L, n, d]: MOSSA-sized and many-prompt
QUICK_SHAPES = [(2, 128, 512), (2, 500, 64)]
K = 10


def procrustes_scipy(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(0)
    y = y - y.mean(0)
    return orthogonal_procrustes(y / np.linalg.norm(y), x / np.linalg.norm(x))[1]


def mutual_knn_sklearn(x: np.ndarray, y: np.ndarray) -> float:
    def neighbours(a: np.ndarray) -> list[set[int]]:
        found = NearestNeighbors(n_neighbors=K + 1, metric="cosine").fit(a).kneighbors(a)[1]
        return [set(row) - {i} for i, row in enumerate(found)]  # drop the row itself

    nx, ny = neighbours(x), neighbours(y)
    return float(np.mean([len(a & b) / K for a, b in zip(nx, ny, strict=True)]))


def rsa_scipy(x: np.ndarray, y: np.ndarray) -> float:
    return spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).statistic


CASES: list[tuple[str, Callable, Callable]] = [
    ("procrustes", procrustes, procrustes_scipy),
    ("mutual_knn (k = 10)", lambda x, y: mutual_knn(x, y, k=K), mutual_knn_sklearn),
    ("rsa", rsa, rsa_scipy),
]


def _seconds(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(quick: bool = False) -> str:
    """Time every measure on every shape; return a markdown section."""
    lines = [
        "## Procrustes, mutual k-NN, RSA: mossa vs the library routine per layer",
        "",
        "Command: `.venv/bin/python -m benchmarks.bench_measures`"
        + (" --quick (smoke sizes: not the numbers to quote)" if quick else "")
        + f"; float32 inputs (the baselines upcast to float64), one timed run each after a "
        f"warm-up, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load "
        f"average at start {os.getloadavg()[0]:.1f}. Agreement: max |mossa - library|.",
        "",
        "| measure | [L, n, d] | library s | mossa s | speed-up | agreement |",
        "|---|---|---|---|---|---|",
    ]
    for shape in QUICK_SHAPES if quick else SHAPES:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape, dtype=np.float32)
        y = 0.5 * x + rng.standard_normal(shape, dtype=np.float32)
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        for name, ours, library in CASES:
            ours(x[:1, :64], y[:1, :64])  # warm-up
            t_lib, want = _seconds(
                lambda: np.array([library(a, b) for a, b in zip(x64, y64, strict=True)])  # noqa: B023
            )
            t_ours, got = _seconds(lambda: ours(x, y))  # noqa: B023
            lines.append(
                f"| {name} | {list(shape)} | {t_lib:.2f} | {t_ours:.2f} | {t_lib / t_ours:.1f}x "
                f"| {np.max(np.abs(got - want)):.1e} |"
            )
    lines += [
        "",
        "mossa's Procrustes takes the SVD of min(n, d1) x min(n, d2) row factors (QR when "
        "d > n) where scipy takes that of the d x d product; k-NN and RSA multiply all rows "
        "in one batched GEMM where sklearn and `pdist` work per layer (`pdist` per pair).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes")
    print(run(quick=parser.parse_args().quick))


if __name__ == "__main__":
    main()
