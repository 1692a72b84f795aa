"""Shared, transition and refinement layers from the SFT-minus-base CKA curves.

The paper drew its layer map by eye. Here it is a change-point fit with a test and a
confidence, on the per-task difference curves ``D_t(l) = CKA_sft(t, l) - CKA_base(t, l)``
(each against task t's control), layers 1..L, seen tasks only, and their mean ``m(l)``.
Layers are numbered as in every table, 0..L; the map leaves layer 0 (embeddings) empty.

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

:func:`find_layer_groups` returns a :class:`LayerFit`; a run's ``layer_groups.json`` is a
:class:`LayerMap` (the fit on debiased CKA and the same fit on biased CKA), written with
:meth:`LayerMap.to_json` and read back, checked, with :meth:`LayerMap.from_json`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

GROUPS = ("shared", "transition", "refinement")
MIN_TASKS = 3
MIN_LAYERS = 4  # two knots need segments of at least two points each: 1..s, s..t, t..L
MIN_RISE = 0.02  # CKA units: a consistent but smaller rise is real yet too small to map layers by
NO_FIT = -1  # label of a layer in a refit without a valid fit


@dataclass(frozen=True)
class Span:
    """The layers ``first..last`` (inclusive) of one group."""

    first: int
    last: int

    @property
    def layers(self) -> range:
        return range(self.first, self.last + 1)


@dataclass(frozen=True)
class LayerGroups:
    """Which layers belong to which group; a group the fit lacks is None (a hinge has two)."""

    shared: Span | None
    transition: Span
    refinement: Span | None

    def items(self) -> list[tuple[str, Span | None]]:
        """(name, span) of the three groups in depth order."""
        return [(name, getattr(self, name)) for name in GROUPS]

    def layers(self, *names: str) -> list[int]:
        """The layers of the named groups, ascending."""
        return sorted(
            layer for name, span in self.items() if name in names and span for layer in span.layers
        )

    def starts(self) -> dict[str, int]:
        """First layer of the transition and of the refinement group, when another precedes it.

        These are the map's boundaries (``transition_start``, ``refinement_start``).
        """
        return {
            f"{name}_start": span.first
            for name, span in self.items()
            if name != "shared" and span and span.first > 1
        }

    def to_json(self) -> dict:
        return {name: [span.first, span.last] if span else None for name, span in self.items()}

    @classmethod
    def from_json(cls, data, n_layers: int) -> LayerGroups:
        """Groups from :meth:`to_json`; ValueError naming a missing or bad group."""
        return _groups_from(_Fields(data, "groups"), n_layers)


@dataclass(frozen=True)
class LayerShares:
    """Share of the task-bootstrap refits giving one layer each label (``none``: no valid fit)."""

    shared: float
    transition: float
    refinement: float
    none: float


@dataclass(frozen=True)
class Structure:
    """The groups a fit found, the fitted curve's shape, and how stable they are."""

    model: str  # "two_knots" (three groups) or "hinge" (two)
    groups: LayerGroups
    confidence: dict[str, float]  # per boundary: share of refits placing it within ±1 layer
    layer_probabilities: dict[int, LayerShares]  # per layer 1..L
    fitted: dict[int, float]  # the fitted broken line per layer 1..L
    slopes: dict[str, float]  # per group present, CKA per layer
    rise: float  # of the fitted curve over the transition layers
    p_value_knots: float  # two knots against the best hinge

    @property
    def boundaries(self) -> dict[str, int]:
        return self.groups.starts()

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "groups": self.groups.to_json(),
            "boundaries": self.boundaries,
            "confidence": dict(self.confidence),
            "layer_probabilities": [
                {"layer": layer, **vars(shares)}
                for layer, shares in self.layer_probabilities.items()
            ],
            "fitted": list(self.fitted.values()),
            "slopes": dict(self.slopes),
            "rise": self.rise,
            "p_value_knots": self.p_value_knots,
        }


