"""More than CKA: the MOSSA comparison under every measure of ``analysis.measures``.

For each measure other than CKA (whose table is ``cka.csv``), base and SFT are compared
with each task's control at every layer, with the same calibration as CKA: a permutation
null (its 95th percentile) and a bootstrap interval over prompts. The rows go to
``tables/measures.csv``; a layer map per measure (the map of :mod:`mossa.analysis.layer_map`
on that measure's values) goes to ``tables/layer_groups_by_measure.json``, and
:func:`agreement` says, layer by layer, whether the measures put it in the same group.
"""

from __future__ import annotations

import numpy as np

from mossa import similarity
from mossa.analysis.layer_map import GROUPS
from mossa.config import AnalysisConfig

MODELS = ("base", "sft")


def measure_options(measure: str, analysis: AnalysisConfig, n: int) -> dict:
    """Keyword options of ``measure``; ValueError naming the config key when n is too small."""
    if measure != "mutual_knn":
        return {}
    if analysis.knn_k >= n:
        raise ValueError(
            f"analysis.knn_k is {analysis.knn_k} but the tasks have {n} analysis prompts; "
            "mutual_knn needs k < n (lower analysis.knn_k or raise tasks.n_analysis)"
        )
    return {"k": analysis.knn_k}


def measure_rows(
    task: dict,
    states: dict[str, np.ndarray],
    *,
    measures: list[str],
    analysis: AnalysisConfig,
    seed: int,
) -> list[dict]:
    """Rows of measures.csv for one task: every measure but CKA, base and SFT vs control.

    ``states`` holds [L+1, n, d] arrays ``base``, ``sft`` and ``control`` (rows aligned).
    """
    control = np.asarray(states["control"], dtype=np.float64)
    n = control.shape[1]
    rows = []
    for measure in measures:
        if measure == "cka":
            continue
        options = measure_options(measure, analysis, n)
        for model in MODELS:
            x = np.asarray(states[model], dtype=np.float64)
            boot = similarity.bootstrap_ci(
                x, control, n_boot=analysis.bootstrap, seed=seed, measure=measure, **options
            )
            null = similarity.permutation_null(
                x,
                control,
                n_permutations=analysis.permutations,
                seed=seed,
                measure=measure,
                **options,
            )
            rows.extend(
                {
                    "measure": measure,
                    "model": model,
                    "task": task["name"],
                    "cluster": task["cluster"],
                    "seen": bool(task["seen"]),
                    "layer": layer,
                    "n": n,
                    "value": float(boot.estimate[layer]),
                    "null_p95": float(null.p95[layer]),
                    "ci_low": float(boot.low[layer]),
                    "ci_high": float(boot.high[layer]),
                }
                for layer in range(x.shape[0])
            )
    return rows


def as_cka_rows(rows: list[dict], measure: str) -> list[dict]:
    """One measure's rows in the cka.csv schema (its value as ``cka``), for the layer map."""
    return [{**r, "cka": r["value"]} for r in rows if r["measure"] == measure]


def agreement(maps: dict[str, dict], n_layers: int) -> list[dict]:
    """Per layer 1..L: each measure's group (or None) and whether all measures with a map agree.

    ``maps`` are layer_groups.json objects per measure (``groups`` null without structure).
    """
    rows = []
    for layer in range(1, n_layers + 1):
        groups = {}
        for measure, data in maps.items():
            spans = data.get("groups") if data.get("structure") else None
            groups[measure] = next(
                (
                    name
                    for name in GROUPS
                    if spans and spans.get(name) and spans[name][0] <= layer <= spans[name][1]
                ),
                None,
            )
        mapped = [g for g in groups.values() if g is not None]
        rows.append(
            {
                "layer": layer,
                "groups": groups,
                "agree": len(mapped) == len(groups) and len(set(mapped)) == 1,
            }
        )
    return rows
