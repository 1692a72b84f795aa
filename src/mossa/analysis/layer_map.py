"""Shared, transition and refinement layers from the SFT-minus-base CKA curves.

The paper drew its layer map by eye. Here it is a change-point fit with a test and a
confidence, on the per-task difference curves ``D_t(l) = CKA_sft(t, l) - CKA_base(t, l)``
(each against task t's control), layers 1..L, seen tasks only, and their mean ``m(l)``.

``m`` is fitted by continuous piecewise-linear curves ("broken sticks"):

* **line** (no change point): no groups.
* **hinge** (one knot ``k``): two segments; the steeper rising one is the transition, the
  other shared (before it) or refinement (after it).
* **two knots** ``s < t``: shared 1..s, transition s+1..t, refinement t+1..L, where the
  middle segment must be the steepest and rising (the paper: SFT catches up with the
  controls in the transition layers, and the trend "continues, albeit to a lesser extent").

A layer's group is that of the segment its increment ``m(l) - m(l-1)`` lies on. Every knot
position is tried (L is small); each fit is closed-form least squares. The number of knots
is chosen by two wild-bootstrap tests over tasks (Rademacher sign flips of the task
residual curves, which keeps the correlation between layers): does a hinge or two-knot fit
beat a line by more than task noise allows; if so, do two knots beat one. The confidence
comes from a bootstrap over tasks (resample tasks with replacement, refit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GROUPS = ("shared", "transition", "refinement")
MIN_TASKS = 3
MIN_LAYERS = 4  # two knots need segments of at least two points each: 1..s, s..t, t..L
MIN_RISE = 0.02  # CKA units: a consistent but smaller rise is real yet too small to map layers by


@dataclass(frozen=True)
class Family:
    """Candidate fits of one kind, all knot positions.

    ``basis[k]`` is an orthonormal basis [L, p] of candidate k's design (so its explained
    sum of squares is ``||basis.T y||^2``); ``pinv[k]`` [p, L] gives its coefficients
    (intercept, slope, slope changes at the knots); ``knots[k]`` its knots (padded with 0).
    """

    kind: str
    basis: np.ndarray
    pinv: np.ndarray
    knots: np.ndarray


def _family(kind: str, n_layers: int) -> Family:
    layers = np.arange(1, n_layers + 1, dtype=np.float64)
    if kind == "line":
        knot_sets = [()]
    elif kind == "hinge":
        knot_sets = [(k,) for k in range(2, n_layers)]
    elif kind == "two_knots":
        knot_sets = [(s, t) for s in range(2, n_layers - 1) for t in range(s + 1, n_layers)]
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    designs = np.array(
        [
            np.column_stack(
                [np.ones(n_layers), layers, *(np.maximum(layers - k, 0.0) for k in knots)]
            )
            for knots in knot_sets
        ]
    )
    basis = np.linalg.qr(designs)[0]
    pinv = np.linalg.pinv(designs)
    knots = np.array([(*ks, 0, 0)[:2] for ks in knot_sets], dtype=int)
    return Family(kind, basis, pinv, knots)


def _slopes(coef: np.ndarray) -> np.ndarray:
    """Per-segment slopes from coefficients [..., p]: cumulative sums of slope terms."""
    return np.cumsum(coef[..., 1:], axis=-1)


def _valid(family: Family, slopes: np.ndarray) -> np.ndarray:
    """Which candidate fits read as layer groups (a steepest rising segment exists)."""
    if family.kind == "line":
        return np.ones(slopes.shape[:-1], dtype=bool)
    if family.kind == "hinge":
        return (slopes.max(axis=-1) > 0) & (slopes[..., 0] != slopes[..., 1])
    mid = slopes[..., 1]
    return (mid > 0) & (mid > slopes[..., 0]) & (mid > slopes[..., 2])


def _best(curves: np.ndarray, family: Family) -> tuple[np.ndarray, np.ndarray]:
    """Best valid candidate per curve and its explained sum of squares, ([B], [B]).

    The explained sum of squares counts everything including the mean; only differences
    between families are used. A curve with no valid candidate gets index -1, gain -inf.
    """
    proj = np.einsum("klp,bl->bkp", family.basis, curves)
    gain = np.sum(proj**2, axis=-1)
    slopes = _slopes(np.einsum("kpl,bl->bkp", family.pinv, curves))
    gain = np.where(_valid(family, slopes), gain, -np.inf)
    idx = gain.argmax(axis=1)
    best = gain[np.arange(len(idx)), idx]
    return np.where(np.isfinite(best), idx, -1), best


def _fit(curve: np.ndarray, family: Family, idx: int) -> tuple[np.ndarray, np.ndarray]:
    """Fitted values [L] and segment slopes of candidate ``idx`` on one curve."""
    coef = family.pinv[idx] @ curve
    return family.basis[idx] @ (family.basis[idx].T @ curve), _slopes(coef)


def _wild_noise(residuals: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Noise curves of the task mean: Rademacher-weighted task residuals, [n_draws, L].

    ``residuals`` are the task curves minus their mean, [T, L]. The weighted mean has the
    covariance of the task mean's sampling error (scaled by ``T / (T - 1)`` for the
    degree of freedom the mean used).
    """
    n_tasks = residuals.shape[0]
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_draws, n_tasks))
    return signs @ residuals / n_tasks * np.sqrt(n_tasks / (n_tasks - 1))


