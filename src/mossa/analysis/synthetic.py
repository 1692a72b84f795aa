"""Synthetic runs with planted structure, to check the analysis end to end.

A synthetic run directory holds what the analysis reads (config, tasks.json, activation
store, task metrics) but its states are drawn so that the answers are known:

* each task has latent prompt factors ``P`` [n, d]; layer l of a model is
  ``sqrt(w) P A_l + sqrt(1 - w) Q A'_l + noise`` with fixed random layer maps ``A_l,
  A'_l`` and model-own factors ``Q``; the control has ``w = 1``. The similarity weight
  ``w`` of a model to the control is what the run plants, layer by layer.
* SFT: ``w = 0`` before ``boundaries[0]``, rising linearly through the planted transition
  layers ``boundaries[0]..boundaries[1]``, ``w = q_t`` after, where ``q_t`` grows with the
  task's Flesch-Kincaid grade (planted readability effect). Without boundaries, SFT is
  independent of the controls everywhere (pure noise).
* base: independent of the controls (``base_similarity="none"``), or, as in the paper,
  similar in low layers and less so higher up (``"decreasing"``); in the shared layers
  SFT then sits below base.
* Cluster structure: rows of a task are shifted by a cluster centroid, weakly for base,
  strongly for SFT from the transition on (ARI rises there).
* Layer 0 (embeddings) is the same for every model, as LoRA leaves embeddings untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mossa.config import AnalysisConfig, RunConfig, dump_config
from mossa.io import atomic_write_text
from mossa.run_dir import RunDir
from mossa.tasks import CLUSTERS, UNSEEN_CLUSTER


def planted_weight(n_layers: int, boundaries: tuple[int, int]) -> np.ndarray:
    """Planted SFT similarity ramp over layers 0..L: 0, linear through the transition, 1.

    The weight rises at every transition layer ``b1..b2`` (reaching 1 at ``b2``) and nowhere
    else, so the planted groups are shared 1..b1-1, transition b1..b2, refinement b2+1..L.
    """
    b1, b2 = boundaries
    if not 2 < b1 <= b2 < n_layers:
        raise ValueError(f"boundaries must satisfy 2 < b1 <= b2 < {n_layers}, got {boundaries}")
    layers = np.arange(n_layers + 1, dtype=np.float64)
    ramp = (layers - b1 + 1) / (b2 - b1 + 1)
    return np.where(layers < b1, 0.0, np.where(layers > b2, 1.0, ramp))


def make_synthetic_run(
    run_dir: Path,
    *,
    n_layers: int = 12,
    n_tasks: int = 8,
    n_unseen: int = 2,
    n_clusters: int = 4,
    n: int = 40,
    d: int = 32,
    boundaries: tuple[int, int] | None = (5, 8),
    base_similarity: str = "none",
    noise: float = 0.3,
    analysis: AnalysisConfig | None = None,
    seed: int = 0,
) -> RunConfig:
    """Write a synthetic run into ``run_dir`` and return its config.

    Parameters
    ----------
    n_layers : int  blocks L (states have L + 1 layers)
    n_tasks, n_unseen : int  seen tasks (spread over ``n_clusters`` clusters) and unseen ones
    n, d : int  prompts per task and state width
    boundaries : (b1, b2) or None  first and last planted transition layer; None: noise
    base_similarity : "none" or "decreasing"
    noise : float  isotropic noise added to every non-embedding state
    analysis : AnalysisConfig  written into the run's config (default: small counts)
    seed : int
    """
    if base_similarity not in ("none", "decreasing"):
        raise ValueError(f"base_similarity must be 'none' or 'decreasing', got {base_similarity!r}")
    run = RunDir(run_dir)
    rng = np.random.default_rng(seed)
    analysis = analysis or AnalysisConfig(permutations=50, bootstrap=50, group_bootstrap=200)
    cfg = RunConfig(name="synthetic", seed=seed, analysis=analysis)
    atomic_write_text(run.config, dump_config(cfg))

    ramp = planted_weight(n_layers, boundaries) if boundaries else np.zeros(n_layers + 1)
    layers = np.arange(n_layers + 1)
    if base_similarity == "decreasing":
        base_w = 0.85 - 0.6 * layers / n_layers
    else:
        base_w = np.zeros(n_layers + 1)
    maps = rng.standard_normal((2, n_layers + 1, d, d)) / np.sqrt(d)
    centroids = rng.standard_normal((n_clusters, n_layers + 1, d))

    seen_clusters = [c for c in CLUSTERS if c != UNSEEN_CLUSTER]
    if not 1 <= n_clusters <= len(seen_clusters):
        raise ValueError(f"n_clusters must be in 1..{len(seen_clusters)}, got {n_clusters}")
    names = [f"task{i:02d}" for i in range(n_tasks + n_unseen)]
    grade = rng.uniform(4.0, 14.0, size=len(names))
    quality = 0.55 + 0.45 * (grade - 4.0) / 10.0
    store = run.store()
    records, metrics = [], []
    for i, name in enumerate(names):
        seen = i < n_tasks
        cluster = seen_clusters[i % n_clusters] if seen else UNSEEN_CLUSTER
        sft_w = ramp * quality[i] * (1.0 if seen else 0.6)
        sft_w = sft_w + 0.5 * base_w * (1 - ramp)  # below base in the shared layers
        shift = {"base": 0.3 * np.ones(n_layers + 1), "sft": 0.3 + 1.5 * ramp}
        if boundaries is None:
            shift = {"base": np.zeros(n_layers + 1), "sft": np.zeros(n_layers + 1)}
        factors = rng.standard_normal((n, d))
        prompts = [f"{name} prompt {j}" for j in range(n)]
        weights = {"control": np.ones(n_layers + 1), "base": base_w, "sft": sft_w}
        for model, w in weights.items():
            own = rng.standard_normal((n, d))
            hidden = (
                np.sqrt(w)[:, None, None] * np.einsum("nd,lde->lne", factors, maps[0])
                + np.sqrt(1 - w)[:, None, None] * np.einsum("nd,lde->lne", own, maps[1])
                + noise * rng.standard_normal((n_layers + 1, n, d))
            )
            hidden[0] = factors @ maps[0][0]
            if seen and model in shift:
                hidden += shift[model][:, None, None] * centroids[i % n_clusters][:, None, :]
            store.save(
                model,
                name,
                hidden.astype(np.float32),
                prompts=prompts,
                meta={"source": "synthetic"},
            )
        records.append(
            {
                "name": name,
                "cluster": cluster,
                "seen": seen,
                "metric": "accuracy",
                "n_train": int(rng.integers(100, 3000)),
                "n_validation": 32,
                "n_test": n,
                "n_templates": 10,
                "flesch_kincaid": float(grade[i]),
                "coleman_liau": float(grade[i] + rng.normal(0.0, 1.0)),
                "n_readability": n,
            }
        )
        base_acc = float(rng.uniform(0.2, 0.5))
        metrics.append(
            {
                "task": name,
                "cluster": cluster,
                "metric": "accuracy",
                "base": base_acc,
                "sft": base_acc + 0.3 * seen,
                "control": base_acc + 0.35,
            }
        )
    analysis_prompts = [
        {"task": name, "prompt": f"{name} prompt {j}"} for name in names for j in range(n)
    ]
    run.write_tasks(records, analysis_prompts, suite=None)
    run.write_task_metrics(metrics)
    return cfg