@dataclass(frozen=True)
class LayerFit:
    """One fit of the layer map to per-task SFT-minus-base curves (:func:`find_layer_groups`).

    ``p_value`` and ``mean_difference_ci`` are None when there are too few tasks or layers
    to fit; ``structure`` is None when no layer map was found, and ``reason`` says why.
    """

    n_tasks: int
    n_layers: int
    n_bootstrap: int
    alpha: float
    seed: int
    mean_difference: dict[int, float]  # mean curve per layer 1..L (empty without tasks)
    mean_difference_ci: dict[int, tuple[float, float]] | None  # 95% task-bootstrap interval
    p_value: float | None  # a hinge or two knots against a straight line
    structure: Structure | None
    reason: str | None

    def to_json(self) -> dict:
        """The fit's fields of layer_groups.json, in the file's (fixed) key order."""
        head = {
            "n_tasks": self.n_tasks,
            "n_layers": self.n_layers,
            "n_bootstrap": self.n_bootstrap,
            "alpha": self.alpha,
            "seed": self.seed,
        }
        curve = list(self.mean_difference.values())
        if self.mean_difference_ci is None:
            return {
                **head,
                "structure": False,
                "p_value": None,
                "mean_difference": curve,
                "reason": self.reason,
            }
        out = {
            **head,
            "mean_difference": curve,
            "mean_difference_ci": [list(ci) for ci in self.mean_difference_ci.values()],
            "p_value": self.p_value,
            "structure": self.structure is not None,
        }
        if self.structure is None:
            return {**out, "reason": self.reason}
        return {**out, **self.structure.to_json()}


@dataclass(frozen=True)
class LayerMap:
    """A run's layer map (``RUN/tables/layer_groups.json``).

    ``fit`` is the map on debiased CKA, the one the report reads; ``biased`` is the same
    fit on biased CKA, for comparison with the paper. ``tasks`` are the seen tasks used,
    ``excluded_tasks`` seen tasks left out for an undefined CKA at some layer.
    """

    measure: str
    tasks: tuple[str, ...]
    excluded_tasks: tuple[str, ...]
    fit: LayerFit
    biased: LayerFit

    @property
    def groups(self) -> LayerGroups | None:
        """This run's groups, or None when the map found no structure."""
        return self.fit.structure.groups if self.fit.structure else None

    def to_json(self) -> dict:
        """The content of layer_groups.json (the debiased fit's fields at the top level)."""
        return {
            "measure": self.measure,
            "tasks": list(self.tasks),
            "excluded_tasks": list(self.excluded_tasks),
            **self.fit.to_json(),
            "biased": self.biased.to_json(),
        }

    @classmethod
    def from_json(cls, data) -> LayerMap:
        """The map in a layer_groups.json object; ValueError naming a missing or bad field."""
        fields = _Fields(data, "")
        names = (_is_list(_is_str), "a list of task names")
        return cls(
            measure=fields("measure", _is_str, "a string"),
            tasks=tuple(fields("tasks", *names)),
            excluded_tasks=tuple(fields("excluded_tasks", *names)),
            fit=_fit_from(fields),
            biased=_fit_from(fields.obj("biased")),
        )


# -- reading layer_groups.json: every field checked, errors naming it ------------------------


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str(v) -> bool:
    return isinstance(v, str)


def _is_bool(v) -> bool:
    return isinstance(v, bool)


def _is_list(item: Callable, length: int | None = None) -> Callable:
    def check(v) -> bool:
        ok = isinstance(v, list) and all(item(x) for x in v)
        return ok and (length is None or len(v) == length)

    return check


def _is_span(n_layers: int) -> Callable:
    def check(v) -> bool:
        return _is_list(_is_int, 2)(v) and 1 <= v[0] <= v[1] <= n_layers

    return check


class _Fields:
    """The fields of one JSON object, each read with a check; errors name the field's path."""

    def __init__(self, data, path: str):
        if not isinstance(data, dict):
            raise ValueError(f"layer map {self._where(path)} must be an object")
        self.data, self.path = data, path

    @staticmethod
    def _where(path: str) -> str:
        return f"field {path!r}" if path else "file"

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def __call__(self, key: str, check: Callable, what: str):
        if key not in self.data:
            raise ValueError(f"layer map field {self.name(key)!r} is missing")
        value = self.data[key]
        if not check(value):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ValueError(f"layer map field {self.name(key)!r} must be {what}, got {shown}")
        return value

    def obj(self, key: str) -> _Fields:
        return _Fields(self(key, lambda v: isinstance(v, dict), "an object"), self.name(key))


def _groups_from(fields: _Fields, n_layers: int) -> LayerGroups:
    span = (lambda v: v is None or _is_span(n_layers)(v), f"null or [first, last] in 1..{n_layers}")
    spans = {name: fields(name, *span) for name in GROUPS}
    if spans["transition"] is None:
        raise ValueError(f"layer map field {fields.name('transition')!r} must not be null")
    return LayerGroups(**{k: Span(*v) if v else None for k, v in spans.items()})


def _per_layer(values: list) -> dict:
    """File lists hold layers 1..L in order (the map leaves layer 0 empty)."""
    return dict(enumerate(values, start=1))