def _improvement(curves: np.ndarray, richer: list[Family], simpler: Family) -> np.ndarray:
    """Sum of squares the best valid ``richer`` fit explains beyond the best ``simpler`` one."""
    best_rich = np.max([_best(curves, f)[1] for f in richer], axis=0)
    return np.maximum(best_rich - _best(curves, simpler)[1], 0.0)


def _p_value(observed: float, null: np.ndarray) -> float:
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def _groups(family: Family, knots: np.ndarray, slopes: np.ndarray, n_layers: int) -> dict:
    """Inclusive [first, last] layer ranges per group (None for a group the model lacks)."""
    if family.kind == "two_knots":
        s, t = (int(v) for v in knots)
        return {"shared": [1, s], "transition": [s + 1, t], "refinement": [t + 1, n_layers]}
    k = int(knots[0])
    if slopes[1] > slopes[0]:
        return {"shared": [1, k], "transition": [k + 1, n_layers], "refinement": None}
    return {"shared": None, "transition": [1, k], "refinement": [k + 1, n_layers]}


def _label_rows(family: Family, idx: np.ndarray, curves: np.ndarray, n_layers: int) -> np.ndarray:
    """Group index per refit and layer, [B, L] (0 shared, 1 transition, 2 refinement, -1 none)."""
    labels = np.full((len(idx), n_layers), -1)
    for b, k in enumerate(idx):
        if k < 0:
            continue
        _, slopes = _fit(curves[b], family, k)
        for g, span in enumerate(_groups(family, family.knots[k], slopes, n_layers).values()):
            if span:
                labels[b, span[0] - 1 : span[1]] = g
    return labels


def _starts(groups: dict) -> dict[str, int]:
    """First layer of the transition and of the refinement group (when they follow another)."""
    out = {}
    for name in ("transition", "refinement"):
        span = groups[name]
        if span and span[0] > 1:
            out[f"{name}_start"] = span[0]
    return out


def _validate(diff) -> np.ndarray:
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 2:
        raise ValueError(f"diff must be 2-D [tasks, layers], got shape {diff.shape}")
    if not np.isfinite(diff).all():
        bad = np.argwhere(~np.isfinite(diff))[0]
        raise ValueError(
            f"diff has {int((~np.isfinite(diff)).sum())} non-finite values "
            f"(first at task row {bad[0]}, layer {bad[1] + 1})"
        )
    return diff


