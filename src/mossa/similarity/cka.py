"""Centred kernel alignment (CKA, Kornblith et al. 2019), batched over layers with torch.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for Gram matrices K (of x) and L
(of y) over the same n rows. Two HSIC estimators:

* biased (Gretton et al. 2005): HSIC_b ∝ tr(H K H L), H = I - 11ᵀ/n;
* debiased (Song et al. 2012): the U-statistic HSIC_1, written as the Frobenius inner
  product of U-centred Grams (diagonals zeroed); it needs n >= 4.

Numerics: each layer is first scaled by a power of two (exact) to max |x| in [0.5, 1),
so no product overflows or underflows; features are centred and multiplied in float32
(float64 when an input is float64); every n x n or d x d result is upcast to float64
before it is centred or reduced. See docs/similarity.md for the formulas and the error budget.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from mossa.similarity._validation import DegenerateInputWarning, check_pair

if TYPE_CHECKING:
    from tqdm import tqdm

#: Rough ceiling on the temporaries of one batch of layers; inputs are processed in
#: chunks of layers that fit (a single layer is always processed whole).
MEMORY_BUDGET_BYTES = 1 << 30


@dataclass(frozen=True)
class LinearPlan:
    """Which linear-kernel path ``cka`` takes for one layer pair, and its FLOP count."""

    path: str  # "gram" (n^2 (d1 + d2)) or "feature" (n d1 d2 + symmetric self terms)
    flops: int


def syrk_flops(n: int, d: int) -> int:
    """FLOPs of ``||Xᵀ X||_F^2`` for X [n, d] computed as upper-triangular column panels."""
    b = _panel_count(d)
    return n * d * d * (b + 1) // b


def linear_plan(n: int, d1: int, d2: int) -> LinearPlan:
    """Pick the cheaper linear-CKA path for x [n, d1], y [n, d2] by counting FLOPs."""
    gram = 2 * n * n * (d1 + d2)
    feature = 2 * n * d1 * d2 + syrk_flops(n, d1) + syrk_flops(n, d2)
    return LinearPlan("feature", feature) if feature < gram else LinearPlan("gram", gram)


def cka(
    x: object,
    y: object,
    *,
    kernel: str = "linear",
    debiased: bool = True,
    threshold: float = 1.0,
) -> float | np.ndarray:
    """CKA between x and y, or between layer-wise pairs of x and y.

    Parameters
    ----------
    x, y : array-like or torch.Tensor, shape [n, d1] and [n, d2], or [L, n, d1] and [L, n, d2]
        Representations of the same n inputs, rows in the same order. numpy arrays or
        torch tensors (CPU or CUDA) of any float dtype; float16/bfloat16 are upcast.
    kernel : {"linear", "rbf"}
        "rbf" is exp(-||xi - xj||^2 / (2 threshold^2 m)) with m the median squared
        distance over all n^2 pairs (diagonal included), as in Kornblith et al.
    debiased : bool, default True
        True uses the unbiased HSIC estimator of Song et al. 2012 (needs n >= 4), whose
        value does not drift with n or with d >> n; False gives the classic biased CKA
        (Kornblith et al.; independent 4096-d Gaussians score ~0.98 at n = 100).
    threshold : float, default 1.0
        RBF bandwidth as a fraction of the median distance (ignored for "linear").

    Returns
    -------
    float for 2-D inputs, else np.ndarray [L] of float64. A layer whose rows do not vary
    (or whose RBF median distance is 0) gives nan with a ``DegenerateInputWarning``.

    Raises
    ------
    ValueError
        Naming the argument: different n, wrong rank, unequal layer counts, n < 4 with
        debiased=True, NaN/Inf rows, empty input, bad kernel or threshold.
    """
    x3, y3, was_2d = check_pair(
        x, y, kernel=kernel, threshold=threshold, debiased=debiased, paired_layers=True
    )
    values = paired_cka(x3, y3, kernel, debiased, float(threshold), was_2d)
    return float(values[0]) if was_2d else values


def cka_matrix(
    x: object,
    y: object,
    *,
    kernel: str = "linear",
    debiased: bool = True,
    threshold: float = 1.0,
) -> np.ndarray:
    """CKA between every layer of x and every layer of y.

    Parameters
    ----------
    x : array-like or torch.Tensor, shape [Lx, n, d1] (or [n, d1], read as one layer)
    y : array-like or torch.Tensor, shape [Ly, n, d2] (or [n, d2])
    kernel, debiased, threshold
        As in :func:`cka`.

    Returns
    -------
    np.ndarray [Lx, Ly] of float64; entry (a, b) equals ``cka(x[a], y[b])``. Each layer's
    Gram matrix is built and centred once (or, for the linear kernel with n large against
    d, one GEMM over all layer pairs in feature space).
    """
    x3, y3, _ = check_pair(
        x, y, kernel=kernel, threshold=threshold, debiased=debiased, paired_layers=False
    )
    n, d1, d2 = x3.shape[1], x3.shape[2], y3.shape[2]
    lx, ly = x3.shape[0], y3.shape[0]
    dtype = compute_dtype(x3, y3)
    feature = 2 * n * lx * ly * d1 * d2 + lx * syrk_flops(n, d1) + ly * syrk_flops(n, d2)
    gram = 2 * n * n * (lx * d1 + ly * d2) + 2 * n * n * lx * ly
    if kernel == "linear" and feature < gram:
        xy, xx, yy, bad_x, bad_y = _matrix_terms_feature(x3, y3, debiased, dtype)
    else:
        xy, xx, yy, bad_x, bad_y = _matrix_terms_gram(x3, y3, kernel, debiased, threshold, dtype)
    bad_x |= xx <= 0
    bad_y |= yy <= 0
    warn_degenerate(bad_x, bad_y, single_layer=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = xy / np.sqrt(np.outer(xx, yy))
    out[bad_x, :] = np.nan
    out[:, bad_y] = np.nan
    return out


# --------------------------------------------------------------------------- building blocks


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half precisions are upcast)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def layer_chunks(n_layers: int, bytes_per_layer: int) -> Iterator[slice]:
    """Slices over the layer axis whose temporaries fit in ``MEMORY_BUDGET_BYTES``."""
    step = max(1, min(n_layers, MEMORY_BUDGET_BYTES // max(1, bytes_per_layer)))
    for lo in range(0, n_layers, step):
        yield slice(lo, min(lo + step, n_layers))


def centre_features(
    x: torch.Tensor, dtype: torch.dtype, *, refine: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Subtract column means and rescale; return centred [L, n, d] in ``dtype``, max |mean| [L].

    Each layer is multiplied by the power of two that brings its max |x| into [0.5, 1),
    so products of features neither overflow nor underflow (float32 inputs of 1e9 would
    overflow ||Xᵀ Y||², 1e-9 underflow); a power of two is exact, and CKA is invariant
    to isotropic scaling. ``refine`` adds a second pass subtracting the mean of the
    residuals, which removes the rounding error of the first mean (as accurate as a
    float64 mean, without a float64 copy); the feature-space formulas need it, Gram
    paths re-centre in float64 anyway. The (rescaled) mean's magnitude is the scale for
    :func:`constant_layers`.
    """
    xd = x.to(dtype)  # no copy when x already has the compute dtype
    scale = unit_scale(xd)
    mean = xd.mean(dim=-2, keepdim=True).mul_(scale)
    xc = torch.addcmul(-mean, xd, scale)  # (x - mean) * scale in one pass
    if refine:
        xc -= xc.mean(dim=-2, keepdim=True)
    return xc, mean.abs().amax(dim=(-2, -1)).to(torch.float64)


