"""Does task similarity follow reading difficulty (Fig. 6) or data size (Fig. 10)?

Per model and layer, the Pearson correlation over seen tasks between the debiased CKA
against the control and a task property: Flesch-Kincaid grade, Coleman-Liau index (of the
task's analysis prompts, computed by the tasks stage) and the training-set size. The
paper's data size (prompts used for CKA) is :mod:`mossa.analysis.data_size`.

Many layers and measures are tested at once, so every p-value also comes adjusted by
Benjamini-Hochberg over the whole table (``p_adjusted``, the false discovery rate).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import false_discovery_control, pearsonr

from mossa.analysis.cka_tables import MODELS

MEASURES = {
    "flesch_kincaid": "flesch_kincaid",
    "coleman_liau": "coleman_liau",
    "data_size": "n_train",
}


def readability_rows(tasks: list[dict]) -> list[dict]:
    """Rows of readability.csv, one per task (n = prompts the scores were computed on)."""
    return [
        {
            "task": t["name"],
            "flesch_kincaid": float(t["flesch_kincaid"]),
            "coleman_liau": float(t["coleman_liau"]),
            "n": int(t["n_readability"]),
        }
        for t in tasks
    ]


def pearson(x, y) -> tuple[float, float]:
    """Pearson r and two-sided p-value over the finite pairs.

    NaN when fewer than 3 finite pairs remain or a side is constant (to 1e-9 relative: CKA
    at the embedding layer is often 1 for every task).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or any(np.ptp(v) <= 1e-9 * np.abs(v).max() for v in (x, y)):
        return math.nan, math.nan
    res = pearsonr(x, y)
    return float(res.statistic), float(res.pvalue)


def adjust(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (scipy); NaN entries stay NaN, not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = false_discovery_control(p[finite], method="bh")
    return out


def correlation_rows(
    cka: list[dict], tasks: list[dict], keep: set[str] | None = None
) -> list[dict]:
    """Rows of correlations.csv: per model, layer and measure, over the seen tasks.

    ``keep``: the tasks to correlate over (the competent ones; None: every seen task).
    """
    seen = [t for t in tasks if t["seen"] and (keep is None or t["name"] in keep)]
    value = {(r["model"], r["task"], r["layer"]): r["cka"] for r in cka}
    layers = sorted({r["layer"] for r in cka})
    rows = []
    for model in MODELS:
        for layer in layers:
            sims = [value[(model, t["name"], layer)] for t in seen]
            for measure, key in MEASURES.items():
                r, p = pearson(sims, [float(t[key]) for t in seen])
                rows.append(
                    {
                        "model": model,
                        "layer": layer,
                        "measure": measure,
                        "n_tasks": len(seen),
                        "pearson_r": r,
                        "p_value": p,
                    }
                )
    for row, q in zip(rows, adjust([r["p_value"] for r in rows]), strict=True):
        row["p_adjusted"] = float(q)
    return rows
