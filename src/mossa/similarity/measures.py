"""Similarity measures beside CKA: orthogonal Procrustes, mutual k-NN and RSA.

Each takes two representations of the same n inputs (rows in the same order), with the
same validation and layer batching as :func:`mossa.similarity.cka` (``[n, d] -> float``,
``[L, n, d] -> ndarray [L]``), and is computed by a small state class per chunk of layers
that :mod:`mossa.similarity.calibration` reuses for the permutation null and the bootstrap:

* ``observed()``: the measure of each layer pair, [c] float64;
* ``permuted(perms, bar)``: the measure of (x, y[π]) for each row permutation π, [c, p];
* ``resampled(idx)``: the measure on the rows idx (with replacement) of both, [c, B],
  where copies of one row count as that row (never its own neighbour or pair).

See docs/similarity.md for definitions, numerics and why SVCCA/PWCCA are not here.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from mossa.similarity._validation import check_inputs, check_k, reject_rows
from mossa.similarity.cka import (
    MEMORY_BUDGET_BYTES,
    _sum_sq,
    centre_features,
    cka,
    compute_dtype,
    constant_layers,
    layer_chunks,
    permuted_inner,
    warn_degenerate,
)


def procrustes(x: object, y: object) -> float | np.ndarray:
    """Orthogonal Procrustes similarity of x and y, or of their layer-wise pairs.

    With columns centred and each side scaled to unit Frobenius norm, this is the nuclear
    norm ||x̂ᵀ ŷ||_* = 1 - d²/2, where d is the orthogonal Procrustes distance
    min_R ||x̂ - ŷ R||_F over orthogonal R (Williams et al. 2021; Ding et al. 2021).
    1 for representations equal up to rotation, isotropic scale and shift.

    Parameters
    ----------
    x, y : array-like or torch.Tensor, shape [n, d1] and [n, d2], or [L, n, d1] and [L, n, d2]
        As in :func:`mossa.cka` (d1 != d2 is allowed: R is then a partial isometry).

    Returns
    -------
    float for 2-D inputs, else np.ndarray [L] of float64. A layer whose rows do not vary
    gives nan with a ``DegenerateInputWarning``.
    """
    return _observe(_Procrustes, *check_measure_inputs("procrustes", x, y, {}))


def mutual_knn(x: object, y: object, *, k: int = 10) -> float | np.ndarray:
    """Mutual k-nearest-neighbour overlap of x and y, or of their layer-wise pairs.

    Rows are L2-normalised; each row's k nearest neighbours by cosine similarity (itself
    excluded) are found in each space, and the result is the mean over rows of the shared
    share |N_x(i) ∩ N_y(i)| / k (Huh et al. 2024). 1: every row keeps its neighbours.
    Ties between equally similar rows are broken arbitrarily.

    Parameters
    ----------
    x, y : as in :func:`mossa.cka`
    k : int, 1 <= k < n

    Raises
    ------
    ValueError
        As :func:`mossa.cka`, and for k outside [1, n) or an all-zero row (no direction).
    """
    return _observe(_MutualKnn, *check_measure_inputs("mutual_knn", x, y, {"k": k}))


def rsa(x: object, y: object) -> float | np.ndarray:
    """Representational similarity analysis of x and y, or of their layer-wise pairs.

    The Spearman correlation between the upper triangles of the two correlation-distance
    matrices D_ij = 1 - pearson(row i, row j) (Kriegeskorte et al. 2008); ties get
    average ranks. Invariant to shift and scale of each row, not to rotations of features.

    Parameters
    ----------
    x, y : as in :func:`mossa.cka`; n >= 3

    Returns
    -------
    float for 2-D inputs, else np.ndarray [L] of float64. A layer whose distances are all
    equal (e.g. every row the same up to shift and scale) gives nan with a
    ``DegenerateInputWarning``.

    Raises
    ------
    ValueError
        As :func:`mossa.cka`, and for a constant row (all features equal: its Pearson
        correlation with any other row is undefined).
    """
    return _observe(_Rsa, *check_measure_inputs("rsa", x, y, {}))


#: Every measure by name, as accepted by ``measure=`` in the calibration functions and by
#: ``mossa cka --measure``.
MEASURES: dict[str, Callable[..., float | np.ndarray]] = {
    "cka": cka,
    "procrustes": procrustes,
    "mutual_knn": mutual_knn,
    "rsa": rsa,
}


def check_measure(measure: object, options: dict[str, object]) -> None:
    """Validate a measure name and the names of its options (values are checked later)."""
    if not isinstance(measure, str) or measure not in MEASURES:
        raise ValueError(f"measure must be one of {tuple(MEASURES)}; got {measure!r}")
    accepted = [
        p.name
        for p in inspect.signature(MEASURES[measure]).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for name in options:
        if name not in accepted:
            takes = ", ".join(accepted) if accepted else "no options"
            raise ValueError(f"{name} is not an option of measure {measure!r} (it takes {takes})")


def check_knn_inputs(x3: torch.Tensor, y3: torch.Tensor, k: object, was_2d: bool) -> dict:
    """k in [1, n) and no all-zero row (cosine similarity needs a direction)."""
    k = check_k(k, x3.shape[1])
    for name, t in (("x", x3), ("y", y3)):
        reject_rows(t, (t == 0).all(-1), name, "only zeros (cosine undefined)", was_2d)
    return {"k": k}


def check_rsa_inputs(x3: torch.Tensor, y3: torch.Tensor, was_2d: bool) -> None:
    """At least 3 features and no constant row (its Pearson correlation is undefined)."""
    for name, t in (("x", x3), ("y", y3)):
        if t.shape[2] < 3:
            raise ValueError(
                f"rsa needs at least 3 features (columns) in {name}: rows of 2 features "
                f"correlate only as -1 or 1; got {name} shape "
                f"{tuple(t.shape[1:]) if was_2d else tuple(t.shape)}"
            )
        low, high = t.aminmax(dim=-1)
        reject_rows(t, low == high, name, "constant values (Pearson correlation undefined)", was_2d)


def measure_state(measure: str) -> type[_State]:
    """The state class of a measure other than CKA."""
    return {"procrustes": _Procrustes, "mutual_knn": _MutualKnn, "rsa": _Rsa}[measure]


def check_measure_inputs(
    measure: str, x: object, y: object, options: dict
) -> tuple[torch.Tensor, torch.Tensor, bool, dict]:
    """Validate the inputs of a measure other than CKA; return x3, y3, was_2d, options."""
    if measure == "rsa":
        x3, y3, was_2d = check_inputs(
            x, y, min_rows=3, paired_layers=True, needs=("rsa", " (3 distances at least)")
        )
        check_rsa_inputs(x3, y3, was_2d)
        return x3, y3, was_2d, {}
    x3, y3, was_2d = check_inputs(x, y, min_rows=2, paired_layers=True)
    if measure == "mutual_knn":
        return x3, y3, was_2d, check_knn_inputs(x3, y3, options.get("k", 10), was_2d)
    return x3, y3, was_2d, {}


# --------------------------------------------------------------------------- states


class _State(abc.ABC):
    """Per-chunk state of one measure; constructors set ``bad_x``, ``bad_y`` ([c] bool)."""

    label = ""  # the measure's name in warnings
    reason = ""  # why a layer can be undefined, for the warning
    bad_x: torch.Tensor
    bad_y: torch.Tensor

    @staticmethod
    @abc.abstractmethod
    def layer_bytes(n: int, d1: int, d2: int, options: dict) -> int:
        """Rough memory of one layer's state and temporaries, for chunking layers."""

    @staticmethod
    @abc.abstractmethod
    def undefined_resamples(counts: np.ndarray, options: dict) -> tuple[np.ndarray, str]:
        """Resamples [B] (row counts [B, n]) on which the measure is undefined, and why."""

    @abc.abstractmethod
    def observed(self) -> torch.Tensor:
        """The measure of each layer pair, [c] float64."""

    @abc.abstractmethod
    def permuted(self, perms: torch.Tensor, bar: tqdm) -> torch.Tensor:
        """The measure of (x, y[π]) for each permutation [P, n], [c, P] float64."""

    @abc.abstractmethod
    def resampled(self, idx: torch.Tensor) -> torch.Tensor:
        """The measure on rows idx [B, n] of both sides (copies = that row), [c, B]."""


