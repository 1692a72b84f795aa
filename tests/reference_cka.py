"""Plain float64 numpy reference for CKA, written straight from the formulas.

Deliberately slow and literal (explicit centring matrices, Python loops over layers and,
for the U-statistic check, over index tuples) so that it shares nothing with mossa's
batched implementation except the definitions:

* Kornblith et al. 2019: CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).
* biased HSIC: tr(K H L H) / (n - 1)^2 with H = I - 11ᵀ / n.
* Song et al. 2012 unbiased HSIC, with K~, L~ the Grams with zeroed diagonals:
  [tr(K~ L~) + 1ᵀK~1 1ᵀL~1 / ((n-1)(n-2)) - 2/(n-2) 1ᵀK~L~1] / (n (n - 3)).
* RBF kernel exp(-||xi - xj||^2 / (2 threshold^2 median(||xi - xj||^2))), the median
  over all n^2 entries (diagonal included), as Kornblith's demo.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial.distance import pdist, squareform


def gram_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x @ x.T


def rbf_bandwidth(x: np.ndarray, threshold: float) -> float:
    """2 threshold^2 times the median squared distance (the RBF denominator)."""
    d2 = squareform(pdist(np.asarray(x, dtype=np.float64), "sqeuclidean"))
    return 2.0 * threshold**2 * np.median(d2)


def gram_rbf(x: np.ndarray, threshold: float = 1.0, bandwidth: float | None = None) -> np.ndarray:
    d2 = squareform(pdist(np.asarray(x, dtype=np.float64), "sqeuclidean"))
    if bandwidth is None:
        bandwidth = rbf_bandwidth(x, threshold)
    return np.exp(-d2 / bandwidth)


def gram(x: np.ndarray, kernel: str, threshold: float = 1.0) -> np.ndarray:
    return gram_linear(x) if kernel == "linear" else gram_rbf(x, threshold)


def hsic_biased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (paper notation)
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741 (paper notation)
    n = k.shape[0]
    kt = k.copy()
    lt = l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(kt @ lt)
    term2 = (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ kt @ lt @ one)
    return float(term1 + term2 - term3) / (n * (n - 3))


def cka_from_grams(k: np.ndarray, l: np.ndarray, debiased: bool) -> float:  # noqa: E741
    hsic = hsic_unbiased if debiased else hsic_biased
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def cka(x, y, kernel: str = "linear", debiased: bool = True, threshold: float = 1.0):
    """CKA of [n, d] inputs (float) or of layer-wise pairs of [L, n, d] inputs (array)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 2:
        return cka_from_grams(gram(x, kernel, threshold), gram(y, kernel, threshold), debiased)
    return np.array([cka(a, b, kernel, debiased, threshold) for a, b in zip(x, y, strict=True)])


def cka_matrix(x, y, kernel: str = "linear", debiased: bool = True, threshold: float = 1.0):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.empty((x.shape[0], y.shape[0]))
    for a in range(x.shape[0]):
        for b in range(y.shape[0]):
            out[a, b] = cka(x[a], y[b], kernel, debiased, threshold)
    return out


def hsic_u_brute(k: np.ndarray, l: np.ndarray, origin: np.ndarray | None = None) -> float:  # noqa: E741
    """Unbiased HSIC as the literal 4th-order U-statistic over ordered quadruples of rows.

    The kernel is g(i, j, q, r) = k_ij l_ij + k_ij l_qr - 2 k_ij l_iq, averaged over all
    ordered quadruples of positions whose ``origin`` labels are pairwise distinct. By
    default every row is its own origin, giving Song et al.'s estimator; with ``origin``
    a bootstrap index set, a duplicated row never meets itself in a quadruple.
    """
    n = k.shape[0]
    origin = np.arange(n) if origin is None else np.asarray(origin)
    total = 0.0
    count = 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        if len({origin[i], origin[j], origin[q], origin[r]}) < 4:
            continue
        total += k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2.0 * k[i, j] * l[i, q]
        count += 1
    return total / count


def hsic_v_brute(k: np.ndarray, l: np.ndarray, origin: np.ndarray) -> float:  # noqa: E741
    """Biased HSIC as the literal V-statistic over 4-tuples of positions, without ties.

    Averages g(a, b, c, e) over all n^4 position tuples (repeats allowed) except those
    that use two different positions with the same ``origin``. Without duplicates this is
    tr(K H L H) / n^2.
    """
    n = k.shape[0]
    total = 0.0
    count = 0
    for t in itertools.product(range(n), repeat=4):
        if len({origin[p] for p in t}) != len(set(t)):
            continue
        i, j, q, r = t
        total += k[i, j] * l[i, j] + k[i, j] * l[q, r] - 2.0 * k[i, j] * l[i, q]
        count += 1
    return total / count


def cka_v_brute(k: np.ndarray, l: np.ndarray, origin: np.ndarray) -> float:  # noqa: E741
    h = hsic_v_brute
    return h(k, l, origin) / np.sqrt(h(k, k, origin) * h(l, l, origin))


def cka_u_brute(k: np.ndarray, l: np.ndarray, origin: np.ndarray | None = None) -> float:  # noqa: E741
    h = hsic_u_brute
    return h(k, l, origin) / np.sqrt(h(k, k, origin) * h(l, l, origin))


def pca_dims(x: np.ndarray, variance: float) -> int:
    """Smallest k whose top-k principal components explain ``variance`` of the total."""
    x = np.asarray(x, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    ratio = np.cumsum(s**2) / np.sum(s**2)
    return int(np.argmax(ratio >= variance - 1e-12) + 1)
