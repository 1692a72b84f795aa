"""Number of principal components needed to explain a share of the variance, per layer."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from mossa.similarity._validation import DegenerateInputWarning, check_array, check_fraction
from mossa.similarity.cka import layer_chunks, unit_scale


def pca_dims(x: object, variance: float = 0.99) -> int | np.ndarray:
    """Smallest k such that the top k principal components explain ``variance``.

    Parameters
    ----------
    x : array-like or torch.Tensor, shape [n, d] or [L, n, d]
        Rows are samples; each layer is centred separately.
    variance : float in (0, 1]
        Target share of the total variance (0.99 as in the Layer-by-Layer paper).

    Returns
    -------
    int for 2-D input, else np.ndarray [L] of int64. Matches scikit-learn's
    ``PCA().explained_variance_ratio_.cumsum()`` (first index reaching ``variance``, plus
    one). Eigenvalues come from the smaller of the d x d and n x n Gram matrices in
    float64. A layer with zero variance gives 0 (with a ``DegenerateInputWarning``).
    """
    x3 = check_array(x, "x", min_rows=2)
    was_2d = np.ndim(x) == 2 if not isinstance(x, torch.Tensor) else x.ndim == 2
    variance = check_fraction(variance, "variance", allow_one=True)
    n_layers, n, d = x3.shape
    out = []
    for s in layer_chunks(n_layers, 2 * n * d * 8 + min(n, d) ** 2 * 24):
        xc = x3[s].to(torch.float64)
        xc = (xc - xc.mean(dim=-2, keepdim=True)) * unit_scale(xc)  # no over/underflow
        gram = xc.mT @ xc if d <= n else xc @ xc.mT
        eig = torch.linalg.eigvalsh(gram).flip(-1).clamp_min(0)  # descending
        total = eig.sum(-1, keepdim=True)
        ratio = torch.cumsum(eig, dim=-1) / torch.where(total > 0, total, 1.0)
        dims = (ratio < variance).sum(-1) + 1
        dims = torch.minimum(dims, torch.full_like(dims, eig.shape[-1]))
        out.append(torch.where(total.squeeze(-1) > 0, dims, 0))
    dims_all = torch.cat(out).cpu().numpy().astype(np.int64)
    constant = np.flatnonzero(dims_all == 0)
    if constant.size:
        where = "x" if was_2d else f"x layer(s) {constant.tolist()}"
        warnings.warn(
            f"{where}: rows do not vary, so no component is needed (returned 0)",
            DegenerateInputWarning,
            stacklevel=2,
        )
    return int(dims_all[0]) if was_2d else dims_all
