"""Calibration of CKA values: a permutation null and a bootstrap confidence interval.

Both work on per-layer kernel matrices built once (batched over layers, chunked to fit
memory) and are seeded through ``np.random.default_rng(seed)``:

* permutation null: CKA(x, y[π]) for k random row permutations π, the same π for all
  layers. Centring commutes with permuting rows, so each sample is one gather of the
  centred Gram of y and one inner product: no Gram is rebuilt.
* bootstrap: rows resampled with replacement (one index set for x, y and all layers).
  A resample is written as multiplicity weights w over the original rows and evaluated
  on the original Grams. A duplicated row must not meet its own copy: that pair would
  act like the diagonal (self-similarity) terms and inflate CKA (debiased CKA of
  independent 4096-d data would jump from ~0 to ~0.97). So each replicate averages
  Song's HSIC kernel over tuples of resampled positions that never use two copies of one
  row; without duplicates this is exactly the biased or the debiased estimator.
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
    centre_features,
    centre_gram,
    compute_dtype,
    gram_inner,
    kernel_grams,
    layer_chunks,
    paired_cka,
    warn_degenerate,
)

#: Element-operations above which a progress bar is shown (on a terminal only).
_PROGRESS_WORK = 5e9


@dataclass(frozen=True)
class NullResult:
    """Permutation null of CKA; floats and [k] samples for 2-D input, else [L] and [k, L].

    Attributes
    ----------
    mean : mean of the null samples per layer (the chance level of CKA at this n and d).
    p95 : 95th percentile of the null samples (linear interpolation).
    samples : CKA(x, y[π_j]) for each permutation j, shape [k] or [k, L].
    observed : CKA(x, y) computed from the same centred Grams.
    p_value : (1 + #{null >= observed}) / (k + 1), one-sided.
    """

    mean: float | np.ndarray
    p95: float | np.ndarray
    samples: np.ndarray
    observed: float | np.ndarray
    p_value: float | np.ndarray


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap interval of CKA; floats and [B] samples for 2-D input.

    Attributes
    ----------
    estimate : ``cka(x, y)`` on all rows.
    low, high : the (1 - level)/2 and (1 + level)/2 quantiles of the bootstrap samples.
    samples : CKA of each resample, shape [B] or [B, L] (nan for a resample with too
        few distinct rows; those are left out of the interval, with a warning).
    """

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    samples: np.ndarray


def permutation_null(
    x: object,
    y: object,
    *,
    n_permutations: int = 200,
    seed: int | np.random.Generator = 0,
    kernel: str = "linear",
    debiased: bool = True,
    threshold: float = 1.0,
) -> NullResult:
    """CKA between x and row-shuffled y: the value expected with no shared structure.

    Parameters
    ----------
    x, y : array-like or torch.Tensor, [n, d1] and [n, d2], or [L, n, d1] and [L, n, d2]
    n_permutations : int
        Number k of permutations. They are drawn up front as
        ``rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)`` with
        ``rng = np.random.default_rng(seed)``; the same permutation applies to all layers.
    seed : int or np.random.Generator
    kernel, debiased, threshold
        As in :func:`mossa.cka`. The RBF bandwidth is unchanged by a permutation.

    Returns
    -------
    NullResult
    """
    x3, y3, was_2d = check_pair(
        x, y, kernel=kernel, threshold=threshold, debiased=debiased, paired_layers=True
    )
    k = check_positive_int(n_permutations, "n_permutations")
    rng = check_seed(seed)
    n_layers, n, _ = x3.shape
    perms = torch.from_numpy(rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1))
    perms = perms.to(x3.device)
    dtype = compute_dtype(x3, y3)
    observed, samples, bad_x, bad_y = [], [], [], []
    per_layer = 3 * n * (x3.shape[2] + y3.shape[2]) * 8 + 4 * n * n * 8
    bar = tqdm(
        total=k * n_layers,
        desc="permutation null",
        unit="perm x layer",
        disable=None if k * n_layers * n * n > _PROGRESS_WORK else True,
        leave=False,
    )
    for s in layer_chunks(n_layers, per_layer):
        gx, bx = _centred_grams(x3[s], kernel, debiased, threshold, dtype)
        gy, by = _centred_grams(y3[s], kernel, debiased, threshold, dtype)
        norm = torch.sqrt(gram_inner(gx, gx) * gram_inner(gy, gy))
        observed.append(gram_inner(gx, gy) / norm)
        gx_flat, gy_flat = gx.flatten(1), gy.flatten(1)
        del gx, gy
        c = gx_flat.shape[0]
        step = max(1, MEMORY_BUDGET_BYTES // (8 * n * n * (c + 1)))
        chunk_samples = []
        for p0 in range(0, k, step):
            p = perms[p0 : p0 + step]
            flat_index = (p[:, :, None] * n + p[:, None, :]).flatten()  # [p n^2]
            permuted = gy_flat.index_select(1, flat_index).view(c, p.shape[0], n * n)
            chunk_samples.append(torch.bmm(permuted, gx_flat.unsqueeze(-1)).squeeze(-1))
            bar.update(p.shape[0] * c)
        samples.append(torch.cat(chunk_samples, dim=1).T / norm)  # [k, c]
        bad_x.append(bx | (norm <= 0))
        bad_y.append(by)
    bar.close()
    bx_all, by_all = torch.cat(bad_x).cpu().numpy(), torch.cat(bad_y).cpu().numpy()
    warn_degenerate(bx_all, by_all, single_layer=was_2d)
    bad = bx_all | by_all
    obs = np.where(bad, np.nan, torch.cat(observed).cpu().numpy())
    null = torch.cat(samples, dim=1).cpu().numpy()
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
    kernel: str = "linear",
    debiased: bool = True,
    threshold: float = 1.0,
) -> BootstrapResult:
    """Percentile bootstrap confidence interval of CKA over rows (inputs/prompts).

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
    kernel, debiased, threshold
        As in :func:`mossa.cka`. The RBF bandwidth stays at its full-sample value.

    Returns
    -------
    BootstrapResult
        Each replicate is the estimator on the resampled rows with ties removed: tuples
        of rows that use two copies of one original row are skipped (see the module
        docstring and docs/similarity.md); a resample without duplicates gives exactly
        ``cka(x[idx], y[idx])``.
    """
    x3, y3, was_2d = check_pair(
        x, y, kernel=kernel, threshold=threshold, debiased=debiased, paired_layers=True
    )
    n_rep = check_positive_int(n_boot, "n_boot")
    level = check_fraction(level, "level", allow_one=False)
    rng = check_seed(seed)
    n_layers, n, _ = x3.shape
    idx = rng.integers(0, n, size=(n_rep, n))
    counts = np.zeros((n_rep, n))
    np.add.at(counts, (np.arange(n_rep)[:, None], idx), 1.0)
    w = torch.from_numpy(counts.T.copy()).to(x3.device)  # [n, B]
    estimate = paired_cka(x3, y3, kernel, debiased, float(threshold), was_2d)
    dtype = compute_dtype(x3, y3)
    per_layer = 3 * n * (x3.shape[2] + y3.shape[2]) * 8 + 5 * n * n * 8 + 8 * n * n_rep * 8
    samples = []
    for s in layer_chunks(n_layers, per_layer):
        xc, scale_x = centre_features(x3[s], dtype)
        kx, _ = kernel_grams(xc, kernel, float(threshold), scale_x)
        yc, scale_y = centre_features(y3[s], dtype)
        ky, _ = kernel_grams(yc, kernel, float(threshold), scale_y)
        del xc, yc
        hxy, hxx, hyy = _weighted_hsic(kx, ky, w, debiased)
        defined = (hxx > 0) & (hyy > 0)
        samples.append(torch.where(defined, hxy / torch.sqrt(hxx * hyy), torch.nan))
    values = torch.cat(samples, dim=0).T.cpu().numpy()  # [B, L]
    values[:, np.isnan(estimate)] = np.nan
    distinct = (counts > 0).sum(axis=1)
    undefined = distinct < (4 if debiased else 2)
    values[undefined] = np.nan
    if undefined.any():
        warnings.warn(
            f"{int(undefined.sum())} of {n_rep} bootstrap resamples have fewer than "
            f"{4 if debiased else 2} distinct rows; their CKA is undefined (nan) and they are "
            "left out of the interval",
            DegenerateInputWarning,
            stacklevel=2,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan layers were warned about
        low, high = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2], axis=0)
    if was_2d:
        return BootstrapResult(float(estimate[0]), float(low[0]), float(high[0]), values[:, 0])
    return BootstrapResult(estimate, low, high, values)


