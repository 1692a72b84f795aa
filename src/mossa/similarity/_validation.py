"""Input checks shared by every public similarity function (one helper, scikit-learn style).

Each check raises ``ValueError`` naming the argument (``x``, ``y``, ``kernel``, ...) and the
shape or value that arrived, so a user can fix the call without reading the source.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

KERNELS = ("linear", "rbf")


class DegenerateInputWarning(RuntimeWarning):
    """A layer has no spread across rows, so CKA is undefined there and reported as nan."""


def as_tensor(a: object, name: str) -> torch.Tensor:
    """Return ``a`` (numpy array, torch tensor or nested sequence) as a real-valued tensor.

    Floating dtypes are kept (no copy for numpy arrays or tensors); integer and boolean
    inputs become float64, as in scikit-learn. Gradients are detached.
    """
    if isinstance(a, torch.Tensor):
        t = a.detach()
        if t.is_complex():
            raise ValueError(f"{name} must hold real numbers; got dtype {t.dtype}")
        return t if t.is_floating_point() else t.to(torch.float64)
    try:
        arr = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers; got {type(a).__name__}") from exc
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise ValueError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    if arr.dtype not in (np.float16, np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not arr.dtype.isnative or any(s < 0 for s in arr.strides):
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    with warnings.catch_warnings():
        # Read-only arrays (memory maps) are fine: nothing here writes into the input.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(arr)


def check_array(a: object, name: str, *, min_rows: int = 2) -> torch.Tensor:
    """Validate one activation array and return it as a 3-D tensor ``[L, n, d]``.

    A 2-D ``[n, d]`` input becomes ``[1, n, d]``. Rejects other ranks, empty arrays,
    too few rows and NaN/Inf (reporting how many rows contain them).
    """
    t = as_tensor(a, name)
    shape = tuple(t.shape)
    if t.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be a 2-D [n, d] or 3-D [L, n, d] array; got {t.ndim}-D shape {shape}"
        )
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: shape {shape}")
    t3 = t if t.ndim == 3 else t.unsqueeze(0)
    low, high = torch.aminmax(t3)  # one pass; NaN propagates, so finite bounds mean all finite
    if not (torch.isfinite(low) and torch.isfinite(high)):
        bad_rows = ~torch.isfinite(t3).all(dim=-1)
        n_bad = int(bad_rows.sum())
        layer, row = (int(i) for i in bad_rows.nonzero()[0])
        where = f"layer {layer}, row {row}" if t.ndim == 3 else f"row {row}"
        raise ValueError(
            f"{name} contains NaN or Inf in {n_bad} of {bad_rows.numel()} rows "
            f"(shape {shape}; first at {where}); drop those rows from both inputs together"
        )
    n = t3.shape[1]
    if n < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows (samples); got shape {shape}")
    return t3


def check_options(kernel: object, threshold: object, debiased: object) -> None:
    """Validate the estimator options shared by all CKA functions."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise ValueError(f"threshold must be a positive finite number; got {threshold!r}")
    if not isinstance(debiased, bool | np.bool_):
        raise ValueError(f"debiased must be True or False; got {debiased!r}")


