"""Calibration of similarity values: a permutation null, a bootstrap confidence interval,
and a paired bootstrap of contrasts between measures (e.g. SFT-minus-base CKA).

Both are seeded through ``np.random.default_rng(seed)`` and take ``measure=`` (CKA by
default, or any measure of :mod:`mossa.similarity.measures`, whose state classes supply
their own permuted and resampled values); for CKA they work on per-layer kernel matrices
built once (batched over layers, chunked to fit memory):

* permutation null: CKA(x, y[π]) for k random row permutations π, the same π for all
  layers. Centring commutes with permuting rows, so each sample is one gather of the
  centred Gram of y and one inner product: no Gram is rebuilt. When one layer's Grams do
  not fit the memory budget, the linear kernel computes ||Xcᵀ Yc[π]||² from features.
* bootstrap: rows resampled with replacement (one index set for x, y and all layers).
  A resample is written as multiplicity weights w over the original rows and evaluated
  on the original Grams. A duplicated row must not meet its own copy: that pair would
  act like the diagonal (self-similarity) terms and inflate CKA (debiased CKA of
  independent 4096-d data would jump from ~0 to ~0.97). So each replicate averages
  Song's HSIC kernel over tuples of resampled positions that never use two copies of one
  row; without duplicates this is exactly the biased or the debiased estimator.
* paired bootstrap: the same resamples applied to several (x, y) pairs of one set of
  prompts; a contrast Σ w_p · measure(pair p) gets its interval and a two-sided p-value
  from the contrast of the replicates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from mossa.similarity._validation import (
    DegenerateInputWarning,
    check_fraction,
    check_pair,
    check_positive_int,
    check_seed,
)
from mossa.similarity.cka import (
    MEMORY_BUDGET_BYTES,
    _row_sq,
    _self_sum_sq,
    _sum_sq,
    centre_features,
    centre_gram,
    compute_dtype,
    constant_layers,
    debias_linear,
    gram_inner,
    kernel_grams,
    layer_chunks,
    paired_cka,
    permuted_inner,
    warn_degenerate,
)
from mossa.similarity.measures import check_measure, check_measure_inputs, measure_state

#: A contrast replicate this close to 0 is a tie with 0 in the p-value (rounding).
_TIE = 1e-12
#: Element-operations above which a progress bar is shown (on a terminal only).
_PROGRESS_WORK = 5e9


@dataclass(frozen=True)
class NullResult:
    """Permutation null of a measure; floats and [k] samples for 2-D input, else [L], [k, L].

    Attributes
    ----------
    mean : mean of the null samples per layer (the chance level of the measure at this n
        and d).
    p95 : 95th percentile of the null samples (linear interpolation).
    samples : measure(x, y[π_j]) for each permutation j, shape [k] or [k, L].
    observed : measure(x, y) computed from the same centred Grams (or measure state).
    p_value : (1 + #{null >= observed}) / (k + 1), one-sided.
    """

    mean: float | np.ndarray
    p95: float | np.ndarray
    samples: np.ndarray
    observed: float | np.ndarray
    p_value: float | np.ndarray


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap interval of a measure; floats and [B] samples for 2-D input.

    Attributes
    ----------
    estimate : ``measure(x, y)`` on all rows.
    low, high : the (1 - level)/2 and (1 + level)/2 quantiles of the bootstrap samples.
    samples : the measure of each resample, shape [B] or [B, L] (nan for a resample with
        too few distinct rows; those are left out of the interval, with a warning).
    """

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    samples: np.ndarray


@dataclass(frozen=True)
class ContrastResult:
    """Paired-bootstrap interval of a contrast Σ_p w_p · measure(pair p); floats for 2-D input.

    Attributes
    ----------
    estimate : the contrast of the measures on all rows.
    low, high : percentile interval of the contrast over the shared resamples.
    p_value : two-sided, for "the contrast is 0" (see :func:`contrast_interval`).
    samples : the contrast on each resample, [B] or [B, L] (nan where a term is undefined).
    """

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    p_value: float | np.ndarray
    samples: np.ndarray


def null_path(kernel: str, n: int) -> str:
    """How the CKA permutation null is computed for n rows: "gram" or "feature".

    "gram" (any kernel) gathers the centred n x n Grams, O(n²) memory; it is used while
    one layer's Grams fit ``MEMORY_BUDGET_BYTES`` (n <= 5792 at 1 GiB). Beyond that the
    linear kernel takes "feature": ||Xcᵀ Yc[π]||² per permutation, O(n d) memory.
    """
    return "feature" if kernel == "linear" and 4 * n * n * 8 > MEMORY_BUDGET_BYTES else "gram"


def permutation_null(
    x: object,
    y: object,
    *,
    n_permutations: int = 200,
    seed: int | np.random.Generator = 0,
    measure: str = "cka",
    **options: object,
) -> NullResult:
    """A measure between x and row-shuffled y: its value with no shared structure.

    Parameters
    ----------
    x, y : array-like or torch.Tensor, [n, d1] and [n, d2], or [L, n, d1] and [L, n, d2]
    n_permutations : int
        Number k of permutations. They are drawn up front as
        ``rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)`` with
        ``rng = np.random.default_rng(seed)``; the same permutation applies to all layers.
    seed : int or np.random.Generator
    measure : {"cka", "procrustes", "mutual_knn", "rsa"}
    **options
        The measure's own options: ``kernel``, ``debiased``, ``threshold`` for CKA (as
        in :func:`mossa.cka`; the RBF bandwidth is unchanged by a permutation), ``k``
        for mutual k-NN.

    Returns
    -------
    NullResult
    """
    x3, y3, was_2d, options = _checked_inputs(measure, x, y, options)
    if measure == "cka":
        kernel, debiased, threshold = (options[k] for k in ("kernel", "debiased", "threshold"))
    k = check_positive_int(n_permutations, "n_permutations")
    rng = check_seed(seed)
    n_layers, n, _ = x3.shape
    perms = torch.from_numpy(rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1))
    perms = perms.to(x3.device)
    bar = tqdm(
        total=k * n_layers,
        desc="permutation null",
        unit="perm x layer",
        disable=None if k * n_layers * n * n > _PROGRESS_WORK else True,
        leave=False,
    )
    if measure == "cka":
        path = null_path(kernel, n)
        observed, null, bx_all, by_all = _cka_null(
            x3, y3, perms, kernel, debiased, float(threshold), path, bar
        )
        label = {}
    else:
        state = measure_state(measure)
        observed, null, bx_all, by_all = _measure_null(state, x3, y3, perms, options, bar)
        label = {"measure": state.label, "reason": state.reason}
    bar.close()
    warn_degenerate(bx_all, by_all, single_layer=was_2d, **label)
    bad = bx_all | by_all
    obs = np.where(bad, np.nan, observed)
    null[:, bad] = np.nan
    p_value = (1 + (null >= obs).sum(axis=0)) / (k + 1)
    p_value = np.where(bad, np.nan, p_value)
    result = (null.mean(axis=0), np.quantile(null, 0.95, axis=0), null, obs, p_value)
    if was_2d:
        mean, p95, null, obs, p_value = result
        return NullResult(
            float(mean[0]), float(p95[0]), null[:, 0], float(obs[0]), float(p_value[0])
        )
    return NullResult(*result)