def unit_scale(x: torch.Tensor) -> torch.Tensor:
    """Per-layer powers of two [L, 1, 1] (in x's dtype) that bring max |x| into [0.5, 1).

    Two fast reductions (max and min), O(n d); all-zero layers get 1.
    """
    peak = torch.maximum(x.amax(dim=(-2, -1)), -x.amin(dim=(-2, -1)))
    top = math.frexp(torch.finfo(x.dtype).max)[1]  # 2^-e must stay finite: e > -top
    exponent = torch.frexp(peak).exponent.clamp_(min=1 - top)
    return torch.pow(2.0, -exponent.to(torch.float64)).to(x.dtype)[:, None, None]


def constant_layers(
    sum_sq: torch.Tensor, mean_scale: torch.Tensor, shape: tuple[int, int], dtype: torch.dtype
) -> torch.Tensor:
    """Layers whose rows do not vary: ||Xc||_F^2 <= n d (64 eps max |mean|)^2.

    ``sum_sq`` is ||Xc||_F^2 per layer (the trace of the Gram or of Xcᵀ Xc), so the test
    costs no extra pass over the data; exactly constant rows give 0.
    """
    n, d = shape
    return sum_sq <= n * d * (64 * torch.finfo(dtype).eps * mean_scale) ** 2


