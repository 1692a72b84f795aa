"""The analysis over training recovers a planted step and planted layers."""

from __future__ import annotations

import numpy as np

from mossa.analysis.over_training import (
    cka_over_training_rows,
    clustering_over_training_rows,
    emergence,
    snapshot_cka_rows,
)
from mossa.config import AnalysisConfig
from mossa.run_dir import snapshot_adapter

LAYERS, N, D = 7, 40, 12  # layers 0..6
STEPS = (2, 4, 6, 8, 10)
PLANTED_STEP, PLANTED_LAYERS = 6, (4, 5, 6)
TASKS = [{"name": f"t{i}", "cluster": f"c{i % 2}", "seen": True} for i in range(4)]


def planted_states(task_index: int, step: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per layer: the control holds a task signal z; base is unrelated to it; the snapshot
    equals base until PLANTED_STEP and, from then on in PLANTED_LAYERS, z plus noise."""
    rng = np.random.default_rng([seed, task_index])
    z = rng.normal(size=(LAYERS, N, D))
    base = rng.normal(size=(LAYERS, N, D))
    control = z + 0.3 * rng.normal(size=(LAYERS, N, D))
    step_rng = np.random.default_rng([seed, task_index, step])
    snapshot = base + 0.05 * step_rng.normal(size=(LAYERS, N, D))
    if step >= PLANTED_STEP:
        for layer in PLANTED_LAYERS:
            snapshot[layer] = z[layer] + 0.3 * step_rng.normal(size=(N, D))
    return {"base": base, "snapshot": snapshot, "control": control}


def test_planted_step_and_layers_are_recovered():
    analysis = AnalysisConfig(bootstrap=40)
    rows = [
        row
        for step in STEPS
        for i, task in enumerate(TASKS)
        for row in cka_over_training_rows(
            step, planted_states(i, step), task, others=[], analysis=analysis, seed=i
        )
    ]
    assert {r["step"] for r in rows} == set(STEPS) and len(rows) == len(STEPS) * 4 * LAYERS
    found = emergence(rows)
    assert abs(found["step"] - PLANTED_STEP) <= 2  # within one snapshot (K = 2)
    assert set(found["layers"]) >= set(PLANTED_LAYERS)
    lo, hi = min(PLANTED_LAYERS), max(PLANTED_LAYERS)
    assert all(lo - 1 <= layer <= hi + 1 for layer in found["layers"])  # within one layer
    late = [r for r in rows if r["step"] == 10 and r["layer"] == 5]
    assert all(r["diff"] > 0.5 and r["diff_ci_low"] > 0 for r in late)
    early = [r for r in rows if r["step"] == 2 and r["layer"] == 5]
    assert all(abs(r["diff"]) < 0.2 for r in early)
    assert all(np.isnan(r["specificity"]) for r in rows)  # no cross-task controls given
    sft = snapshot_cka_rows(rows, 8)
    assert len(sft) == 4 * LAYERS and {r["model"] for r in sft} == {"sft"}


def test_no_planted_signal_means_no_emergence():
    analysis = AnalysisConfig(bootstrap=40)
    rows = []
    for step in STEPS:
        for i, task in enumerate(TASKS):
            states = planted_states(i, 0)  # step 0 never reaches the planted step
            rows += cka_over_training_rows(step, states, task, others=[], analysis=analysis, seed=i)
    assert emergence(rows)["step"] is None


def test_clustering_rows_per_split_and_label_kind():
    rng = np.random.default_rng(0)
    tasks = np.repeat(np.arange(4), 10)
    states = rng.normal(size=(3, 40, 6)) + 8 * np.eye(6)[tasks][None]
    rows = clustering_over_training_rows(
        4,
        {"seen": (states, tasks, tasks // 2), "unseen": (states[:, :0], tasks[:0], tasks[:0])},
        seed=0,
    )
    assert {(r["split"], r["labels"]) for r in rows} == {("seen", "task"), ("seen", "cluster")}
    assert all(r["ari"] > 0.9 for r in rows if r["labels"] == "task")
    assert snapshot_adapter(12) == "sft_step00000012"