def bootstrap_ci(
    x: object,
    y: object,
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
    measure: str = "cka",
    **options: object,
) -> BootstrapResult:
    """Percentile bootstrap confidence interval of a measure over rows (inputs/prompts).

    Parameters
    ----------
    x, y : array-like or torch.Tensor, [n, d1] and [n, d2], or [L, n, d1] and [L, n, d2]
    n_boot : int
        Number B of resamples; resample b is row b of
        ``rng.integers(0, n, size=(B, n))`` with ``rng = np.random.default_rng(seed)``,
        shared by x, y and all layers (rows stay aligned).
    level : float in (0, 1)
        Coverage of the percentile interval.
    seed : int or np.random.Generator
    measure : {"cka", "procrustes", "mutual_knn", "rsa"}
    **options
        As in :func:`permutation_null`. The RBF bandwidth stays at its full-sample value.

    Returns
    -------
    BootstrapResult
        Each replicate is the measure on the resampled rows with copies of one row
        treated as that row: CKA skips tuples that use two copies of a row, RSA pairs of
        copies, mutual k-NN never takes a row's copy as its neighbour (see
        docs/similarity.md); a resample without duplicates gives exactly
        ``measure(x[idx], y[idx])``.
    """
    x3, y3, was_2d, options = _checked_inputs(measure, x, y, options)
    n_rep = check_positive_int(n_boot, "n_boot")
    level = check_fraction(level, "level", allow_one=False)
    idx, counts = _resamples(check_seed(seed), n_rep, x3.shape[1])
    estimate, values = _replicates(measure, x3, y3, idx, counts, options, was_2d)
    low, high = _percentiles(values, level)
    if was_2d:
        return BootstrapResult(float(estimate[0]), float(low[0]), float(high[0]), values[:, 0])
    return BootstrapResult(estimate, low, high, values)


