"""Per-measure MOSSA rows and where the measures' layer maps agree."""

from __future__ import annotations

import numpy as np
import pytest

from mossa.analysis.measure_tables import agreement, as_cka_rows, measure_rows
from mossa.config import AnalysisConfig

TASK = {"name": "t", "cluster": "c", "seen": True}


def states(seed: int = 0) -> dict[str, np.ndarray]:
    """sft is the control up to noise; base is unrelated to it."""
    rng = np.random.default_rng(seed)
    control = rng.normal(size=(3, 30, 8))
    return {
        "control": control,
        "sft": control + 0.1 * rng.normal(size=control.shape),
        "base": rng.normal(size=control.shape),
    }


def test_rows_per_measure_model_and_layer_with_calibration():
    cfg = AnalysisConfig(bootstrap=20, permutations=20, knn_k=5)
    rows = measure_rows(
        TASK, states(), measures=["cka", "procrustes", "mutual_knn", "rsa"], analysis=cfg, seed=0
    )
    assert len(rows) == 3 * 2 * 3  # cka has its own table
    got = {(r["measure"], r["model"], r["layer"]): r for r in rows}
    for (measure, model, layer), r in got.items():
        assert r["ci_low"] <= r["ci_high"] and r["n"] == 30
        if model == "sft":  # the planted match: above chance and above base's whole interval
            assert (
                r["value"] > r["null_p95"]
                and r["ci_low"] > got[(measure, "base", layer)]["ci_high"]
            )
        else:
            assert r["value"] < 0.6
    assert {r["cka"] for r in as_cka_rows(rows, "rsa")} == {
        r["value"] for r in rows if r["measure"] == "rsa"
    }


def test_knn_k_must_be_below_the_prompt_count():
    with pytest.raises(ValueError, match="analysis.knn_k is 30"):
        measure_rows(
            TASK, states(), measures=["mutual_knn"], analysis=AnalysisConfig(knn_k=30), seed=0
        )


def test_agreement_per_layer():
    three = {"shared": [1, 2], "transition": [3, 4], "refinement": [5, 6]}
    shifted = {"shared": [1, 3], "transition": [4, 4], "refinement": [5, 6]}
    maps = {
        "cka": {"structure": True, "groups": three},
        "rsa": {"structure": True, "groups": shifted},
        "procrustes": {"structure": False, "groups": None},
    }
    rows = agreement(maps, 6)
    assert [r["layer"] for r in rows] == list(range(1, 7))
    assert rows[2]["groups"] == {"cka": "transition", "rsa": "shared", "procrustes": None}
    assert not any(r["agree"] for r in rows)  # procrustes found no map
    two = agreement({k: maps[k] for k in ("cka", "rsa")}, 6)
    assert [r["agree"] for r in two] == [True, True, False, True, True, True]