def _fit_from(fields: _Fields) -> LayerFit:
    n_layers = fields("n_layers", _is_int, "an integer")
    n_tasks = fields("n_tasks", _is_int, "an integer")
    curve = _is_list(_is_num, n_layers if n_tasks else 0)
    common = {
        "n_tasks": n_tasks,
        "n_layers": n_layers,
        "n_bootstrap": fields("n_bootstrap", _is_int, "an integer"),
        "alpha": fields("alpha", _is_num, "a number"),
        "seed": fields("seed", _is_int, "an integer"),
        "mean_difference": _per_layer(
            fields("mean_difference", curve, f"a list of {n_layers} numbers")
        ),
    }
    p_value = fields("p_value", lambda v: v is None or _is_num(v), "null or a number")
    structure = fields("structure", _is_bool, "true or false")
    if p_value is None or not structure:
        reason = fields("reason", _is_str, "a string")
        if p_value is None:
            if structure:
                raise ValueError(f"layer map field {fields.name('structure')!r} must be false")
            return LayerFit(
                **common, mean_difference_ci=None, p_value=None, structure=None, reason=reason
            )
    ci = fields(
        "mean_difference_ci",
        _is_list(_is_list(_is_num, 2), n_layers),
        f"a list of {n_layers} [low, high] pairs",
    )
    ci = _per_layer([tuple(pair) for pair in ci])
    if not structure:
        return LayerFit(
            **common, mean_difference_ci=ci, p_value=p_value, structure=None, reason=reason
        )
    return LayerFit(
        **common,
        mean_difference_ci=ci,
        p_value=p_value,
        structure=_structure_from(fields, n_layers),
        reason=None,
    )


def _structure_from(fields: _Fields, n_layers: int) -> Structure:
    model = fields("model", lambda v: v in ("two_knots", "hinge"), "two_knots or hinge")
    groups = _groups_from(fields.obj("groups"), n_layers)
    boundaries = fields("boundaries", lambda v: v == groups.starts(), f"{groups.starts()}")
    shares = fields(
        "confidence",
        lambda v: (
            isinstance(v, dict)
            and set(v) == set(boundaries)
            and all(_is_num(x) for x in v.values())
        ),
        f"a number per {list(boundaries)}",
    )
    present = [name for name, span in groups.items() if span]
    slopes = fields(
        "slopes",
        lambda v: (
            isinstance(v, dict) and list(v) == present and all(_is_num(x) for x in v.values())
        ),
        f"a number per {present}",
    )
    keys = ["layer", *GROUPS, "none"]
    rows = fields(
        "layer_probabilities",
        lambda v: (
            isinstance(v, list)
            and [r.get("layer") if isinstance(r, dict) else None for r in v]
            == list(range(1, n_layers + 1))
            and all(list(r) == keys and all(_is_num(x) for x in r.values()) for r in v)
        ),
        f"one {{{', '.join(keys)}}} object per layer 1..{n_layers}",
    )
    return Structure(
        model=model,
        groups=groups,
        confidence=dict(shares),
        layer_probabilities={r["layer"]: LayerShares(**{k: r[k] for k in keys[1:]}) for r in rows},
        fitted=_per_layer(
            fields("fitted", _is_list(_is_num, n_layers), f"a list of {n_layers} numbers")
        ),
        slopes=dict(slopes),
        rise=fields("rise", _is_num, "a number"),
        p_value_knots=fields("p_value_knots", _is_num, "a number"),
    )


# -- the fit ----------------------------------------------------------------------------------


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


def _groups(family: Family, knots: np.ndarray, slopes: np.ndarray, n_layers: int) -> LayerGroups:
    """The groups of one candidate fit (knots and slopes of its segments)."""
    if family.kind == "two_knots":
        s, t = (int(v) for v in knots)
        return LayerGroups(Span(1, s), Span(s + 1, t), Span(t + 1, n_layers))
    k = int(knots[0])
    if slopes[1] > slopes[0]:
        return LayerGroups(Span(1, k), Span(k + 1, n_layers), None)
    return LayerGroups(None, Span(1, k), Span(k + 1, n_layers))