def bootstrap_replicates(
    pairs: list[tuple[object, object]],
    *,
    n_boot: int = 200,
    seed: int | np.random.Generator = 0,
    measure: str = "cka",
    **options: object,
) -> tuple[np.ndarray, np.ndarray]:
    """A measure of several pairs of models on the same prompts, on the same resamples.

    The raw material of :func:`paired_bootstrap`: any linear combination of the pairs'
    values (a difference, a mean over controls) gets its interval from these replicates,
    and several combinations can share one set of replicates.

    Parameters
    ----------
    pairs : list of (x, y)
        Each as in :func:`bootstrap_ci`: [n, d1] and [n, d2], or [L, n, d1] and
        [L, n, d2]; every pair has the same n (the same prompts, in the same order) and
        the same L.
    n_boot, seed, measure, **options
        As in :func:`bootstrap_ci`: resample b is row b of ``rng.integers(0, n, (B, n))``,
        shared by every pair and layer, and the replicates are those of
        :func:`bootstrap_ci` (same seed, same values).

    Returns
    -------
    estimates : [P, L] (or [P] for 2-D input)
        The measure of each pair on all rows (nan where undefined).
    samples : [B, P, L] (or [B, P])
        The measure of each pair on each resample (nan where undefined).
    """
    if not isinstance(pairs, list | tuple) or not pairs:
        raise ValueError("pairs must be a non-empty list of (x, y) pairs")
    checked = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"pairs[{i}] must be a pair (x, y)")
        checked.append(_checked_inputs(measure, pair[0], pair[1], dict(options)))
    shapes = {(c[0].shape[0], c[0].shape[1], c[2]) for c in checked}
    if len(shapes) != 1:
        raise ValueError(
            "pairs must all have the same layers and rows (the same prompts), got "
            + ", ".join(f"{tuple(c[0].shape[:2])}" for c in checked)
        )
    n_rep = check_positive_int(n_boot, "n_boot")
    was_2d = checked[0][2]
    idx, counts = _resamples(check_seed(seed), n_rep, checked[0][0].shape[1])
    shared = None
    if measure == "cka":  # one Gram and one self-HSIC per distinct input, not per pair
        arrays: list[torch.Tensor] = []
        where: dict[int, int] = {}
        keys = []
        for pair, (x3, y3, _, _) in zip(pairs, checked, strict=True):
            for obj, t in zip(pair, (x3, y3), strict=True):
                if id(obj) not in where:
                    where[id(obj)] = len(arrays)
                    arrays.append(t)
            keys.append((where[id(pair[0])], where[id(pair[1])]))
        opts = checked[0][3]
        shared = _cka_replicates(
            arrays, keys, counts, opts["kernel"], opts["debiased"], float(opts["threshold"])
        )
    estimates, samples = [], []
    for p, (x3, y3, _, opts) in enumerate(checked):
        values = None if shared is None else shared[:, p]
        est, values = _replicates(measure, x3, y3, idx, counts, opts, was_2d, values)
        estimates.append(est)
        samples.append(values)
    estimates_a, samples_a = np.stack(estimates), np.stack(samples, axis=1)
    if was_2d:
        return estimates_a[:, 0], samples_a[:, :, 0]
    return estimates_a, samples_a


