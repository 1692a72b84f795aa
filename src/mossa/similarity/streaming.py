"""Linear CKA over rows that arrive in batches, for n beyond memory.

Exact, not an average of per-batch CKAs: one pass accumulates, per layer, the float64
moments that the feature-space formulas of :mod:`mossa.similarity.cka` need (column sums,
Xᵀ X, Yᵀ Y, Xᵀ Y and the row-norm terms of the debiased estimator), so the result equals
``cka(x, y)`` on all rows at once. Memory is O(L (d1² + d2² + d1 d2)), whatever n.
"""

from __future__ import annotations

import numpy as np
import torch

from mossa.similarity._validation import check_inputs, check_options
from mossa.similarity.cka import (
    compute_dtype,
    constant_layers,
    debias_sums,
    ratio_or_nan,
    unit_scale,
    warn_degenerate,
)


class StreamingCKA:
    """Exact linear CKA (debiased by default) of x and y fed in batches of rows.

    Examples
    --------
    >>> acc = StreamingCKA()
    >>> for xb, yb in batches:        # [b, d1] and [b, d2], or [L, b, d1] and [L, b, d2]
    ...     acc.update(xb, yb)
    >>> acc.compute()                 # float, or ndarray [L]: cka(x, y) of all rows

    Every batch must have the rank, layer count and widths of the first. Sums are taken
    in float64 after subtracting the first batch's column means (so large offsets do not
    cancel digits) and scaling each layer by the power of two of the first batch's max |x|.
    """

    def __init__(self, *, debiased: bool = True) -> None:
        check_options("linear", 1.0, debiased)
        self.debiased = bool(debiased)
        self.n = 0  #: rows seen so far
        self._layout: tuple | None = None

    def update(self, x: object, y: object) -> None:
        """Add a batch of rows: x [b, d1] and y [b, d2], or [L, b, d1] and [L, b, d2]."""
        x3, y3, was_2d = check_inputs(x, y, min_rows=1, paired_layers=True)
        layout = (was_2d, x3.shape[0], x3.shape[2], y3.shape[2], x3.device)
        if self._layout is None:
            self._start(x3, y3, layout)
        elif layout != self._layout:
            first, now = self._describe(self._layout), self._describe(layout)
            raise ValueError(
                f"x and y must keep the layout of the first batch ({first}); got {now}"
            )
        xs = x3.to(torch.float64) * self._scale_x - self._shift_x
        ys = y3.to(torch.float64) * self._scale_y - self._shift_y
        self.n += x3.shape[1]
        m = self._moments
        m["sx"] += xs.sum(1)
        m["sy"] += ys.sum(1)
        m["sxx"] += xs.mT @ xs
        m["syy"] += ys.mT @ ys
        m["sxy"] += xs.mT @ ys
        if self.debiased:
            a, b = (xs * xs).sum(-1), (ys * ys).sum(-1)  # squared row norms [L, b]
            m["sa"] += a.sum(-1)
            m["sb"] += b.sum(-1)
            m["saa"] += (a * a).sum(-1)
            m["sbb"] += (b * b).sum(-1)
            m["sab"] += (a * b).sum(-1)
            m["ax"] += (a[..., None] * xs).sum(1)
            m["bx"] += (b[..., None] * xs).sum(1)
            m["ay"] += (a[..., None] * ys).sum(1)
            m["by"] += (b[..., None] * ys).sum(1)

    def compute(self) -> float | np.ndarray:
        """CKA of all rows seen: float for 2-D batches, else ndarray [L] (nan if constant)."""
        need = 4 if self.debiased else 2
        if self.n < need:
            raise ValueError(
                f"StreamingCKA needs at least {need} rows (samples) with debiased="
                f"{self.debiased}; got {self.n}"
            )
        n, m = self.n, self._moments
        mx, my = m["sx"] / n, m["sy"] / n  # means of the shifted data
        cxy = m["sxy"] - n * mx[:, :, None] * my[:, None, :]
        cxx = m["sxx"] - n * mx[:, :, None] * mx[:, None, :]
        cyy = m["syy"] - n * my[:, :, None] * my[:, None, :]
        t_xy, t_xx, t_yy = ((c * c).sum((-2, -1)) for c in (cxy, cxx, cyy))
        if self.debiased:
            # Σ k_i l_i with k_i = ||x_i - mx||² written in accumulated moments
            qx, qy = (mx * mx).sum(-1), (my * my).sum(-1)
            kx, ky = m["sa"] - n * qx, m["sb"] - n * qy  # Σ_i ||x_i - mx||², Σ_i ||y_i - my||²
            kl = (
                m["sab"]
                - 2 * (my * m["ay"]).sum(-1)
                - 2 * (mx * m["bx"]).sum(-1)
                + qy * m["sa"]
                + qx * m["sb"]
                + 4 * (mx[:, None, :] @ m["sxy"] @ my[:, :, None])[:, 0, 0]
                - 3 * n * qx * qy
            )
            kk = self._self_dot(m["saa"], m["ax"], m["sa"], m["sxx"], mx, qx, n)
            ll = self._self_dot(m["sbb"], m["by"], m["sb"], m["syy"], my, qy, n)
            t_xy = debias_sums(t_xy, kl, kx, ky, n)
            t_xx = debias_sums(t_xx, kk, kx, kx, n)
            t_yy = debias_sums(t_yy, ll, ky, ky, n)
        was_2d, _, d1, d2, _ = self._layout
        bad_x = constant_layers(
            cxx.diagonal(dim1=-2, dim2=-1).sum(-1),
            (self._shift_x[:, 0] + mx).abs().amax(-1),
            (n, d1),
            self._dtype,
        ) | (t_xx <= 0)
        bad_y = constant_layers(
            cyy.diagonal(dim1=-2, dim2=-1).sum(-1),
            (self._shift_y[:, 0] + my).abs().amax(-1),
            (n, d2),
            self._dtype,
        ) | (t_yy <= 0)
        bx, by = bad_x.cpu().numpy(), bad_y.cpu().numpy()
        warn_degenerate(bx, by, single_layer=was_2d)
        out = ratio_or_nan(*(t.cpu().numpy() for t in (t_xy, t_xx, t_yy)), bx | by)
        return float(out[0]) if was_2d else out

    # ------------------------------------------------------------------ internals

    def _start(self, x3: torch.Tensor, y3: torch.Tensor, layout: tuple) -> None:
        self._layout = layout
        self._dtype = compute_dtype(x3, y3)
        self._scale_x = unit_scale(x3.to(torch.float64))
        self._scale_y = unit_scale(y3.to(torch.float64))
        self._shift_x = (x3.to(torch.float64) * self._scale_x).mean(1, keepdim=True)
        self._shift_y = (y3.to(torch.float64) * self._scale_y).mean(1, keepdim=True)
        n_layers, d1, d2 = layout[1:4]
        shapes = {
            "sx": (d1,),
            "sy": (d2,),
            "sxx": (d1, d1),
            "syy": (d2, d2),
            "sxy": (d1, d2),
        }
        if self.debiased:
            shapes |= {k: () for k in ("sa", "sb", "saa", "sbb", "sab")}
            shapes |= {"ax": (d1,), "bx": (d1,), "ay": (d2,), "by": (d2,)}
        self._moments = {
            k: torch.zeros((n_layers, *s), dtype=torch.float64, device=x3.device)
            for k, s in shapes.items()
        }

    @staticmethod
    def _describe(layout: tuple) -> str:
        was_2d, n_layers, d1, d2, device = layout
        rank = "[b, d]" if was_2d else f"[{n_layers}, b, d]"
        return f"{rank} with d1 = {d1}, d2 = {d2} on {device}"

    @staticmethod
    def _self_dot(
        saa: torch.Tensor,
        ax: torch.Tensor,
        sa: torch.Tensor,
        sxx: torch.Tensor,
        mx: torch.Tensor,
        qx: torch.Tensor,
        n: int,
    ) -> torch.Tensor:
        """Σ_i k_i² for k_i = ||x_i - mx||², from the accumulated moments."""
        quad = (mx[:, None, :] @ sxx @ mx[:, :, None])[:, 0, 0]
        return saa - 4 * (mx * ax).sum(-1) + 2 * qx * sa + 4 * quad - 3 * n * qx * qx
