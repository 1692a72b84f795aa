"""What separates a task-specific match from noise and drift: the paired SFT-minus-base
difference, task specificity and the noise ceiling, each with a bootstrap over prompts.

For one task every comparison below is evaluated on the same resamples of its prompts
(one :func:`mossa.similarity.bootstrap_replicates` call), so each contrast's interval
reflects only what varies between its terms:

* ``cka_diff``: D = CKA(SFT, C_t) − CKA(base, C_t), debiased (and biased beside it).
* ``specificity``: CKA(M, C_t) − mean over the k other controls of CKA(M, C_t'), for M in
  base and SFT, all on task t's prompts: how much closer M is to its own task's control
  than to controls of other tasks (0 when fine-tuning moves M towards every control alike).
* ``ceiling``: CKA between two seeds of the same control (the mean over all pairs of
  seeds): how similar two models trained on the same task can be expected to be, the
  level SFT's similarity to the control is read against (``sft_relative``).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

from mossa import similarity
from mossa.config import AnalysisConfig

CONTROL = "control"


def task_evidence(
    states: dict[str, np.ndarray],
    task: dict,
    *,
    others: list[str],
    seeds: list[str],
    analysis: AnalysisConfig,
    seed: int,
) -> dict[str, list[dict]]:
    """Rows of cka_diff.csv, specificity.csv and ceiling.csv for one task.

    Parameters
    ----------
    states : dict of arrays [L+1, n, d]
        Store model -> states of the task's prompts, rows aligned: ``base``, ``sft``,
        ``control`` (the task's own control), every name in ``others`` and ``seeds``.
    task : dict
        The task record (name, cluster, seen).
    others : list of str
        Store models of other tasks' controls run on these prompts (specificity; none:
        no specificity rows).
    seeds : list of str
        Store models of further seeds of the task's control (ceiling; none: no rows).
    analysis : AnalysisConfig
        Kernel, threshold, bootstrap count.
    seed : int
        Seed of the shared resamples.
    """
    x = {m: np.asarray(states[m], dtype=np.float64) for m in ("base", "sft", CONTROL)}
    x.update({m: np.asarray(states[m], dtype=np.float64) for m in (*others, *seeds)})
    replicas = [CONTROL, *seeds]
    pairs = [("sft", CONTROL), ("base", CONTROL)]
    pairs += [(m, o) for o in others for m in ("sft", "base")]
    pairs += list(itertools.combinations(replicas, 2))
    index = {p: i for i, p in enumerate(pairs)}
    kw = {"kernel": analysis.kernel, "threshold": analysis.threshold, "n_boot": analysis.bootstrap}
    est, samples = similarity.bootstrap_replicates(
        [(x[a], x[b]) for a, b in pairs], seed=seed, debiased=True, **kw
    )
    est_b, samples_b = similarity.bootstrap_replicates(
        [(x[a], x[b]) for a, b in pairs[:2]], seed=seed, debiased=False, **kw
    )

    def contrast(weights: dict, e=est, s=samples) -> similarity.ContrastResult:
        w = np.zeros(e.shape[0])
        for pair, value in weights.items():
            w[index[pair]] = value
        return similarity.contrast_interval(e, s, w)

    meta = {"task": task["name"], "cluster": task["cluster"], "seen": bool(task["seen"])}
    diff = contrast({("sft", CONTROL): 1.0, ("base", CONTROL): -1.0})
    biased = contrast({("sft", CONTROL): 1.0, ("base", CONTROL): -1.0}, est_b, samples_b)
    out = {
        "cka_diff": [
            {
                **meta,
                "layer": layer,
                "n": x[CONTROL].shape[1],
                "diff": diff.estimate[layer],
                "ci_low": diff.low[layer],
                "ci_high": diff.high[layer],
                "p_value": diff.p_value[layer],
                "diff_biased": biased.estimate[layer],
                "biased_ci_low": biased.low[layer],
                "biased_ci_high": biased.high[layer],
            }
            for layer in range(est.shape[1])
        ],
        "specificity": [],
        "ceiling": [],
    }
    for model in ("base", "sft") if others else ():
        weights = {(model, CONTROL): 1.0, **{(model, o): -1.0 / len(others) for o in others}}
        spec = contrast(weights)
        out["specificity"].extend(
            {
                "model": model,
                **meta,
                "layer": layer,
                "k": len(others),
                "specificity": spec.estimate[layer],
                "ci_low": spec.low[layer],
                "ci_high": spec.high[layer],
                "p_value": spec.p_value[layer],
            }
            for layer in range(est.shape[1])
        )
    if seeds:
        seed_pairs = list(itertools.combinations(replicas, 2))
        ceiling = contrast({p: 1.0 / len(seed_pairs) for p in seed_pairs})
        sft = index[("sft", CONTROL)]
        ratio, low, high = _ratio_interval(
            est[sft], samples[:, sft], ceiling.estimate, ceiling.samples
        )
        out["ceiling"] = [
            {
                **meta,
                "layer": layer,
                "n_seeds": len(replicas),
                "ceiling": ceiling.estimate[layer],
                "ci_low": ceiling.low[layer],
                "ci_high": ceiling.high[layer],
                "sft_cka": est[sft, layer],
                "sft_relative": ratio[layer],
                "sft_relative_ci_low": low[layer],
                "sft_relative_ci_high": high[layer],
            }
            for layer in range(est.shape[1])
        ]
    return {name: [_floats(r) for r in rows] for name, rows in out.items()}


def _ratio_interval(num, num_samples, den, den_samples, level: float = 0.95):
    """num / den and the percentile interval of the ratio of the paired replicates."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = num / den
        values = num_samples / den_samples
    values[~np.isfinite(values)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # layers without any defined replicate
        low, high = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return np.where(np.isfinite(ratio), ratio, np.nan), low, high


def _floats(row: dict) -> dict:
    return {k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()}