def contrast_interval(
    estimates: np.ndarray, samples: np.ndarray, weights: object, *, level: float = 0.95
) -> ContrastResult:
    """Percentile interval and two-sided p-value of Σ_p w_p · value_p from shared resamples.

    ``estimates`` [P, ...] and ``samples`` [B, P, ...] as from :func:`bootstrap_replicates`;
    ``weights`` [P]. Replicates where any pair is undefined are left out.

    The p-value tests "the contrast is 0" by inverting the percentile interval: it is the
    smallest α at which the (1 − α) interval excludes 0, p = min(1, 2 · min(1 + #{D*_b ≤ 0},
    1 + #{D*_b ≥ 0}) / (B' + 1)) over the B' defined replicates, so it agrees with the
    interval (p < 1 − level where the interval excludes 0, up to the +1 terms); its floor is
    2/(B' + 1). Replicates within 1e-12 of 0 (rounding, e.g. a layer all models share)
    count on both sides. A sign-flip or permutation test is not used: CKA is not a sum
    over prompts, and swapping one prompt's states between two models mixes two
    representation spaces in one Gram matrix.
    """
    estimates = np.asarray(estimates, dtype=np.float64)
    samples = np.asarray(samples, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != estimates.shape[0] or samples.shape[1:] != estimates.shape:
        raise ValueError(
            f"weights must have one entry per pair ({estimates.shape[0]}) and samples the "
            f"shape [B, *estimates.shape]; got weights {w.shape}, estimates "
            f"{estimates.shape}, samples {samples.shape}"
        )
    if not np.isfinite(w).all():
        raise ValueError(f"weights must be finite, got {w}")
    level = check_fraction(level, "level", allow_one=False)
    estimate = np.tensordot(w, estimates, axes=(0, 0))
    values = np.tensordot(samples, w, axes=(1, 0))
    low, high = _percentiles(values, level)
    defined = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        below = ((values <= _TIE) & defined).sum(axis=0)
        above = ((values >= -_TIE) & defined).sum(axis=0)
    p_value = np.minimum(1.0, 2 * (1 + np.minimum(below, above)) / (defined.sum(axis=0) + 1))
    p_value = np.where(np.isfinite(estimate) & defined.any(axis=0), p_value, np.nan)
    if estimate.ndim == 0:
        return ContrastResult(float(estimate), float(low), float(high), float(p_value), values)
    return ContrastResult(estimate, low, high, p_value, values)


def paired_bootstrap(
    pairs: list[tuple[object, object]],
    weights: object = (1.0, -1.0),
    *,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int | np.random.Generator = 0,
    measure: str = "cka",
    **options: object,
) -> ContrastResult:
    """Paired bootstrap of a contrast of a measure over pairs of models on the same prompts.

    The default ``weights`` (1, -1) give measure(pairs[0]) − measure(pairs[1]), e.g.
    CKA(SFT, control) − CKA(base, control). Every term is evaluated on the same resample
    of prompts, so what the terms share (the prompts that are easy or hard for all
    models) cancels in the difference: the interval is narrower than the one from
    independent resamples whenever the terms are positively correlated.

    Parameters
    ----------
    pairs : list of (x, y)
        As in :func:`bootstrap_replicates`.
    weights : [P] array-like
        The contrast's coefficients, one per pair.
    n_boot, level, seed, measure, **options
        As in :func:`bootstrap_ci`.

    Returns
    -------
    ContrastResult
        Floats for 2-D input, else arrays [L]; p-value as in :func:`contrast_interval`.
    """
    estimates, samples = bootstrap_replicates(
        pairs, n_boot=n_boot, seed=seed, measure=measure, **options
    )
    return contrast_interval(estimates, samples, weights, level=level)


def _resamples(rng: np.random.Generator, n_rep: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Resampled row indices [B, n] and the row multiplicities [B, n] they give."""
    idx = rng.integers(0, n, size=(n_rep, n))
    counts = np.zeros((n_rep, n))
    np.add.at(counts, (np.arange(n_rep)[:, None], idx), 1.0)
    return idx, counts


def _replicates(
    measure: str,
    x3: torch.Tensor,
    y3: torch.Tensor,
    idx: np.ndarray,
    counts: np.ndarray,
    options: dict,
    was_2d: bool,
    values: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The measure on all rows [L] and on each resample [B, L], nan where undefined
    (resamples with too few distinct rows are warned about once). ``values``: CKA
    replicates [B, L] already computed (see :func:`bootstrap_replicates`)."""
    n_rep = counts.shape[0]
    if measure == "cka":
        kernel, debiased, threshold = (options[k] for k in ("kernel", "debiased", "threshold"))
        estimate = paired_cka(x3, y3, kernel, debiased, float(threshold), was_2d)
        if values is None:
            values = _cka_replicates(
                [x3, y3], [(0, 1)], counts, kernel, debiased, float(threshold)
            )[:, 0]
        else:
            values = values.copy()
        undefined = (counts > 0).sum(axis=1) < (4 if debiased else 2)
        reason, label = f"fewer than {4 if debiased else 2} distinct rows", "CKA"
    else:
        state = measure_state(measure)
        estimate, values, bad_x, bad_y = _measure_bootstrap(state, x3, y3, idx, options)
        warn_degenerate(bad_x, bad_y, single_layer=was_2d, measure=state.label, reason=state.reason)
        undefined, reason = state.undefined_resamples(counts, options)
        label = state.label
    values[:, np.isnan(estimate)] = np.nan
    values[undefined] = np.nan
    if undefined.any():
        warnings.warn(
            f"{int(undefined.sum())} of {n_rep} bootstrap resamples have {reason}; their "
            f"{label} is undefined (nan) and they are left out of the interval",
            DegenerateInputWarning,
            stacklevel=3,
        )
    return estimate, values


def _percentiles(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The (1 - level)/2 and (1 + level)/2 quantiles of replicates over axis 0, nan ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan layers were warned about
        low, high = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return low, high


def _checked_inputs(measure: str, x, y, options: dict):
    """Validated ``[L, n, d]`` inputs of ``measure``, whether they were 2-D, and its
    options with their defaults (CKA: kernel, debiased, threshold)."""
    check_measure(measure, options)
    if measure != "cka":
        return check_measure_inputs(measure, x, y, options)
    options = {"kernel": "linear", "debiased": True, "threshold": 1.0, **options}
    x3, y3, was_2d = check_pair(
        x,
        y,
        kernel=options["kernel"],
        threshold=options["threshold"],
        debiased=options["debiased"],
        paired_layers=True,
    )
    return x3, y3, was_2d, options


def _null_arrays(observed, samples, bad_x, bad_y) -> tuple[np.ndarray, ...]:
    """Per-chunk null results joined over layers: observed [L], samples [k, L], bad masks."""
    return (
        torch.cat(observed).cpu().numpy(),
        torch.cat(samples, dim=1).cpu().numpy(),
        torch.cat(bad_x).cpu().numpy(),
        torch.cat(bad_y).cpu().numpy(),
    )


def _cka_null(
    x3: torch.Tensor,
    y3: torch.Tensor,
    perms: torch.Tensor,
    kernel: str,
    debiased: bool,
    threshold: float,
    path: str,
    bar: tqdm,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Observed CKA [L], null samples [k, L] and the undefined layers of x and y.

    ``path`` as from :func:`null_path`; both give the same values (to rounding).
    """
    n_layers, n, d1 = x3.shape
    d2 = y3.shape[2]
    dtype = compute_dtype(x3, y3)
    observed, samples, bad_x, bad_y = [], [], [], []
    if path == "feature":
        item = torch.finfo(dtype).bits // 8
        per_layer = 3 * n * (d1 + d2) * 8 + d1 * max(d1, d2) * (item + 8)
    else:
        per_layer = 3 * n * (d1 + d2) * 8 + 4 * n * n * 8
    for s in layer_chunks(n_layers, per_layer):
        if path == "feature":
            obs, null, bx, by = _linear_null_feature(x3[s], y3[s], perms, debiased, dtype, bar)
            observed.append(obs)
            samples.append(null)
            bad_x.append(bx)
            bad_y.append(by)
            continue
        gx, bx = _centred_grams(x3[s], kernel, debiased, threshold, dtype)
        gy, by = _centred_grams(y3[s], kernel, debiased, threshold, dtype)
        norm = torch.sqrt(gram_inner(gx, gx) * gram_inner(gy, gy))
        observed.append(gram_inner(gx, gy) / norm)
        gx_flat, gy_flat = gx.flatten(1), gy.flatten(1)
        del gx, gy
        samples.append(permuted_inner(gx_flat, gy_flat, perms, n, bar).T / norm)  # [k, c]
        bad_x.append(bx | (norm <= 0))
        bad_y.append(by)
    return _null_arrays(observed, samples, bad_x, bad_y)


def _linear_null_feature(
    x: torch.Tensor,
    y: torch.Tensor,
    perms: torch.Tensor,
    debiased: bool,
    dtype: torch.dtype,
    bar: tqdm,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linear-CKA null from features: memory O(n d), no n x n matrix.

    Permuting rows keeps columns centred, so HSIC(x, y[π]) = ||Xcᵀ Yc[π]||² (biased) and,
    debiased, the row-norm correction of :func:`debias_linear` with l permuted. Each
    batch of permutations is one GEMM Xcᵀ [Yc[π_1] ... Yc[π_p]].
    """
    c, n, d1 = x.shape
    d2 = y.shape[2]
    xc, scale_x = centre_features(x, dtype, refine=True)
    yc, scale_y = centre_features(y, dtype, refine=True)
    (t_xx, tr_x), (t_yy, tr_y) = _self_sum_sq(xc), _self_sum_sq(yc)
    undef_x = constant_layers(tr_x, scale_x, (n, d1), dtype)
    undef_y = constant_layers(tr_y, scale_y, (n, d2), dtype)
    t_xy = _sum_sq(torch.bmm(xc.mT, yc))
    if debiased:
        kx, ky = _row_sq(xc), _row_sq(yc)
        t_xy = debias_linear(t_xy, kx, ky, n)
        t_xx = debias_linear(t_xx, kx, kx, n)
        t_yy = debias_linear(t_yy, ky, ky, n)
    norm = torch.sqrt(t_xx * t_yy)
    item = xc.element_size()
    step = max(1, MEMORY_BUDGET_BYTES // (c * (n * d2 * item + d1 * d2 * (item + 8) + n * 16)))
    chunks = []
    for p in perms.split(step):
        y_cat = yc[:, p.T].reshape(c, n, -1)  # [c, n, p d2]: permuted copies side by side
        block = torch.bmm(xc.mT, y_cat).view(c, d1, p.shape[0], d2).transpose(1, 2)
        del y_cat  # freed before the next batch is gathered, not after
        t = _sum_sq(block)  # [c, p]
        if debiased:
            t = debias_linear(t, kx[:, None, :], ky[:, p], n)
        chunks.append(t / norm[:, None])
        bar.update(p.shape[0] * c)
    bad_x = undef_x | (t_xx <= 0)
    bad_y = undef_y | (t_yy <= 0)
    return t_xy / norm, torch.cat(chunks, dim=1).T, bad_x, bad_y


def _measure_null(
    state: type, x3: torch.Tensor, y3: torch.Tensor, perms: torch.Tensor, options: dict, bar: tqdm
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_cka_null` for a measure of :mod:`mossa.similarity.measures`."""
    n_layers, n, d1 = x3.shape
    dtype = compute_dtype(x3, y3)
    observed, samples, bad_x, bad_y = [], [], [], []
    for s in layer_chunks(n_layers, state.layer_bytes(n, d1, y3.shape[2], options)):
        st = state(x3[s], y3[s], dtype, **options)
        observed.append(st.observed())
        samples.append(st.permuted(perms, bar).T)
        bad_x.append(st.bad_x)
        bad_y.append(st.bad_y)
    return _null_arrays(observed, samples, bad_x, bad_y)


def _cka_replicates(
    arrays: list[torch.Tensor],
    pairs: list[tuple[int, int]],
    counts: np.ndarray,
    kernel: str,
    debiased: bool,
    threshold: float,
) -> np.ndarray:
    """Tie-free bootstrap replicates of CKA [B, P, L] of ``pairs`` of ``arrays`` (indices)
    from row counts [B, n]; each array's Gram and self-HSIC is computed once."""
    n_layers, n, _ = arrays[0].shape
    n_rep = counts.shape[0]
    w = torch.from_numpy(counts.T.copy()).to(arrays[0].device)  # [n, B]
    dtype = compute_dtype(*arrays)
    used = sorted({i for pair in pairs for i in pair})
    per_layer = sum(3 * n * arrays[i].shape[2] * 8 for i in used)
    per_layer += len(used) * (2 * n * n + 2 * n * n_rep) * 8 + 3 * n * n * 8 + 8 * n * n_rep * 8
    samples = []
    for s in layer_chunks(n_layers, per_layer):
        grams = {}
        for i in used:
            xc, scale = centre_features(arrays[i][s], dtype)
            grams[i], _ = kernel_grams(xc, kernel, threshold, scale)
            del xc
        hsic = _weighted_hsic(grams, [*pairs, *((i, i) for i in used)], w, debiased)
        chunk = []
        for i, j in pairs:
            hxy, hxx, hyy = hsic[(i, j)], hsic[(i, i)], hsic[(j, j)]
            defined = (hxx > 0) & (hyy > 0)
            chunk.append(torch.where(defined, hxy / torch.sqrt(hxx * hyy), torch.nan))
        samples.append(torch.stack(chunk))  # [P, c, B]
    return torch.cat(samples, dim=1).permute(2, 0, 1).cpu().numpy()  # [B, P, L]


def _measure_bootstrap(
    state: type, x3: torch.Tensor, y3: torch.Tensor, idx: np.ndarray, options: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The measure on all rows [L] (nan where undefined), its replicates [B, L], bad layers."""
    n_layers, n, d1 = x3.shape
    dtype = compute_dtype(x3, y3)
    rows = torch.from_numpy(idx).to(x3.device)
    estimate, samples, bad_x, bad_y = [], [], [], []
    for s in layer_chunks(n_layers, state.layer_bytes(n, d1, y3.shape[2], options)):
        st = state(x3[s], y3[s], dtype, **options)
        estimate.append(st.observed())
        samples.append(st.resampled(rows))
        bad_x.append(st.bad_x)
        bad_y.append(st.bad_y)
    bx, by = torch.cat(bad_x).cpu().numpy(), torch.cat(bad_y).cpu().numpy()
    est = np.where(bx | by, np.nan, torch.cat(estimate).cpu().numpy())
    return est, torch.cat(samples, dim=0).T.cpu().numpy(), bx, by


def _centred_grams(
    x: torch.Tensor, kernel: str, debiased: bool, threshold: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred (or U-centred) float64 Grams [L, n, n] and the mask of undefined layers."""
    xc, scale = centre_features(x, dtype)
    g, undefined = kernel_grams(xc, kernel, float(threshold), scale)
    return centre_gram(g, debiased), undefined


def _weighted_hsic(
    grams: dict[int, torch.Tensor],
    wanted: list[tuple[int, int]],
    w: torch.Tensor,
    debiased: bool,
) -> dict[tuple[int, int], torch.Tensor]:
    """HSIC(K_i, K_j) per resample for each wanted (i, j), up to a positive factor per
    resample that is the same for every pair (so ratios of them give CKA).

    grams: Grams K_i [L, n, n] (float64, modified in place; K and L below are any two of
    them); w: row
    multiplicities [n, B] (m = Σ w = n). Both estimators average Song's kernel
    g(i,j,q,r) = k_ij l_ij + k_ij l_qr - 2 k_ij l_iq over 4-tuples of resampled
    positions, skipping tuples that use two different copies of one original row (a tie):
    with debiased=False over all such tuples (the V-statistic; without ties it is the
    biased HSIC), with debiased=True over tuples of distinct rows (the U-statistic of
    Song et al.). Grouped by original rows, a tuple's multiplicity is the product of w
    over its distinct rows, which gives the closed forms below (v = w∘w, u = v∘w,
    p2 = Σ v, M = K∘L with zero diagonal,
    kd, ld, md the diagonals of K, L, K∘L); all terms are [L, B].
    """
    n_rep = w.shape[1]
    m = w.sum(dim=0)  # [B]
    v = w * w
    u = v * w
    p2 = v.sum(0)
    diag, k_wv = {}, {}
    wv = torch.cat([w, v], dim=1)  # [n, 2B]
    for i, k in grams.items():
        diag[i] = k.diagonal(dim1=-2, dim2=-1).clone()
        k.diagonal(dim1=-2, dim2=-1).zero_()
        k_wv[i] = k @ wv  # [L, n, 2B]

    def tsum(*factors: torch.Tensor) -> torch.Tensor:
        """Σ_i of an elementwise product of [n, B] / [L, n, B] / [L, n, 1] factors."""
        out = factors[0]
        for f in factors[1:]:
            out = out * f
        return out.sum(-2)

    def pair(a, b, a_wv, b_wv, ad, bd):
        aw, av = a_wv[..., :n_rep], a_wv[..., n_rep:]
        bw, bv = b_wv[..., :n_rep], b_wv[..., n_rep:]
        m_wv = (a * b) @ wv
        mw, mv = m_wv[..., :n_rep], m_wv[..., n_rep:]
        w_m_w, v_m_w, u_m_w, v_m_v = tsum(w, mw), tsum(v, mw), tsum(u, mw), tsum(v, mv)
        ab_w, ab_v = tsum(w, aw, bw), tsum(v, aw, bw)
        sa, sb = tsum(w, aw), tsum(w, bw)
        if debiased:  # distinct rows only (Song et al. 2012 for w = 1)
            t1 = (m**2 - p2) * w_m_w - 4 * m * v_m_w + 4 * u_m_w + 2 * v_m_v
            t2 = sa * sb - 4 * ab_v + 2 * v_m_v
            t3 = (
                m * (ab_w - v_m_w)
                - (ab_v - v_m_v)
                - (tsum(w, av, bw) - u_m_w)
                - (tsum(w, aw, bv) - u_m_w)
            )
            return t1 + t2 - 2 * t3
        # all tie-free tuples, coincident slots allowed (the biased HSIC for w = 1)
        ad_, bd_ = ad.unsqueeze(-1), bd.unsqueeze(-1)
        md = ad_ * bd_
        md_w, md_v, md_u = tsum(md, w), tsum(md, v), tsum(md, u)
        c = m + 2
        t1 = (
            (c**2 + m - p2) * w_m_w
            - 2 * (2 * c + 1) * v_m_w
            + 4 * u_m_w
            + 2 * v_m_v
            + ((m + 1) ** 2 + m - p2) * md_w
            - (2 * m + 3) * md_v
            + 2 * md_u
        )
        dw = v - w  # w (w - 1): the excess weight of tuples whose slots overlap
        overlap = (
            4 * (tsum(dw, aw, bw) - tsum(dw, mv))
            + 2 * (v_m_v - w_m_w)
            + 2 * tsum(dw, ad_, bw)
            + 2 * tsum(dw, bd_, aw)
            + tsum(dw, md)
        )
        t2 = (sa + tsum(ad_, w)) * (sb + tsum(bd_, w)) - overlap
        distinct = (m + 3) * (ab_w - tsum(w, mv)) - (
            (ab_v - v_m_v) + (tsum(w, av, bw) - u_m_w) + (tsum(w, aw, bv) - u_m_w)
        )
        t3 = (
            distinct
            + tsum(ad_, w, (m + 2 - w) * bw - bv)
            + tsum(bd_, w, (m + 2 - w) * aw - av)
            + (m + 2) * w_m_w
            - 2 * v_m_w
            + tsum(md, w, m + 1 - w)
        )
        return t1 + t2 - 2 * t3

    return {
        (i, j): pair(grams[i], grams[j], k_wv[i], k_wv[j], diag[i], diag[j])
        for i, j in dict.fromkeys(wanted)
    }