def kernel_grams(
    xc: torch.Tensor, kernel: str, threshold: float, mean_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram matrices [L, n, n] (float64) of centred features and a mask of undefined layers.

    Undefined: constant layers (see :func:`constant_layers`) and RBF layers whose median
    squared distance is 0 (most rows identical).
    """
    g = torch.bmm(xc, xc.mT).to(torch.float64)
    sq = g.diagonal(dim1=-2, dim2=-1).clone()
    undefined = constant_layers(sq.sum(-1), mean_scale, tuple(xc.shape[1:]), xc.dtype)
    if kernel == "linear":
        return g, undefined
    dist = g.mul_(-2).add_(sq.unsqueeze(-1)).add_(sq.unsqueeze(-2)).clamp_min_(0)
    median = _median_per_layer(dist)
    flat = median <= 0
    undefined |= flat
    scale = 2 * threshold**2 * torch.where(flat, torch.ones_like(median), median)
    return dist.div_(-scale[:, None, None]).exp_(), undefined


def centre_gram(k: torch.Tensor, debiased: bool) -> torch.Tensor:
    """Centre Gram matrices [L, n, n] in place: H K H, or U-centring when debiased.

    U-centring (Székely & Rizzo 2014) zeroes the diagonal and subtracts row and column
    sums / (n - 2), adding the total / ((n - 1)(n - 2)); the Frobenius inner product of
    two U-centred Grams is n (n - 3) times the unbiased HSIC of Song et al. 2012.
    """
    n = k.shape[-1]
    if debiased:
        k.diagonal(dim1=-2, dim2=-1).zero_()
        rows = k.sum(dim=-1, keepdim=True)
        total = rows.sum(dim=-2, keepdim=True)
        k.sub_(rows / (n - 2)).sub_(rows.mT / (n - 2)).add_(total / ((n - 1) * (n - 2)))
        k.diagonal(dim1=-2, dim2=-1).zero_()
    else:
        rows = k.mean(dim=-1, keepdim=True)
        k.sub_(rows).sub_(rows.mT).add_(rows.mean(dim=-2, keepdim=True))
    return k


def gram_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Frobenius inner products of matching matrices [L, n, n] -> [L], in float64."""
    return torch.linalg.vecdot(a.flatten(1).double(), b.flatten(1).double())


def debias_linear(t: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor, n: int) -> torch.Tensor:
    """Unbiased HSIC (times n (n - 3)) from ``t = ||Xcᵀ Yc||_F^2`` and squared row norms.

    With centred features, K = Xc Xcᵀ has zero row sums, so Song's formula on the
    zero-diagonal Grams reduces to t - n/(n-2) k·l + (Σk)(Σl) / ((n-1)(n-2)).
    ``kx``, ``ky``: [L, n] for layer-wise pairs (t [L]).
    """
    return debias_sums(t, (kx * ky).sum(-1), kx.sum(-1), ky.sum(-1), n)


def debias_sums(
    t: torch.Tensor, dot: torch.Tensor, sum_x: torch.Tensor, sum_y: torch.Tensor, n: int
) -> torch.Tensor:
    """:func:`debias_linear` from its sums: dot = k·l, sum_x = Σk, sum_y = Σl."""
    return t - n / (n - 2) * dot + sum_x * sum_y / ((n - 1) * (n - 2))


def debias_linear_matrix(
    t: torch.Tensor, kx: torch.Tensor, ky: torch.Tensor, n: int
) -> torch.Tensor:
    """:func:`debias_linear` for all layer pairs: t [Lx, Ly], kx [Lx, n], ky [Ly, n]."""
    sums = torch.outer(kx.sum(-1), ky.sum(-1))
    return t - n / (n - 2) * (kx @ ky.T) + sums / ((n - 1) * (n - 2))


def permuted_inner(
    gx_flat: torch.Tensor, gy_flat: torch.Tensor, perms: torch.Tensor, n: int, bar: tqdm
) -> torch.Tensor:
    """Σ_ij Gx[i, j] Gy[π_i, π_j] for flattened [c, n²] matrices and permutations [P, n].

    One gather and one batched inner product per batch of permutations (chunked by
    memory), no matrix rebuilt: the permutation null of CKA and of RSA. Returns [c, P].
    """
    c = gx_flat.shape[0]
    step = max(1, MEMORY_BUDGET_BYTES // (8 * n * n * (c + 1)))
    chunk_samples = []
    for p0 in range(0, perms.shape[0], step):
        p = perms[p0 : p0 + step]
        flat_index = (p[:, :, None] * n + p[:, None, :]).flatten()  # [p n^2]
        permuted = gy_flat.index_select(1, flat_index).view(c, p.shape[0], n * n)
        chunk_samples.append(torch.bmm(permuted, gx_flat.unsqueeze(-1)).squeeze(-1))
        bar.update(p.shape[0] * c)
    return torch.cat(chunk_samples, dim=1)


def ratio_or_nan(xy: np.ndarray, xx: np.ndarray, yy: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """CKA = xy / sqrt(xx yy), nan where ``bad`` (already warned about)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = xy / np.sqrt(xx * yy)
    return np.where(bad, np.nan, out)


# --------------------------------------------------------------------------- internals


def _panel_count(d: int) -> int:
    return max(1, min(8, d // 256))


def _sum_sq(m: torch.Tensor) -> torch.Tensor:
    """Squared Frobenius norms over the last two axes, returned in float64.

    Row norms in the input dtype (short sums), then squares summed in float64: a float32
    reduction over all d1 d2 entries at once drifts by ~3e-5 relative at d = 1024.
    """
    return torch.linalg.vector_norm(m, dim=-1).to(torch.float64).square().sum(-1)


def _self_sum_sq(xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``||Xcᵀ Xc||_F^2`` and ``tr(Xcᵀ Xc)`` per layer from upper-triangular column panels.

    Xᵀ X is symmetric, so with X split into b column panels the sum is
    Σ_i ||X_iᵀ X_i||^2 + 2 Σ_{i<j} ||X_iᵀ X_j||^2: (b + 1) / (2 b) of a full GEMM.
    """
    d = xc.shape[-1]
    edges = np.linspace(0, d, _panel_count(d) + 1).astype(int)
    total = torch.zeros(xc.shape[0], dtype=torch.float64, device=xc.device)
    trace = torch.zeros_like(total)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        panel = torch.bmm(xc[..., lo:hi].mT, xc[..., lo:])
        total += _sum_sq(panel[..., : hi - lo]) + 2 * _sum_sq(panel[..., hi - lo :])
        trace += panel[..., : hi - lo].diagonal(dim1=-2, dim2=-1).sum(-1).to(torch.float64)
    return total, trace


def _chunked_self_sum_sq(xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_self_sum_sq` over chunks of layers (the panels need d^2 memory per layer)."""
    _, n, d = xc.shape
    parts = [_self_sum_sq(xc[s]) for s in layer_chunks(xc.shape[0], n * d * 8 + d * d * 12)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _row_sq(xc: torch.Tensor) -> torch.Tensor:
    """Squared row norms [L, n] (accumulated in the compute dtype, returned as float64)."""
    return torch.linalg.vecdot(xc, xc).to(torch.float64)


def _median_per_layer(dist: torch.Tensor) -> torch.Tensor:
    """np.median over each layer's n x n entries (mean of the two middle values if even)."""
    flat = dist.flatten(1)
    m = flat.shape[1]
    low = torch.kthvalue(flat, (m + 1) // 2, dim=1).values
    high = torch.kthvalue(flat, m // 2 + 1, dim=1).values
    return (low + high) / 2


def paired_cka(
    x: torch.Tensor, y: torch.Tensor, kernel: str, debiased: bool, threshold: float, was_2d: bool
) -> np.ndarray:
    """CKA of validated layer pairs x [L, n, d1], y [L, n, d2] -> [L] (nan where undefined)."""
    n_layers, n, d1 = x.shape
    d2 = y.shape[-1]
    dtype = compute_dtype(x, y)
    item = torch.finfo(dtype).bits // 8
    feature = kernel == "linear" and linear_plan(n, d1, d2).path == "feature"
    if feature:
        per_layer = 3 * n * (d1 + d2) * 8 + d1 * max(d1, d2) * (item + 8)
    else:
        per_layer = 3 * n * (d1 + d2) * 8 + 4 * n * n * 8
    xy, xx, yy, bad = [], [], [], []
    for s in layer_chunks(n_layers, per_layer):
        xc, scale_x = centre_features(x[s], dtype, refine=feature)
        yc, scale_y = centre_features(y[s], dtype, refine=feature)
        if feature:
            t_xy = _sum_sq(torch.bmm(xc.mT, yc))
            (t_xx, tr_x), (t_yy, tr_y) = _self_sum_sq(xc), _self_sum_sq(yc)
            undef_x = constant_layers(tr_x, scale_x, (n, d1), dtype)
            undef_y = constant_layers(tr_y, scale_y, (n, d2), dtype)
            if debiased:
                kx, ky = _row_sq(xc), _row_sq(yc)
                t_xy = debias_linear(t_xy, kx, ky, n)
                t_xx = debias_linear(t_xx, kx, kx, n)
                t_yy = debias_linear(t_yy, ky, ky, n)
        else:
            gx, undef_x = kernel_grams(xc, kernel, threshold, scale_x)
            del xc
            gx = centre_gram(gx, debiased)
            gy, undef_y = kernel_grams(yc, kernel, threshold, scale_y)
            del yc
            gy = centre_gram(gy, debiased)
            t_xy, t_xx, t_yy = gram_inner(gx, gy), gram_inner(gx, gx), gram_inner(gy, gy)
            del gx, gy
        xy.append(t_xy)
        xx.append(t_xx)
        yy.append(t_yy)
        bad.append(torch.stack([undef_x | (t_xx <= 0), undef_y | (t_yy <= 0)]))
    xy_, xx_, yy_ = (torch.cat(v).cpu().numpy() for v in (xy, xx, yy))
    bad_x, bad_y = torch.cat(bad, dim=1).cpu().numpy()
    warn_degenerate(bad_x, bad_y, single_layer=was_2d, stacklevel=4)
    return ratio_or_nan(xy_, xx_, yy_, bad_x | bad_y)


def _matrix_terms_feature(
    x: torch.Tensor, y: torch.Tensor, debiased: bool, dtype: torch.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cross-layer ||Xaᵀ Yb||^2 from blocks of one GEMM over concatenated layers."""
    (lx, n, d1), d2, ly = x.shape, y.shape[-1], y.shape[0]
    xc, scale_x = centre_features(x, dtype, refine=True)
    yc, scale_y = centre_features(y, dtype, refine=True)
    xx, tr_x = _chunked_self_sum_sq(xc)
    yy, tr_y = _chunked_self_sum_sq(yc)
    const_x = constant_layers(tr_x, scale_x, (n, d1), dtype)
    const_y = constant_layers(tr_y, scale_y, (n, d2), dtype)
    y_cols = yc.permute(1, 0, 2).reshape(n, ly * d2)  # [n, Ly d2]
    xy = torch.empty(lx, ly, dtype=torch.float64, device=x.device)
    for s in layer_chunks(lx, d1 * ly * d2 * 12 + n * d1 * 4):
        a = s.stop - s.start
        block = xc[s].permute(0, 2, 1).reshape(a * d1, n) @ y_cols  # [a d1, Ly d2]
        xy[s] = _sum_sq(block.reshape(a, d1, ly, d2).permute(0, 2, 1, 3))
    if debiased:
        kx, ky = _row_sq(xc), _row_sq(yc)
        xy = debias_linear_matrix(xy, kx, ky, n)
        xx = debias_linear(xx, kx, kx, n)
        yy = debias_linear(yy, ky, ky, n)
    return (
        xy.cpu().numpy(),
        xx.cpu().numpy(),
        yy.cpu().numpy(),
        const_x.cpu().numpy(),
        const_y.cpu().numpy(),
    )


def _matrix_terms_gram(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str,
    debiased: bool,
    threshold: float,
    dtype: torch.dtype,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre every layer's Gram once (kept in ``dtype``), then one inner-product GEMM."""
    gx, xx, bad_x = _centred_stack(x, kernel, debiased, threshold, dtype)
    gy, yy, bad_y = _centred_stack(y, kernel, debiased, threshold, dtype)
    n2 = gx.shape[1]
    xy = torch.empty(gx.shape[0], gy.shape[0], dtype=torch.float64, device=gx.device)
    step = max(1, int(np.sqrt(MEMORY_BUDGET_BYTES / (16 * n2))))
    for i in range(0, gx.shape[0], step):
        a = gx[i : i + step].double()
        for j in range(0, gy.shape[0], step):
            xy[i : i + step, j : j + step] = a @ gy[j : j + step].double().T
    return xy.cpu().numpy(), xx, yy, bad_x, bad_y


def _centred_stack(
    x: torch.Tensor, kernel: str, debiased: bool, threshold: float, dtype: torch.dtype
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Centred Grams of all layers, flattened [L, n^2] in ``dtype``; their squared norms."""
    n_layers, n, d = x.shape
    out = torch.empty(n_layers, n * n, dtype=dtype, device=x.device)
    bad = torch.zeros(n_layers, dtype=torch.bool, device=x.device)
    norms = torch.empty(n_layers, dtype=torch.float64, device=x.device)
    for s in layer_chunks(n_layers, 3 * n * d * 8 + 3 * n * n * 8):
        xc, scale = centre_features(x[s], dtype)
        g, undefined = kernel_grams(xc, kernel, threshold, scale)
        out[s] = centre_gram(g, debiased).flatten(1).to(dtype)
        norms[s] = torch.linalg.vector_norm(out[s], dim=1, dtype=torch.float64).square()
        bad[s] = undefined
    return out, norms.cpu().numpy(), bad.cpu().numpy()


def warn_degenerate(
    bad_x: np.ndarray,
    bad_y: np.ndarray,
    *,
    single_layer: bool,
    stacklevel: int = 3,
    measure: str = "CKA",
    reason: str = "zero variance, RBF median distance 0 or non-positive self-HSIC",
) -> None:
    """One warning naming the sides and layers where ``measure`` is undefined (returned as nan)."""
    parts = []
    for name, bad in (("x", bad_x), ("y", bad_y)):
        if bad.any():
            where = "" if single_layer else f" layer(s) {np.flatnonzero(bad).tolist()}"
            parts.append(f"{name}{where}")
    if parts:
        warnings.warn(
            f"{' and '.join(parts)}: rows do not vary ({reason}), so {measure} is undefined "
            "there and returned as nan",
            DegenerateInputWarning,
            stacklevel=stacklevel,
        )
