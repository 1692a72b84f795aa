"""ARI over checkpoints, shared by the regex experiment and the analysis over training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mossa.clustering.over_steps import ari_over_steps_figure, checkpoint_ari_rows, series


def planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """States [3, 60, 8]: layer 0 noise, layer 1 clustered by the 2 clusters, layer 2 by
    the 4 tasks (tasks 0,1 in cluster a; 2,3 in cluster b)."""
    rng = np.random.default_rng(seed)
    task = np.repeat(np.arange(4), 15)
    cluster = task // 2
    centres = rng.normal(size=(4, 8)) * 10
    states = np.stack(
        [
            rng.normal(size=(60, 8)),
            (centres[:2] * 2)[cluster] + rng.normal(size=(60, 8)),
            centres[task] + rng.normal(size=(60, 8)),
        ]
    )
    return states, task, cluster


def test_rows_recover_planted_layers_and_label_kinds():
    states, task, cluster = planted()
    rows = checkpoint_ari_rows(
        7, "seen", states, {"task": task, "cluster": cluster}, silhouette=True, extra={"x": 1}
    )
    got = {(r["labels"], r["layer"]): r for r in rows}
    assert len(rows) == 6 and all(
        r["step"] == 7 and r["split"] == "seen" and r["x"] == 1 for r in rows
    )
    assert abs(got[("task", 0)]["ari"]) < 0.15 and abs(got[("cluster", 0)]["ari"]) < 0.15
    assert got[("cluster", 1)]["ari"] > 0.95 and got[("task", 1)]["ari"] < 0.7
    assert got[("task", 2)]["ari"] > 0.95
    assert got[("task", 2)]["silhouette"] > got[("task", 0)]["silhouette"]


def test_single_label_gives_nan_and_bad_shape_is_refused():
    states, task, _ = planted()
    rows = checkpoint_ari_rows(0, "unseen", states, {"task": np.zeros(60)})
    assert all(math.isnan(r["ari"]) for r in rows)
    with pytest.raises(ValueError, match="3-D"):
        checkpoint_ari_rows(0, "seen", states[0], {"task": task})


def test_series_and_figure():
    states, task, _ = planted()
    rows = [
        r for step in (10, 0, 5) for r in checkpoint_ari_rows(step, "seen", states, {"task": task})
    ]
    steps, values = series(rows, split="seen", layer=2, labels="task")
    assert steps == [0, 5, 10] and min(values) > 0.95
    png = ari_over_steps_figure(rows, splits=("seen",), title="t", ylabel="ARI", labels="task")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