def _centred_grams(
    x: torch.Tensor, kernel: str, debiased: bool, threshold: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred (or U-centred) float64 Grams [L, n, n] and the mask of undefined layers."""
    xc, scale = centre_features(x, dtype)
    g, undefined = kernel_grams(xc, kernel, float(threshold), scale)
    return centre_gram(g, debiased), undefined


def _weighted_hsic(
    kx: torch.Tensor,
    ky: torch.Tensor,
    w: torch.Tensor,
    debiased: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HSIC(K, L), HSIC(K, K), HSIC(L, L) per resample, up to a positive factor per resample.

    kx, ky: Grams K of x and L of y [L, n, n] (float64, modified in place); w: row
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
    kd = kx.diagonal(dim1=-2, dim2=-1).clone()
    ld = ky.diagonal(dim1=-2, dim2=-1).clone()
    kx.diagonal(dim1=-2, dim2=-1).zero_()
    ky.diagonal(dim1=-2, dim2=-1).zero_()
    wv = torch.cat([w, v], dim=1)  # [n, 2B]
    k_wv, l_wv = kx @ wv, ky @ wv  # [L, n, 2B]

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

    return (
        pair(kx, ky, k_wv, l_wv, kd, ld),
        pair(kx, kx, k_wv, k_wv, kd, kd),
        pair(ky, ky, l_wv, l_wv, ld, ld),
    )
