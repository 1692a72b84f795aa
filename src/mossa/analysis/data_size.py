"""Does CKA depend on data size? The paper's definition: the number of prompts used for CKA.

Per task, CKA(model, control) is recomputed on random subsets of the task's prompts at
several sizes (without replacement; the same subsets for base and SFT), every layer, with
the run's kernel and the debiased estimator. The findings then ask whether CKA changes with
the size (:func:`mossa.analysis.findings.data_size`). Debiased CKA should not drift with n;
the paper's biased estimator does, by construction.
"""

from __future__ import annotations

import zlib

import numpy as np

from mossa import similarity
from mossa.config import AnalysisConfig

FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # of the task's prompts
DRAWS = 5  # random subsets per size below the full set
MIN_PROMPTS = 8  # smallest subset (debiased CKA needs 4; fewer than 8 is mostly noise)
MODELS = ("base", "sft")


def subset_sizes(n: int) -> list[int]:
    """The subset sizes for ``n`` prompts: :data:`FRACTIONS` of n, at least MIN_PROMPTS."""
    return sorted({min(n, max(MIN_PROMPTS, round(f * n))) for f in FRACTIONS})


def data_size_rows(
    states: dict[str, np.ndarray], task: str, analysis: AnalysisConfig, seed: int
) -> list[dict]:
    """Rows of data_size.csv for one task: mean CKA over random prompt subsets per size.

    Parameters
    ----------
    states : {"base", "sft", "control"} -> array [L+1, n, d], rows aligned
    task : the task's name (seeds its subsets with ``seed``)

    Returns
    -------
    list of dict  model, task, layer, n_prompts, draws, cka (mean over the draws; NaN where
    a subset's states do not vary). Empty when the task has fewer than MIN_PROMPTS prompts.
    """
    n = states["control"].shape[1]
    if n < MIN_PROMPTS:
        return []
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    control = np.asarray(states["control"], dtype=np.float64)
    kw = {"kernel": analysis.kernel, "threshold": analysis.threshold, "debiased": True}
    rows = []
    for size in subset_sizes(n):
        draws = 1 if size == n else DRAWS
        subsets = [np.sort(rng.choice(n, size=size, replace=False)) for _ in range(draws)]
        for model in MODELS:
            x = np.asarray(states[model], dtype=np.float64)
            values = np.stack([similarity.cka(x[:, s], control[:, s], **kw) for s in subsets])
            mean = values.mean(axis=0)
            rows.extend(
                {
                    "model": model,
                    "task": task,
                    "layer": layer,
                    "n_prompts": size,
                    "draws": draws,
                    "cka": float(mean[layer]),
                }
                for layer in range(len(mean))
            )
    return rows