def find_layer_groups(
    diff,
    *,
    n_boot: int = 200,
    alpha: float = 0.05,
    min_rise: float = MIN_RISE,
    seed: int = 0,
) -> dict:
    """Fit the layer map to per-task SFT-minus-base CKA curves.

    Parameters
    ----------
    diff : array [T, L]
        ``CKA_sft - CKA_base`` (each against the task's control) for T tasks at layers
        1..L (column j is layer j + 1; the embedding layer 0 is not part of the map).
    n_boot : int
        Wild-bootstrap draws for each test and task-bootstrap draws for the confidence.
    alpha : float
        Level of both tests.
    min_rise : float
        Smallest rise of the fitted curve over the transition layers reported as structure
        (practical significance: with many tasks a rise of 0.001 CKA can be statistically
        clear).
    seed : int
        Seed of every random draw (same seed, same result).

    Returns
    -------
    dict
        JSON-ready. Always: ``structure`` (bool), ``n_tasks``, ``n_layers``,
        ``mean_difference`` [L], ``p_value`` (hinge or two knots against a line; None
        when there are too few tasks or layers to test), ``n_bootstrap``, ``alpha``,
        ``seed``; with at least 3 tasks and 4 layers also ``mean_difference_ci`` [L][2]
        (95% task-bootstrap interval of the mean curve). With structure: ``model``
        ("two_knots" or "hinge"), ``groups`` (inclusive [first, last] per group; None for
        a group a hinge lacks), ``boundaries`` (first layer of transition and/or
        refinement), ``confidence`` (share of task-bootstrap refits within ±1 layer of
        each boundary), ``layer_probabilities`` (per layer, the share of refits giving each
        label, and ``none`` for refits without a valid fit), ``fitted`` [L], ``slopes``
        (per group, per layer), ``rise`` (of the fit over the transition layers),
        ``p_value_knots`` (two knots against a hinge). Without structure: ``reason``.
    """
    diff = _validate(diff)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n_tasks, n_layers = diff.shape
    out: dict = {
        "n_tasks": int(n_tasks),
        "n_layers": int(n_layers),
        "n_bootstrap": int(n_boot),
        "alpha": float(alpha),
        "seed": int(seed),
    }
    if n_tasks < MIN_TASKS or n_layers < MIN_LAYERS:
        return {
            **out,
            "structure": False,
            "p_value": None,
            "mean_difference": diff.mean(axis=0).tolist() if n_tasks else [],
            "reason": f"needs at least {MIN_TASKS} seen tasks and {MIN_LAYERS} layers, "
            f"got {n_tasks} tasks and {n_layers} layers",
        }
    rng = np.random.default_rng(seed)
    mean = diff.mean(axis=0)
    out["mean_difference"] = mean.tolist()
    boot_idx = rng.integers(0, n_tasks, size=(n_boot, n_tasks))
    boot_means = diff[boot_idx].mean(axis=1)
    out["mean_difference_ci"] = np.percentile(boot_means, [2.5, 97.5], axis=0).T.tolist()

    line, hinge, knots2 = (_family(k, n_layers) for k in ("line", "hinge", "two_knots"))
    residuals = diff - mean
    observed = float(_improvement(mean[None], [hinge, knots2], line)[0])
    line_fit = _fit(mean, line, 0)[0]
    null = _improvement(line_fit + _wild_noise(residuals, n_boot, rng), [hinge, knots2], line)
    p_structure = _p_value(observed, null)
    out["p_value"] = p_structure
    if p_structure >= alpha:
        slope = float(_fit(mean, line, 0)[1][0])
        return {
            **out,
            "structure": False,
            "reason": (
                f"no bend in the SFT-minus-base CKA curve beyond task noise (p = "
                f"{p_structure:.3f} against a straight line, slope {slope:+.2g} per layer)"
            ),
        }

    hinge_idx = int(_best(mean[None], hinge)[0][0])
    observed = float(_improvement(mean[None], [knots2], hinge)[0])
    if hinge_idx < 0:  # no valid hinge: the bend needs two knots
        p_knots = 1.0 / (1 + n_boot)
    else:
        hinge_fit = _fit(mean, hinge, hinge_idx)[0]
        null = _improvement(hinge_fit + _wild_noise(residuals, n_boot, rng), [knots2], hinge)
        p_knots = _p_value(observed, null)
    family = knots2 if p_knots < alpha else hinge

    idx = int(_best(mean[None], family)[0][0])
    fitted, slopes = _fit(mean, family, idx)
    groups = _groups(family, family.knots[idx], slopes, n_layers)
    lo, hi = groups["transition"]
    rise = float(fitted[hi - 1] - (fitted[lo - 2] if lo > 1 else fitted[0]))
    if rise < min_rise:
        return {
            **out,
            "structure": False,
            "reason": (
                f"the SFT-minus-base CKA curve rises by only {rise:.4f} over its steepest "
                f"stretch (below {min_rise} CKA), though consistently across tasks "
                f"(p = {p_structure:.3f})"
            ),
        }

    boot_best, _ = _best(boot_means, family)
    labels = _label_rows(family, boot_best, boot_means, n_layers)
    boundaries = _starts(groups)
    refit_starts = {name: np.full(n_boot, -99) for name in boundaries}
    for b in range(n_boot):
        if boot_best[b] < 0:
            continue
        _, bslopes = _fit(boot_means[b], family, boot_best[b])
        starts = _starts(_groups(family, family.knots[boot_best[b]], bslopes, n_layers))
        for name in boundaries:
            refit_starts[name][b] = starts.get(name, -99)
    confidence = {
        name: float(np.mean(np.abs(refit_starts[name] - pos) <= 1))
        for name, pos in boundaries.items()
    }
    return {
        **out,
        "structure": True,
        "model": family.kind,
        "groups": groups,
        "boundaries": boundaries,
        "confidence": confidence,
        "layer_probabilities": [
            {
                "layer": layer,
                **{
                    name: float(np.mean(labels[:, layer - 1] == g)) for g, name in enumerate(GROUPS)
                },
                "none": float(np.mean(labels[:, layer - 1] == -1)),
            }
            for layer in range(1, n_layers + 1)
        ],
        "fitted": fitted.tolist(),
        "slopes": {
            name: float(slopes[i])
            for i, name in enumerate(n for n in GROUPS if groups[n] is not None)
        },
        "rise": rise,
        "p_value_knots": p_knots,
    }
