"""When: the SFT model's snapshots over training, compared with the controls and clustered.

With ``training.snapshot_every`` the SFT job keeps its adapter every K steps; extraction
stores each snapshot's states as model :func:`mossa.run_dir.snapshot_adapter` (step). Per
snapshot this module gives

* ``cka_over_training.csv``: per task and layer, debiased CKA of the snapshot with the
  task's control, the paired difference to base (same bootstrap as ``cka_diff.csv``) and,
  with cross-task controls, the snapshot's task specificity;
* the layer map of the snapshot (base rows of ``cka.csv`` with the snapshot as SFT), and
  the step from which task-specific similarity is present (:func:`emergence`);
* ``clustering_over_training.csv``: k-means ARI of the snapshot's states against task and
  cluster labels, seen and unseen tasks apart, with the implementation and figure the
  regex experiment uses (:mod:`mossa.clustering.over_steps`).
"""

from __future__ import annotations

import math

import numpy as np

from mossa import similarity
from mossa.analysis.evidence import task_evidence
from mossa.clustering.over_steps import checkpoint_ari_rows
from mossa.config import AnalysisConfig

MAJORITY = 0.5  # share of tasks whose paired interval lies above 0 that makes a layer "present"


def cka_over_training_rows(
    step: int,
    states: dict[str, np.ndarray],
    task: dict,
    *,
    others: list[str],
    analysis: AnalysisConfig,
    seed: int,
) -> list[dict]:
    """Rows of cka_over_training.csv for one snapshot and task.

    ``states`` holds [L+1, n, d] arrays of the task's prompts: ``base``, ``snapshot``,
    ``control`` and each of ``others`` (other tasks' controls; none: specificity is NaN).
    """
    view = {**states, "sft": states["snapshot"]}
    evidence = task_evidence(view, task, others=others, seeds=[], analysis=analysis, seed=seed)
    cka = similarity.cka(
        np.asarray(states["snapshot"], dtype=np.float64),
        np.asarray(states["control"], dtype=np.float64),
        debiased=True,
        kernel=analysis.kernel,
        threshold=analysis.threshold,
    )
    spec = {r["layer"]: r for r in evidence["specificity"] if r["model"] == "sft"}
    nan = {"specificity": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    return [
        {
            "step": int(step),
            "task": task["name"],
            "cluster": task["cluster"],
            "seen": bool(task["seen"]),
            "layer": d["layer"],
            "cka": float(cka[d["layer"]]),
            "diff": d["diff"],
            "diff_ci_low": d["ci_low"],
            "diff_ci_high": d["ci_high"],
            "diff_p_value": d["p_value"],
            "specificity": spec.get(d["layer"], nan)["specificity"],
            "specificity_ci_low": spec.get(d["layer"], nan)["ci_low"],
            "specificity_ci_high": spec.get(d["layer"], nan)["ci_high"],
        }
        for d in evidence["cka_diff"]
    ]


def snapshot_cka_rows(rows: list[dict], step: int) -> list[dict]:
    """cka.csv-schema rows (model "sft") of one snapshot, for the layer map at that step."""
    return [
        {
            "model": "sft",
            "task": r["task"],
            "cluster": r["cluster"],
            "seen": r["seen"],
            "layer": r["layer"],
            "cka": r["cka"],
        }
        for r in rows
        if r["step"] == step
    ]


def emergence(rows: list[dict], tasks: list[str] | None = None) -> dict:
    """The step from which task-specific similarity is present, and in which layers.

    A (step, layer) is *present* when at least half of the tasks (``tasks``; default all)
    have a paired SFT-minus-base interval above 0. The emergence step is the first
    snapshot from which some layer stays present at every later snapshot; ``layers`` are
    the layers that do so from that step on. Layer 0 (embeddings) is left out.
    Returns ``{"step": int | None, "layers": [...], "present": {step: [layers]}}``.
    """
    picked = [r for r in rows if r["layer"] > 0 and (tasks is None or r["task"] in tasks)]
    steps = sorted({r["step"] for r in picked})
    layers = sorted({r["layer"] for r in picked})
    above: dict[tuple[int, int], list[bool]] = {}
    for r in picked:
        above.setdefault((r["step"], r["layer"]), []).append(r["diff_ci_low"] > 0)
    present = {
        s: [layer for layer in layers if np.mean(above.get((s, layer), [False])) >= MAJORITY]
        for s in steps
    }
    for i, s in enumerate(steps):
        lasting = [layer for layer in present[s] if all(layer in present[t] for t in steps[i:])]
        if lasting:
            return {"step": s, "layers": lasting, "present": present}
    return {"step": None, "layers": [], "present": present}


def clustering_over_training_rows(
    step: int,
    splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    seed: int,
    n_init: int = 5,
) -> list[dict]:
    """Rows of clustering_over_training.csv for one snapshot.

    ``splits`` maps "seen" / "unseen" to (states [L+1, N, d], task labels [N], cluster
    labels [N]); a split without tasks is left out, one with a single task or cluster gets
    NaN for that label kind.
    """
    rows = []
    for split, (states, task_labels, cluster_labels) in splits.items():
        if states.shape[1] == 0:
            continue
        rows += checkpoint_ari_rows(
            step,
            split,
            states,
            {"task": task_labels, "cluster": cluster_labels},
            n_init=n_init,
            seed=seed,
            silhouette=True,
        )
    return rows