def check_pair(
    x: object,
    y: object,
    *,
    kernel: object,
    threshold: object,
    debiased: object,
    paired_layers: bool,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate two inputs to a CKA function and its options; return ``(x3, y3, was_2d)``.

    ``paired_layers`` requires equal ranks and layer counts (layer-wise pairs, as in
    ``cka``); otherwise any layer counts are allowed (all pairs, as in ``cka_matrix``).
    """
    check_options(kernel, threshold, debiased)
    return check_inputs(
        x,
        y,
        min_rows=4 if debiased else 2,
        needs=("debiased=True", "; use more rows or debiased=False") if debiased else None,
        paired_layers=paired_layers,
        all_pairs="cka_matrix",
    )


def check_inputs(
    x: object,
    y: object,
    *,
    min_rows: int,
    paired_layers: bool,
    needs: tuple[str, str] | None = None,
    all_pairs: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate two inputs compared row by row; return ``(x3, y3, was_2d)``.

    ``needs`` = (what, hint) words a too-small n as "what needs at least min_rows rows...";
    without it the generic per-argument message of :func:`check_array` is used.
    ``all_pairs`` names the function to suggest when layer counts differ.
    """
    xt = as_tensor(x, "x")
    yt = as_tensor(y, "y")
    if xt.ndim in (2, 3) and yt.ndim in (2, 3) and xt.numel() and yt.numel():
        nx, ny = xt.shape[-2], yt.shape[-2]
        if nx != ny:
            raise ValueError(
                f"x and y must have the same number of rows (samples, in the same order): "
                f"x has {nx} (shape {tuple(xt.shape)}), y has {ny} (shape {tuple(yt.shape)})"
            )
        if needs is not None and nx < min_rows:
            what, hint = needs
            raise ValueError(
                f"{what} needs at least {min_rows} rows (samples) in x and y; got {nx} "
                f"(x shape {tuple(xt.shape)}){hint}"
            )
    x3 = check_array(xt, "x", min_rows=min_rows)
    y3 = check_array(yt, "y", min_rows=min_rows)
    if paired_layers:
        hint = f" (use {all_pairs} for all layer pairs)" if all_pairs else ""
        if xt.ndim != yt.ndim:
            raise ValueError(
                f"x and y must both be 2-D [n, d] or both 3-D [L, n, d] for layer-wise pairs; "
                f"got x shape {tuple(xt.shape)} and y shape {tuple(yt.shape)}{hint}"
            )
        if x3.shape[0] != y3.shape[0]:
            hint = f"; use {all_pairs} for all layer pairs" if all_pairs else ""
            raise ValueError(
                f"x and y must have the same number of layers for layer-wise pairs: x has "
                f"{x3.shape[0]} (shape {tuple(xt.shape)}), y has {y3.shape[0]} "
                f"(shape {tuple(yt.shape)}){hint}"
            )
    if x3.device != y3.device:
        raise ValueError(f"x and y must be on the same device; got {x3.device} and {y3.device}")
    return x3, y3, xt.ndim == 2


def check_k(k: object, n: int) -> int:
    """Validate the neighbour count of mutual k-NN: an integer with 1 <= k < n."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k < n:
        raise ValueError(
            f"k must be an integer with 1 <= k < n = {n} (rows; a row is never its own "
            f"neighbour); got {k!r}"
        )
    return int(k)


def reject_rows(t3: torch.Tensor, bad: torch.Tensor, name: str, problem: str, was_2d: bool) -> None:
    """Raise ``ValueError`` if any row of ``t3`` [L, n, d] is flagged in ``bad`` [L, n].

    ``problem`` says what is wrong with the rows and why the measure is undefined there.
    """
    if not bool(bad.any()):
        return
    layer, row = (int(i) for i in bad.nonzero()[0])
    where = f"row {row}" if was_2d else f"layer {layer}, row {row}"
    shape = tuple(t3.shape[1:]) if was_2d else tuple(t3.shape)
    raise ValueError(
        f"{name} has {problem} in {int(bad.sum())} of {bad.numel()} rows (shape {shape}; "
        f"first at {where}); drop those rows from both inputs together"
    )


def check_seed(seed: object) -> np.random.Generator:
    """Turn a seed (non-negative int or numpy Generator) into a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            f"seed must be a non-negative integer or np.random.Generator; got {seed!r}"
        )
    return np.random.default_rng(int(seed))


def check_positive_int(value: object, name: str) -> int:
    """Validate a count argument such as ``n_permutations``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_fraction(value: object, name: str, *, allow_one: bool) -> float:
    """Validate a fraction in (0, 1) or (0, 1] (``level``, ``variance``)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if not ok or not (0 < value <= 1 if allow_one else 0 < value < 1):
        interval = "(0, 1]" if allow_one else "(0, 1)"
        raise ValueError(f"{name} must be a number in {interval}; got {value!r}")
    return float(value)