def _observe(
    state: type[_State], x3: torch.Tensor, y3: torch.Tensor, was_2d: bool, options: dict
) -> float | np.ndarray:
    """Run a measure over chunks of layers; nan (with one warning) where undefined."""
    n_layers, n, d1 = x3.shape
    dtype = compute_dtype(x3, y3)
    values, bad_x, bad_y = [], [], []
    for s in layer_chunks(n_layers, state.layer_bytes(n, d1, y3.shape[2], options)):
        st = state(x3[s], y3[s], dtype, **options)
        values.append(st.observed())
        bad_x.append(st.bad_x)
        bad_y.append(st.bad_y)
    bx, by = (torch.cat(b).cpu().numpy() for b in (bad_x, bad_y))
    warn_degenerate(
        bx, by, single_layer=was_2d, stacklevel=4, measure=state.label, reason=state.reason
    )
    out = np.where(bx | by, np.nan, torch.cat(values).cpu().numpy())
    return float(out[0]) if was_2d else out


def _per_step(total_bytes_per_item: int) -> int:
    """How many permutations or resamples one batch may hold within the memory budget."""
    return max(1, MEMORY_BUDGET_BYTES // max(1, total_bytes_per_item))


# ------------------------------------------------------------------ Procrustes


class _Procrustes(_State):
    """Row factors A [c, n, r] of the centred features (Xc = A B, B with orthonormal rows).

    Xcᵀ Yc and A_xᵀ A_y have the same singular values and ||Xc||_F = ||A||_F, so every
    permutation or resample of rows is a product of r x r factors: A = Xc when d <= n, else
    Rᵀ from the QR factorisation Xcᵀ = Q R (r = n). Centring commutes with B, so a
    resample is re-centred on A.
    """

    label = "Procrustes similarity"
    reason = "zero variance"

    def __init__(self, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> None:
        self.ax, self.bad_x = self._factor(x, dtype)
        self.ay, self.bad_y = self._factor(y, dtype)

    @staticmethod
    def layer_bytes(n: int, d1: int, d2: int, options: dict) -> int:
        return 4 * n * (d1 + d2) * 8 + 4 * min(n, d1) * min(n, d2) * 8

    @staticmethod
    def undefined_resamples(counts: np.ndarray, options: dict) -> tuple[np.ndarray, str]:
        return (counts > 0).sum(axis=1) < 2, "fewer than 2 distinct rows"

    @staticmethod
    def _factor(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        xc, mean_scale = centre_features(x, dtype, refine=True)
        n, d = xc.shape[1:]
        bad = constant_layers(_sum_sq(xc), mean_scale, (n, d), dtype)
        if d <= n:
            return xc, bad
        return torch.linalg.qr(xc.mT, mode="r").R.mT.contiguous(), bad

    def observed(self) -> torch.Tensor:
        return _nuclear(self.ax.mT @ self.ay) / torch.sqrt(_sum_sq(self.ax) * _sum_sq(self.ay))

    def permuted(self, perms: torch.Tensor, bar: tqdm) -> torch.Tensor:
        c, n, rx = self.ax.shape
        ry = self.ay.shape[2]
        norm = torch.sqrt(_sum_sq(self.ax) * _sum_sq(self.ay))[:, None]
        item = self.ay.element_size()
        out = []
        for p in perms.split(_per_step(c * (n * ry * item + rx * ry * 40))):
            ay = self.ay[:, p.T].reshape(c, n, -1)  # [c, n, p ry]: the permuted rows side by side
            m = (self.ax.mT @ ay).view(c, rx, p.shape[0], ry).transpose(1, 2)
            out.append(_nuclear(m) / norm)
            bar.update(p.shape[0] * c)
        return torch.cat(out, dim=1)

    def resampled(self, idx: torch.Tensor) -> torch.Tensor:
        c, n, rx = self.ax.shape
        ry = self.ay.shape[2]
        out = []
        for rows in idx.split(_per_step(c * (n * (rx + ry) * 8 + rx * ry * 40))):
            ax = self.ax[:, rows]  # [c, b, n, rx]
            ay = self.ay[:, rows]
            ax = ax - ax.mean(dim=-2, keepdim=True)
            ay = ay - ay.mean(dim=-2, keepdim=True)
            out.append(_nuclear(ax.mT @ ay) / torch.sqrt(_sum_sq(ax) * _sum_sq(ay)))
        return torch.cat(out, dim=1)


def _nuclear(m: torch.Tensor) -> torch.Tensor:
    """Sum of singular values over the last two axes, computed in float64."""
    return torch.linalg.svdvals(m.to(torch.float64)).sum(-1)


# ------------------------------------------------------------------ mutual k-NN


class _MutualKnn(_State):
    """Unit rows and each row's k nearest neighbours [c, n, k] in each space."""

    label = "mutual k-NN"
    reason = ""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype, *, k: int) -> None:
        self.k = k
        self.xn, self.yn = _unit_rows(x, dtype), _unit_rows(y, dtype)
        self.nx, self.ny = _neighbours(self.xn, k), _neighbours(self.yn, k)
        self.bad_x = self.bad_y = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    @staticmethod
    def layer_bytes(n: int, d1: int, d2: int, options: dict) -> int:
        return 2 * n * (d1 + d2) * 8 + 4 * n * options["k"] * 8 + 4 * n * n * 4

    @staticmethod
    def undefined_resamples(counts: np.ndarray, options: dict) -> tuple[np.ndarray, str]:
        n, k = counts.shape[1], options["k"]
        return counts.max(axis=1) > n - k, f"a row drawn more than n - k = {n - k} times"

    def observed(self) -> torch.Tensor:
        return _shared(self.nx, self.ny, self.k)

    def permuted(self, perms: torch.Tensor, bar: tqdm) -> torch.Tensor:
        """Row i of y[π] is y[π_i]; its neighbours there are π⁻¹ of y[π_i]'s neighbours."""
        c, n, k = self.nx.shape
        step = _per_step(c * n * k * 8 * 6)
        inverse = torch.argsort(perms, dim=1)  # [P, n]
        out = []
        for p, inv in zip(perms.split(step), inverse.split(step), strict=True):
            ny = self.ny[:, p]  # [c, p, n, k]: original indices
            mapped = torch.gather(inv.expand(c, -1, -1), 2, ny.flatten(2)).view_as(ny)
            out.append(_shared(self.nx.unsqueeze(1), mapped, k))
            bar.update(p.shape[0] * c)
        return torch.cat(out, dim=1)

    def resampled(self, idx: torch.Tensor) -> torch.Tensor:
        """Neighbours among positions of other rows, compared by original row (a multiset)."""
        sx, sy = self.xn @ self.xn.mT, self.yn @ self.yn.mT  # [c, n, n] cosine similarities
        out = []
        for rows in idx:
            same = rows[:, None] == rows[None, :]  # copies of a row are that row
            nx = _top_k(sx[:, rows][:, :, rows].masked_fill_(same, -torch.inf), self.k)
            ny = _top_k(sy[:, rows][:, :, rows].masked_fill_(same, -torch.inf), self.k)
            out.append(_shared(rows[nx], rows[ny], self.k))
        return torch.stack(out, dim=1)


def _unit_rows(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows scaled to unit L2 norm (first by their max |x|, so no square under/overflows)."""
    xd = x.to(dtype)
    xd = xd / xd.abs().amax(dim=-1, keepdim=True)
    return xd / torch.linalg.vector_norm(xd, dim=-1, keepdim=True)


def _top_k(sim: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of the k largest entries of each row, [..., rows, k]."""
    return torch.topk(sim, k, dim=-1, sorted=False).indices


def _neighbours(xn: torch.Tensor, k: int) -> torch.Tensor:
    """Each row's k nearest other rows by cosine similarity, [c, n, k], in blocks of rows.

    Memory stays O(n x block): the n x n similarity matrix is never formed whole.
    """
    c, n, _ = xn.shape
    block = _per_step(3 * c * n * xn.element_size())
    out = []
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        sim = xn[:, lo:hi] @ xn.mT  # [c, b, n]
        rows = torch.arange(hi - lo, device=xn.device)
        sim[:, rows, rows + lo] = -torch.inf  # a row is not its own neighbour
        out.append(_top_k(sim, k))
    return torch.cat(out, dim=1)


def _shared(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over rows of |a_i ∩ b_i| / k for neighbour lists [..., n, k], as multisets.

    An entry of a is matched when it is its value's r-th occurrence in a_i and b_i holds
    that value more than r times; for sets (no repeats) this is the plain intersection.
    a and b broadcast against each other.
    """
    a, b = (t.contiguous() for t in torch.broadcast_tensors(a.sort(-1).values, b.sort(-1).values))
    occurrence = torch.arange(k, device=a.device) - torch.searchsorted(a, a, side="left")
    in_b = torch.searchsorted(b, a, side="right") - torch.searchsorted(b, a, side="left")
    return (occurrence < in_b).sum(-1).to(torch.float64).mean(-1) / k


# ------------------------------------------------------------------ RSA


class _Rsa(_State):
    """Row-correlation matrices [c, n, n] (float64) of both sides."""

    label = "RSA"
    reason = "all correlation distances equal"

    def __init__(self, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> None:
        n = x.shape[1]
        self.cx, self.cy = _row_correlations(x, dtype), _row_correlations(y, dtype)
        self.upper = torch.triu_indices(n, n, 1, device=x.device)
        vx = self.cx[:, self.upper[0], self.upper[1]]
        vy = self.cy[:, self.upper[0], self.upper[1]]
        self.rx, self.ry = _ranks(vx), _ranks(vy)
        self.bad_x, self.bad_y = _all_equal(vx, dtype), _all_equal(vy, dtype)

    @staticmethod
    def layer_bytes(n: int, d1: int, d2: int, options: dict) -> int:
        return 10 * n * n * 8 + 2 * n * (d1 + d2) * 8

    @staticmethod
    def undefined_resamples(counts: np.ndarray, options: dict) -> tuple[np.ndarray, str]:
        return (counts > 0).sum(axis=1) < 3, "fewer than 3 distinct rows"

    def observed(self) -> torch.Tensor:
        return _pearson(self.rx, self.ry)

    def permuted(self, perms: torch.Tensor, bar: tqdm) -> torch.Tensor:
        """Ranks of y[π]'s distances are y's ranks permuted: one gather, as for CKA."""
        gx, gy = self._centred_rank_matrix(self.rx), self._centred_rank_matrix(self.ry)
        norm = torch.sqrt((gx * gx).sum((-2, -1)) * (gy * gy).sum((-2, -1)))
        n = gx.shape[-1]
        return permuted_inner(gx.flatten(1), gy.flatten(1), perms, n, bar) / norm[:, None]

    def _centred_rank_matrix(self, r: torch.Tensor) -> torch.Tensor:
        """Symmetric [c, n, n] of ranks minus their mean, zero diagonal."""
        n = self.cx.shape[-1]
        out = torch.zeros(r.shape[0], n, n, dtype=torch.float64, device=r.device)
        centred = r - r.mean(-1, keepdim=True)
        out[:, self.upper[0], self.upper[1]] = centred
        out[:, self.upper[1], self.upper[0]] = centred
        return out

    def resampled(self, idx: torch.Tensor) -> torch.Tensor:
        """Pairs of positions holding different rows; copies of a pair are weighted pairs."""
        out = []
        for rows in idx:
            i, j = rows[self.upper[0]], rows[self.upper[1]]
            keep = i != j
            i, j = i[keep], j[keep]
            out.append(_pearson(_ranks(self.cx[:, i, j]), _ranks(self.cy[:, i, j])))
        return torch.stack(out, dim=1)


def _row_correlations(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Pearson correlations between rows, [c, n, n] float64.

    Rows are centred and normalised in float64 (offsets large against the spread would
    lose digits in float32), then multiplied in ``dtype``; the product is symmetrised so
    that pairs (i, j) and (j, i) tie exactly (bootstrap copies meet in either order).
    """
    xc = x.to(torch.float64)
    xc = xc - xc.mean(dim=-1, keepdim=True)
    xc = xc / xc.abs().amax(dim=-1, keepdim=True)
    z = (xc / torch.linalg.vector_norm(xc, dim=-1, keepdim=True)).to(dtype)
    c = (z @ z.mT).to(torch.float64)
    return (c + c.mT) / 2


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Average ranks along the last axis (``scipy.stats.rankdata``), float64."""
    import scipy.stats  # ~0.4 s to import, and only RSA needs it

    return torch.from_numpy(scipy.stats.rankdata(v.cpu().numpy(), axis=-1)).to(v.device)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation along the last axis, float64 (nan where either is constant)."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / torch.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def _all_equal(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Layers whose correlations [c, m] all agree to rounding (64 eps): Spearman undefined."""
    low, high = v.aminmax(dim=-1)
    return high - low <= 64 * torch.finfo(dtype).eps
