"""MOSSA CKA of base and SFT against each task's control, calibrated, every layer.

For one task the three activation files (base, sft, control) are loaded once; each
comparison is one batched call per statistic over all layers (never a loop or a process
per layer), on float64.
"""

from __future__ import annotations

import zlib

import numpy as np

from mossa import similarity
from mossa.config import AnalysisConfig

MODELS = ("base", "sft")


def pair_seed(seed: int, model: str, task: str) -> int:
    """Seed of the random draws for one (model, task) comparison, derived from the run seed.

    Stable across runs and independent of the order in which tasks are processed.
    """
    entropy = [int(seed) & 0xFFFFFFFF, zlib.crc32(model.encode()), zlib.crc32(task.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def compare_to_control(
    hidden: np.ndarray, control: np.ndarray, *, analysis: AnalysisConfig, seed: int
) -> dict[str, np.ndarray]:
    """Calibrated CKA between a model's and the control's states at every layer.

    Parameters
    ----------
    hidden, control : arrays [L+1, n, d]
        States of the same n prompts in the same order (layer 0 = embeddings).
    analysis : AnalysisConfig
        Kernel, threshold, permutation and bootstrap counts.
    seed : int
        Seed of the permutation null and the bootstrap.

    Returns
    -------
    dict of arrays
        ``cka`` (debiased) [L+1], ``cka_biased`` [L+1], ``null_p95`` [L+1] (95th
        percentile of debiased CKA after shuffling the control's rows), ``ci_low`` and
        ``ci_high`` [L+1] (bootstrap over prompts), ``cross_layer`` [L+1, L+1] (debiased,
        row = this model's layer, column = the control's layer).
    """
    if hidden.shape[:2] != control.shape[:2]:
        raise ValueError(
            f"states and control states must share [layers, n], got {hidden.shape} and "
            f"{control.shape}"
        )
    x = np.asarray(hidden, dtype=np.float64)
    y = np.asarray(control, dtype=np.float64)
    kw = {"kernel": analysis.kernel, "threshold": analysis.threshold}
    null = similarity.permutation_null(
        x, y, n_permutations=analysis.permutations, seed=seed, debiased=True, **kw
    )
    boot = similarity.bootstrap_ci(x, y, n_boot=analysis.bootstrap, seed=seed, debiased=True, **kw)
    return {
        "cka": np.asarray(boot.estimate, dtype=np.float64),  # = similarity.cka(x, y, debiased=True)
        "cka_biased": np.asarray(similarity.cka(x, y, debiased=False, **kw), dtype=np.float64),
        "null_p95": np.asarray(null.p95, dtype=np.float64),
        "ci_low": np.asarray(boot.low, dtype=np.float64),
        "ci_high": np.asarray(boot.high, dtype=np.float64),
        "cross_layer": np.asarray(similarity.cka_matrix(x, y, debiased=True, **kw)),
    }


def cka_rows(model: str, task: dict, result: dict[str, np.ndarray], n: int) -> list[dict]:
    """Rows of cka.csv for one (model, task) from :func:`compare_to_control`."""
    return [
        {
            "model": model,
            "task": task["name"],
            "cluster": task["cluster"],
            "seen": bool(task["seen"]),
            "layer": layer,
            "n": n,
            **{k: float(result[k][layer]) for k in ("cka", "cka_biased", "null_p95")},
            "ci_low": float(result["ci_low"][layer]),
            "ci_high": float(result["ci_high"][layer]),
        }
        for layer in range(len(result["cka"]))
    ]