def _label_rows(family: Family, idx: np.ndarray, curves: np.ndarray, n_layers: int) -> np.ndarray:
    """Group index per refit and layer 0..L, [B, L+1] (0, 1, 2 as in GROUPS; NO_FIT otherwise)."""
    labels = np.full((len(idx), n_layers + 1), NO_FIT)
    for b, k in enumerate(idx):
        if k < 0:
            continue
        _, slopes = _fit(curves[b], family, k)
        for g, (_, span) in enumerate(_groups(family, family.knots[k], slopes, n_layers).items()):
            if span:
                labels[b, span.first : span.last + 1] = g
    return labels


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
) -> LayerFit:
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
    LayerFit
        Per-layer values keyed by layer number 1..L. ``p_value`` and ``mean_difference_ci``
        are None with fewer than 3 tasks or 4 layers; ``structure`` (groups, boundaries
        and their confidence, per-layer label shares, fitted curve, slopes, rise, the
        two-knots test) is None without a layer map, and ``reason`` says why.
    """
    diff = _validate(diff)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n_tasks, n_layers = diff.shape
    layers = range(1, n_layers + 1)  # the layer of each column of diff

    def per_layer(values) -> dict:
        return dict(zip(layers, values, strict=True))

    def result(**fields) -> LayerFit:
        return LayerFit(
            n_tasks=int(n_tasks),
            n_layers=int(n_layers),
            n_bootstrap=int(n_boot),
            alpha=float(alpha),
            seed=int(seed),
            **{"mean_difference_ci": None, "structure": None, "reason": None, **fields},
        )

    if n_tasks < MIN_TASKS or n_layers < MIN_LAYERS:
        return result(
            mean_difference=per_layer(diff.mean(axis=0).tolist()) if n_tasks else {},
            p_value=None,
            reason=f"needs at least {MIN_TASKS} seen tasks and {MIN_LAYERS} layers, "
            f"got {n_tasks} tasks and {n_layers} layers",
        )
    rng = np.random.default_rng(seed)
    mean = diff.mean(axis=0)
    boot_idx = rng.integers(0, n_tasks, size=(n_boot, n_tasks))
    boot_means = diff[boot_idx].mean(axis=1)
    ci = np.percentile(boot_means, [2.5, 97.5], axis=0).T.tolist()
    tested = {
        "mean_difference": per_layer(mean.tolist()),
        "mean_difference_ci": per_layer(tuple(pair) for pair in ci),
    }

    line, hinge, knots2 = (_family(k, n_layers) for k in ("line", "hinge", "two_knots"))
    residuals = diff - mean
    observed = float(_improvement(mean[None], [hinge, knots2], line)[0])
    line_fit = _fit(mean, line, 0)[0]
    null = _improvement(line_fit + _wild_noise(residuals, n_boot, rng), [hinge, knots2], line)
    p_structure = _p_value(observed, null)
    if p_structure >= alpha:
        slope = float(_fit(mean, line, 0)[1][0])
        return result(
            **tested,
            p_value=p_structure,
            reason=(
                f"no bend in the SFT-minus-base CKA curve beyond task noise (p = "
                f"{p_structure:.3f} against a straight line, slope {slope:+.2g} per layer)"
            ),
        )

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
    fitted = per_layer(fitted.tolist())
    groups = _groups(family, family.knots[idx], slopes, n_layers)
    span = groups.transition
    rise = float(fitted[span.last] - fitted[max(span.first - 1, 1)])
    if rise < min_rise:
        return result(
            **tested,
            p_value=p_structure,
            reason=(
                f"the SFT-minus-base CKA curve rises by only {rise:.4f} over its steepest "
                f"stretch (below {min_rise} CKA), though consistently across tasks "
                f"(p = {p_structure:.3f})"
            ),
        )

    boot_best, _ = _best(boot_means, family)
    labels = _label_rows(family, boot_best, boot_means, n_layers)
    boundaries = groups.starts()
    refit_starts = {name: np.full(n_boot, -99) for name in boundaries}
    for b in range(n_boot):
        if boot_best[b] < 0:
            continue
        _, bslopes = _fit(boot_means[b], family, boot_best[b])
        starts = _groups(family, family.knots[boot_best[b]], bslopes, n_layers).starts()
        for name in boundaries:
            refit_starts[name][b] = starts.get(name, -99)
    structure = Structure(
        model=family.kind,
        groups=groups,
        confidence={
            name: float(np.mean(np.abs(refit_starts[name] - pos) <= 1))
            for name, pos in boundaries.items()
        },
        layer_probabilities={
            layer: LayerShares(
                *(float(np.mean(labels[:, layer] == g)) for g in range(len(GROUPS))),
                none=float(np.mean(labels[:, layer] == NO_FIT)),
            )
            for layer in layers
        },
        fitted=fitted,
        slopes={
            name: float(slopes[i])
            for i, name in enumerate(name for name, span in groups.items() if span)
        },
        rise=rise,
        p_value_knots=p_knots,
    )
    return result(**tested, p_value=p_structure, structure=structure)
