"""Shared, transition and refinement layers from per-task CKA curves, tested against the paper.

Input: per seen task t, ``CKA_sft(t, l)`` and ``CKA_base(t, l)`` (each against task t's
control) at layers 1..L; layer 0 (embeddings) is not part of the map. The map has two parts.

**Segmentation** (:func:`find_layer_groups`) of the difference curves ``D_t = CKA_sft -
CKA_base`` and their mean ``m(l)``: continuous piecewise-linear fits ("broken lines"):

* **line** (no change point): no groups.
* **hinge** (one knot ``k``): two segments; the steeper rising one is the transition, the
  other shared (before it) or refinement (after it).
* **two knots** ``s < t``: shared 1..s, transition s+1..t, refinement t+1..L, where the
  middle segment must be the steepest and rising.

Every knot position is tried (L is small); each fit is closed-form least squares. The
number of knots is chosen by two wild-bootstrap tests over tasks (Rademacher sign flips of
the task residual curves, which keeps the correlation between layers): does a bend beat a
line by more than task noise allows; if so, do two knots beat one. The confidence comes from
a bootstrap over tasks in which each refit chooses its model again by the same rule.

**Final norm.** Hugging Face's last hidden state is taken after the model's final norm, so
the last layer is not a block output like the others. :func:`map_layers` fits layers
1..L-1 and attaches layer L to the last group; it fits 1..L as well and reports whether the
groups depend on the last layer (:class:`FinalNorm`).

**Paper map** (:func:`paper_map_of`): each group is tested against what the paper says it is
(shared: SFT at or below base; transition: D rises and SFT ends closer to the controls
than base, on average and for most tasks; refinement: D stays above 0 and does
not fall), and a smooth monotone sigmoid must show a low and a high level inside the layers
(a smooth convex or saturating curve has only one). The verdict is "holds", "partly", "does
not hold" or "not testable".

:func:`layer_map_from_rows` builds the whole :class:`LayerMap` (a run's
``layer_groups.json``) from rows in the cka.csv schema; :meth:`LayerMap.to_json` writes it
and :meth:`LayerMap.from_json` reads it back, checked, with errors naming the field.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace

import numpy as np

GROUPS = ("shared", "transition", "refinement")
MODELS = ("none", "hinge", "two_knots")
VERDICTS = ("holds", "partly", "does not hold", "not testable")
MIN_TASKS = 3
MIN_LAYERS = 4  # two knots need segments of at least two points each: 1..s, s..t, t..L
MIN_RISE = 0.02  # CKA units: a consistent but smaller rise is real yet too small to map layers by
N_BOOT = 999  # default draws: p-values down to 0.001
SIGMOID_REFITS = 200  # task-bootstrap grid refits of the sigmoid (its interval only)
NO_FIT = -1  # label of a layer in a refit without structure


def p_text(p: float, n_boot: int) -> str:
    """A bootstrap p-value in words: ``p <= 1/(B+1)`` at the floor, else ``p = ...``."""
    floor = 1.0 / (n_boot + 1)
    return f"p <= {floor:.2g}" if p <= floor * (1 + 1e-9) else f"p = {p:.3g}"


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
    """Share of the task-bootstrap refits giving one layer each label (``none``: no structure)."""

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
    model_shares: dict[str, float]  # share of refits choosing each of MODELS

    @property
    def boundaries(self) -> dict[str, int]:
        return self.groups.starts()

    def to_json(self, n_boot: int) -> dict:
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
            "p_value_knots_text": p_text(self.p_value_knots, n_boot),
            "model_shares": dict(self.model_shares),
        }


@dataclass(frozen=True)
class LayerFit:
    """One fit of the layer map to per-task SFT-minus-base curves (:func:`find_layer_groups`).

    ``fit_layers`` layers (1..fit_layers) were fitted; later ones (the final-norm layer) join
    the last group. ``p_value`` and ``mean_difference_ci`` are None when there are too few
    tasks or layers to fit; ``structure`` is None when no layer map was found, and ``reason``
    says why.
    """

    n_tasks: int
    n_layers: int
    fit_layers: int
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
            "fit_layers": self.fit_layers,
            "n_bootstrap": self.n_bootstrap,
            "alpha": self.alpha,
            "seed": self.seed,
            "p_value_floor": 1.0 / (self.n_bootstrap + 1),
        }
        curve = list(self.mean_difference.values())
        if self.mean_difference_ci is None:
            return {
                **head,
                "structure": False,
                "groups": None,
                "p_value": None,
                "mean_difference": curve,
                "reason": self.reason,
            }
        out = {
            **head,
            "mean_difference": curve,
            "mean_difference_ci": [list(ci) for ci in self.mean_difference_ci.values()],
            "p_value": self.p_value,
            "p_value_text": p_text(self.p_value, self.n_bootstrap),
            "structure": self.structure is not None,
        }
        if self.structure is None:
            return {**out, "groups": None, "reason": self.reason}
        return {**out, **self.structure.to_json(self.n_bootstrap)}


@dataclass(frozen=True)
class Check:
    """One test of a group against the paper: a statistic, its interval and a one-sided p-value.

    ``p_value`` is the task-bootstrap p-value of ``alternative`` ("greater" or "less": the
    statistic beyond ``null``); depending on the claim, the check passes when that
    alternative is shown (p < alpha) or when it is not (p >= alpha). ``at_floor``: p is
    the smallest a bootstrap of this size can give, 1/(B+1).
    """

    name: str
    claim: str
    value: float | None
    ci: tuple[float, float] | None  # 95% task-bootstrap interval
    null: float
    alternative: str | None
    p_value: float | None
    at_floor: bool
    passed: bool

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "claim": self.claim,
            "value": self.value,
            "ci": list(self.ci) if self.ci else None,
            "null": self.null,
            "alternative": self.alternative,
            "p_value": self.p_value,
            "at_floor": self.at_floor,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class GroupTest:
    """A group's checks; ``layers`` None when the map lacks the group (the test fails)."""

    group: str  # one of GROUPS, or "shape" (the smooth monotone alternative)
    layers: Span | None
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_json(self) -> dict:
        return {
            "group": self.group,
            "layers": [self.layers.first, self.layers.last] if self.layers else None,
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True)
class PaperMap:
    """Whether the map is the paper's: a verdict (one of VERDICTS), why, and each group's test.

    ``smooth``: residual sums of squares of the mean curve under the segmented fit and the
    smooth alternatives (``line``, ``sigmoid``, ``isotonic``), and the sigmoid's parameters;
    None when no structure was tested.
    """

    verdict: str
    reason: str
    n_bootstrap: int
    tests: tuple[GroupTest, ...]
    smooth: dict | None

    def test(self, group: str) -> GroupTest | None:
        """The test of ``group`` (or "shape"), None when not run."""
        return next((t for t in self.tests if t.group == group), None)

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "n_bootstrap": self.n_bootstrap,
            "tests": [t.to_json() for t in self.tests],
            "smooth": self.smooth,
        }


@dataclass(frozen=True)
class FinalNorm:
    """The last layer (after the final norm in Hugging Face models) and its effect on the map.

    ``set_aside``: the map was fitted without it (it joins the last group). ``groups_with_it``
    are the groups of the same fit on every layer (None without structure there);
    ``depends``: that fit differs (structure, model, or a boundary by more than one layer);
    None when the map was not tested.
    """

    layer: int
    set_aside: bool
    mean_difference: float | None
    groups_with_it: LayerGroups | None
    depends: bool | None

    def to_json(self) -> dict:
        groups = self.groups_with_it
        return {
            "layer": self.layer,
            "set_aside": self.set_aside,
            "mean_difference": self.mean_difference,
            "groups_with_it": groups.to_json() if groups else None,
            "depends": self.depends,
        }


@dataclass(frozen=True)
class LayerMap:
    """A run's layer map (``RUN/tables/layer_groups.json``).

    ``fit`` is the map on debiased CKA, the one the report reads; ``biased`` is the same
    fit on biased CKA, for comparison with the paper. ``tasks`` are the seen tasks used,
    ``excluded_tasks`` seen tasks left out for an undefined CKA at some layer.
    ``paper_map`` tests the groups against the paper's definitions and ``final_norm`` says
    how the last layer was handled; both are None for maps built from difference curves
    alone (:func:`find_layer_groups`) rather than :func:`layer_map_from_rows`.
    """

    measure: str
    tasks: tuple[str, ...]
    excluded_tasks: tuple[str, ...]
    fit: LayerFit
    biased: LayerFit
    paper_map: PaperMap | None = None
    final_norm: FinalNorm | None = None

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
            "paper_map": self.paper_map.to_json() if self.paper_map else None,
            "final_norm": self.final_norm.to_json() if self.final_norm else None,
        }

    @classmethod
    def from_json(cls, data) -> LayerMap:
        """The map in a layer_groups.json object; ValueError naming a missing or bad field."""
        fields = _Fields(data, "")
        names = (_is_list(_is_str), "a list of task names")
        fit = _fit_from(fields)
        return cls(
            measure=fields("measure", _is_str, "a string"),
            tasks=tuple(fields("tasks", *names)),
            excluded_tasks=tuple(fields("excluded_tasks", *names)),
            fit=fit,
            biased=_fit_from(fields.obj("biased")),
            paper_map=_paper_map_from(fields, fit.fit_layers),
            final_norm=_final_norm_from(fields, fit.n_layers),
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


def _or_null(check: Callable) -> Callable:
    return lambda v: v is None or check(v)


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

    def obj_or_null(self, key: str) -> _Fields | None:
        value = self(key, lambda v: v is None or isinstance(v, dict), "null or an object")
        return None if value is None else _Fields(value, self.name(key))

    def objs(self, key: str) -> list[_Fields]:
        rows = self(key, _is_list(lambda v: isinstance(v, dict)), "a list of objects")
        return [_Fields(row, f"{self.name(key)}[{i}]") for i, row in enumerate(rows)]


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
        "fit_layers": fields(
            "fit_layers", lambda v: _is_int(v) and 0 <= v <= n_layers, f"an integer 0..{n_layers}"
        ),
        "n_bootstrap": fields("n_bootstrap", _is_int, "an integer"),
        "alpha": fields("alpha", _is_num, "a number"),
        "seed": fields("seed", _is_int, "an integer"),
        "mean_difference": _per_layer(
            fields("mean_difference", curve, f"a list of {n_layers} numbers")
        ),
    }
    p_value = fields("p_value", _or_null(_is_num), "null or a number")
    structure = fields("structure", _is_bool, "true or false")
    if p_value is None or not structure:
        fields("groups", lambda v: v is None, "null without structure")
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


def _number_per(names: list[str]) -> tuple[Callable, str]:
    def check(v) -> bool:
        return isinstance(v, dict) and list(v) == names and all(_is_num(x) for x in v.values())

    return check, f"a number per {names}"


def _structure_from(fields: _Fields, n_layers: int) -> Structure:
    model = fields("model", lambda v: v in ("two_knots", "hinge"), "two_knots or hinge")
    groups = _groups_from(fields.obj("groups"), n_layers)
    boundaries = fields("boundaries", lambda v: v == groups.starts(), f"{groups.starts()}")
    shares = fields("confidence", *_number_per(list(boundaries)))
    present = [name for name, span in groups.items() if span]
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
        slopes=dict(fields("slopes", *_number_per(present))),
        rise=fields("rise", _is_num, "a number"),
        p_value_knots=fields("p_value_knots", _is_num, "a number"),
        model_shares=dict(fields("model_shares", *_number_per(list(MODELS)))),
    )


def _check_from(fields: _Fields) -> Check:
    ci = fields("ci", _or_null(_is_list(_is_num, 2)), "null or [low, high]")
    return Check(
        name=fields("name", _is_str, "a string"),
        claim=fields("claim", _is_str, "a string"),
        value=fields("value", _or_null(_is_num), "null or a number"),
        ci=tuple(ci) if ci else None,
        null=fields("null", _is_num, "a number"),
        alternative=fields(
            "alternative", lambda v: v in (None, "greater", "less"), "null, greater or less"
        ),
        p_value=fields("p_value", _or_null(_is_num), "null or a number"),
        at_floor=fields("at_floor", _is_bool, "true or false"),
        passed=fields("passed", _is_bool, "true or false"),
    )


def _paper_map_from(top: _Fields, n_layers: int) -> PaperMap | None:
    fields = top.obj_or_null("paper_map")
    if fields is None:
        return None
    tests = []
    for test in fields.objs("tests"):
        layers = test(
            "layers", _or_null(_is_span(n_layers)), f"null or [first, last] in 1..{n_layers}"
        )
        tests.append(
            GroupTest(
                group=test(
                    "group", lambda v: v in (*GROUPS, "shape"), f"one of {[*GROUPS, 'shape']}"
                ),
                layers=Span(*layers) if layers else None,
                checks=tuple(_check_from(c) for c in test.objs("checks")),
            )
        )
        test("passed", lambda v, t=tests[-1]: v == t.passed, f"{tests[-1].passed} (its checks)")
    return PaperMap(
        verdict=fields("verdict", lambda v: v in VERDICTS, f"one of {list(VERDICTS)}"),
        reason=fields("reason", _is_str, "a string"),
        n_bootstrap=fields("n_bootstrap", _is_int, "an integer"),
        tests=tuple(tests),
        smooth=fields("smooth", lambda v: v is None or isinstance(v, dict), "null or an object"),
    )


def _final_norm_from(top: _Fields, n_layers: int) -> FinalNorm | None:
    fields = top.obj_or_null("final_norm")
    if fields is None:
        return None
    groups = fields.obj_or_null("groups_with_it")
    return FinalNorm(
        layer=fields("layer", lambda v: v == n_layers, f"{n_layers} (the last layer)"),
        set_aside=fields("set_aside", _is_bool, "true or false"),
        mean_difference=fields("mean_difference", _or_null(_is_num), "null or a number"),
        groups_with_it=_groups_from(groups, n_layers) if groups else None,
        depends=fields("depends", _or_null(_is_bool), "null, true or false"),
    )


# -- the segmentation --------------------------------------------------------------------------


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


@functools.cache
def _family(kind: str, n_layers: int) -> Family:
    """Every candidate of one kind for ``n_layers`` layers (cached: the arrays are only read)."""
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


def _gain_over(rich: np.ndarray, simple: np.ndarray) -> np.ndarray:
    """Sum of squares a richer fit explains beyond a simpler one (inf without a valid simpler)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isneginf(simple), np.inf, np.maximum(rich - simple, 0.0))


def _groups(family: Family, knots: np.ndarray, slopes: np.ndarray, n_layers: int) -> LayerGroups:
    """The groups of one candidate fit (knots and slopes of its segments)."""
    if family.kind == "two_knots":
        s, t = (int(v) for v in knots)
        return LayerGroups(Span(1, s), Span(s + 1, t), Span(t + 1, n_layers))
    k = int(knots[0])
    if slopes[1] > slopes[0]:
        return LayerGroups(Span(1, k), Span(k + 1, n_layers), None)
    return LayerGroups(None, Span(1, k), Span(k + 1, n_layers))


@dataclass(frozen=True)
class _Choice:
    """The model one curve gets: kind ("none" or a family), its fit, groups and rise."""

    kind: str
    p_bend: float
    p_knots: float | None
    fitted: np.ndarray | None = None
    slopes: np.ndarray | None = None
    groups: LayerGroups | None = None
    rise: float | None = None


class _Rule:
    """The model choice as a rule any curve can be put through (the data's curve and refits).

    The two tests' null samples come from the data once (wild bootstrap around the line and
    around the best hinge); a curve's p-values count the null draws at least as large as its
    own statistic, so every refit chooses its model by the same rule as the data.
    """

    def __init__(self, diff: np.ndarray, n_boot: int, alpha: float, min_rise: float, rng):
        n_layers = diff.shape[1]
        self.line, self.hinge, self.knots = (
            _family(k, n_layers) for k in ("line", "hinge", "two_knots")
        )
        self.n_boot, self.alpha, self.min_rise = n_boot, alpha, min_rise
        mean = diff.mean(axis=0)
        residuals = diff - mean
        line_fit = _fit(mean, self.line, 0)[0]
        noise = _wild_noise(residuals, n_boot, rng)
        self.null_bend = np.sort(self._gains(line_fit + noise)[0])
        hinge_idx = int(_best(mean[None], self.hinge)[0][0])
        around = _fit(mean, self.hinge, hinge_idx)[0] if hinge_idx >= 0 else line_fit
        self.null_knots = np.sort(self._gains(around + _wild_noise(residuals, n_boot, rng))[1])

    def _gains(self, curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per curve: gain of a bend over the line, of two knots over a hinge, best indices."""
        line = _best(curves, self.line)[1]
        h_idx, hinge = _best(curves, self.hinge)
        k_idx, knots = _best(curves, self.knots)
        return _gain_over(np.maximum(hinge, knots), line), _gain_over(knots, hinge), h_idx, k_idx

    def _p(self, observed: np.ndarray, null: np.ndarray) -> np.ndarray:
        """(1 + #{null >= observed}) / (1 + B) per observed value."""
        below = np.searchsorted(null, observed - 1e-12, side="left")
        return (1 + len(null) - below) / (1 + len(null))

    def choose(self, curves: np.ndarray) -> list[_Choice]:
        """The model of each curve [B, L]: none, hinge or two knots, with groups and rise."""
        bend, two, h_idx, k_idx = self._gains(curves)
        p_bend, p_knots = self._p(bend, self.null_bend), self._p(two, self.null_knots)
        n_layers = curves.shape[1]
        out = []
        for b, curve in enumerate(curves):
            p1 = float(p_bend[b])
            # no valid hinge: the bend needs two knots (p at the floor)
            p2 = float(p_knots[b]) if h_idx[b] >= 0 else 1.0 / (1 + self.n_boot)
            if p1 >= self.alpha:
                out.append(_Choice("none", p1, p2))
                continue
            two_knots = k_idx[b] >= 0 and (p2 < self.alpha or h_idx[b] < 0)
            family, idx = (self.knots, k_idx[b]) if two_knots else (self.hinge, h_idx[b])
            fitted, slopes = _fit(curve, family, idx)
            groups = _groups(family, family.knots[idx], slopes, n_layers)
            span = groups.transition
            rise = float(fitted[span.last - 1] - fitted[max(span.first - 1, 1) - 1])
            kind = family.kind if rise >= self.min_rise else "none"
            out.append(_Choice(kind, p1, p2, fitted, slopes, groups, rise))
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


def _extend(groups: LayerGroups, n_layers: int) -> LayerGroups:
    """The groups with the last one stretched to layer ``n_layers`` (layers set aside join it)."""
    name, span = [(n, s) for n, s in groups.items() if s][-1]
    return LayerGroups(**{**dict(groups.items()), name: Span(span.first, n_layers)})


def find_layer_groups(
    diff,
    *,
    n_boot: int = N_BOOT,
    alpha: float = 0.05,
    min_rise: float = MIN_RISE,
    seed: int = 0,
    fit_layers: int | None = None,
) -> LayerFit:
    """Fit the layer map to per-task SFT-minus-base CKA curves.

    Parameters
    ----------
    diff : array [T, L]
        ``CKA_sft - CKA_base`` (each against the task's control) for T tasks at layers
        1..L (column j is layer j + 1; the embedding layer 0 is not part of the map).
    n_boot : int
        Wild-bootstrap draws for each test and task-bootstrap draws for the confidence;
        the smallest p-value is 1/(n_boot + 1).
    alpha : float
        Level of both tests.
    min_rise : float
        Smallest rise of the fitted curve over the transition layers reported as structure
        (practical significance: with many tasks a rise of 0.001 CKA can be statistically
        clear).
    seed : int
        Seed of every random draw (same seed, same result).
    fit_layers : int, optional
        Fit layers 1..fit_layers only (default: all); later layers join the last group, and
        their fitted values continue its segment.

    Returns
    -------
    LayerFit
        Per-layer values keyed by layer number 1..L. ``p_value`` and ``mean_difference_ci``
        are None with fewer than 3 tasks or 4 fitted layers; ``structure`` (groups,
        boundaries and their confidence, per-layer label shares, fitted curve, slopes, rise,
        the two-knots test, the share of refits choosing each model) is None without a
        layer map, and ``reason`` says why.
    """
    diff = _validate(diff)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n_tasks, n_layers = diff.shape
    n_fit = n_layers if fit_layers is None else int(fit_layers)
    if not 1 <= n_fit <= n_layers:
        raise ValueError(f"fit_layers must be in 1..{n_layers}, got {fit_layers}")
    layers = range(1, n_layers + 1)  # the layer of each column of diff

    def per_layer(values) -> dict:
        return dict(zip(layers, values, strict=True))

    def result(**fields) -> LayerFit:
        return LayerFit(
            n_tasks=int(n_tasks),
            n_layers=int(n_layers),
            fit_layers=int(n_fit),
            n_bootstrap=int(n_boot),
            alpha=float(alpha),
            seed=int(seed),
            **{"mean_difference_ci": None, "structure": None, "reason": None, **fields},
        )

    if n_tasks < MIN_TASKS or n_fit < MIN_LAYERS:
        return result(
            mean_difference=per_layer(diff.mean(axis=0).tolist()) if n_tasks else {},
            p_value=None,
            reason=f"needs at least {MIN_TASKS} seen tasks and {MIN_LAYERS} layers to fit, "
            f"got {n_tasks} tasks and {n_fit} layers",
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

    rule = _Rule(diff[:, :n_fit], n_boot, alpha, min_rise, rng)
    chosen = rule.choose(mean[None, :n_fit])[0]
    if chosen.p_bend >= alpha:
        slope = float(_fit(mean[:n_fit], rule.line, 0)[1][0])
        return result(
            **tested,
            p_value=chosen.p_bend,
            reason=(
                f"no bend in the SFT-minus-base CKA curve beyond task noise ("
                f"{p_text(chosen.p_bend, n_boot)} against a straight line, slope "
                f"{slope:+.2g} per layer)"
            ),
        )
    if chosen.kind == "none":
        return result(
            **tested,
            p_value=chosen.p_bend,
            reason=(
                f"the SFT-minus-base CKA curve rises by only {chosen.rise:.4f} over its "
                f"steepest stretch (below {min_rise} CKA), though consistently across tasks "
                f"({p_text(chosen.p_bend, n_boot)})"
            ),
        )

    refits = rule.choose(boot_means[:, :n_fit])
    labels = np.full((n_boot, n_layers + 1), NO_FIT)
    boundaries = chosen.groups.starts()
    hits = dict.fromkeys(boundaries, 0)
    for b, refit in enumerate(refits):
        if refit.kind == "none":
            continue
        for g, (_, span) in enumerate(_extend(refit.groups, n_layers).items()):
            if span:
                labels[b, span.first : span.last + 1] = g
        starts = refit.groups.starts()
        for name, pos in boundaries.items():
            hits[name] += name in starts and abs(starts[name] - pos) <= 1
    fitted = chosen.fitted.tolist()
    last_slope = float(chosen.slopes[-1])
    fitted += [fitted[-1] + last_slope * k for k in range(1, n_layers - n_fit + 1)]
    groups = _extend(chosen.groups, n_layers)
    structure = Structure(
        model=chosen.kind,
        groups=groups,
        confidence={name: hits[name] / n_boot for name in boundaries},
        layer_probabilities={
            layer: LayerShares(
                *(float(np.mean(labels[:, layer] == g)) for g in range(len(GROUPS))),
                none=float(np.mean(labels[:, layer] == NO_FIT)),
            )
            for layer in layers
        },
        fitted=per_layer(fitted),
        slopes={
            name: float(chosen.slopes[i])
            for i, name in enumerate(name for name, span in groups.items() if span)
        },
        rise=chosen.rise,
        p_value_knots=chosen.p_knots,
        model_shares={m: sum(r.kind == m for r in refits) / n_boot for m in MODELS},
    )
    return result(**tested, p_value=chosen.p_bend, structure=structure)


# -- the paper's definitions -----------------------------------------------------------------


def _sigmoid(x, low, rise, mid, width):
    """A monotone (rising) logistic curve: ``low`` to ``low + rise``, steepest at ``mid``."""
    from scipy.special import expit

    return low + rise * expit((x - mid) / width)


@functools.cache
def _grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logistic shapes on a grid: midpoints (1/4 layer, 1-n..2n) x widths (60, log-spaced).

    Returns (midpoint, width, mean, centred shape [G, n]) per grid point, flattened.
    """
    from scipy.special import expit

    x = np.arange(1, n + 1, dtype=np.float64)
    mids, widths = np.meshgrid(np.linspace(1.0 - n, 2.0 * n, 12 * n + 1), np.geomspace(0.05, n, 60))
    mids, widths = mids.ravel(), widths.ravel()
    shape = expit((x - mids[:, None]) / widths[:, None])
    mean = shape.mean(axis=1)
    return mids, widths, mean, shape - mean[:, None]


def _sigmoid_grid(curves: np.ndarray) -> np.ndarray:
    """The best rising logistic per curve [B, n] on :func:`_grid`, low and rise by linear
    least squares at each grid point (rise >= 0): (low, rise, mid, width) per curve, [B, 4]."""
    mids, widths, mean, centred = _grid(curves.shape[1])
    y = curves - curves.mean(axis=1, keepdims=True)
    var = np.sum(centred**2, axis=1)[:, None]
    var = np.where(var > 0, var, np.inf)  # a constant shape explains nothing
    cov = centred @ y.T  # [G, B]
    # residual sum of squares at the best rise: sum(y^2) - cov^2 / var, or sum(y^2) if cov <= 0
    best = np.argmax(np.where(cov > 0, cov**2 / var, 0.0), axis=0)
    cols = np.arange(len(curves))
    rise = np.clip(cov[best, cols] / var[best, 0], 0.0, None)
    low = curves.mean(axis=1) - rise * mean[best]
    return np.column_stack([low, rise, mids[best], widths[best]])


def fit_sigmoid(curve: np.ndarray) -> np.ndarray | None:
    """Least-squares rising logistic through ``curve`` (layers 1..L): (low, rise, mid, width).

    The midpoint may lie up to L layers outside 1..L, so a convex or a saturating curve is
    fitted by one tail of the logistic. The best grid point (:func:`_sigmoid_grid`) starts
    scipy's ``curve_fit``; None when that fails.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    n = len(curve)
    x = np.arange(1, n + 1, dtype=np.float64)
    span = max(float(np.ptp(curve)), 1e-6)
    # a rise beyond 10x the curve's range is a tail only: its 10%-90% points lie far outside
    lower = [float(curve.min()) - 10 * span, 0.0, 1.0 - n, 0.05]
    upper = [float(curve.max()) + 10 * span, 10 * span, 2.0 * n, float(n)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(
                _sigmoid,
                x,
                curve,
                p0=np.clip(_sigmoid_grid(curve[None])[0], lower, upper),
                bounds=(lower, upper),
                maxfev=2000,
            )
    except (RuntimeError, ValueError):
        return None
    return params


def _rise_points(params: np.ndarray) -> tuple[float, float]:
    """Layers where a fitted sigmoid reaches 10% and 90% of its rise."""
    _, _, mid, width = params
    return mid - width * math.log(9), mid + width * math.log(9)


def _check(name, claim, value, boot, *, null, alternative, passes_if_shown, alpha) -> Check:
    """A check from its statistic and task-bootstrap draws of it.

    p = (1 + #{draws on the null side}) / (1 + B) for ``alternative`` (value beyond
    ``null``); the check passes when that alternative is shown (``passes_if_shown``) or when
    it is not.
    """
    on_null_side = boot <= null if alternative == "greater" else boot >= null
    p = float((1 + np.sum(on_null_side)) / (1 + len(boot)))
    shown = p < alpha
    return Check(
        name=name,
        claim=claim,
        value=float(value),
        ci=tuple(float(v) for v in np.percentile(boot, [2.5, 97.5])),
        null=float(null),
        alternative=alternative,
        p_value=p,
        at_floor=p <= 1.0 / (1 + len(boot)) * (1 + 1e-9),
        passed=bool(shown if passes_if_shown else not shown),
    )


def _clip(span: Span | None, n_fit: int) -> Span | None:
    """A group's fitted layers (the layers set aside after ``n_fit`` are not tested)."""
    if span is None or span.first > n_fit:
        return None
    return Span(span.first, min(span.last, n_fit))


def paper_map_of(
    sft,
    base,
    fit: LayerFit,
    *,
    alpha: float = 0.05,
    negligible: float = MIN_RISE,
    seed: int = 0,
) -> PaperMap:
    """Test a fit's groups against the paper's definitions, on per-task CKA curves.

    ``sft`` and ``base`` are [T, L] (the tasks and layers of ``fit``). With a task bootstrap
    of ``fit.n_bootstrap`` draws, on the fitted layers only:

    * shared: mean D over its layers not above ``negligible`` (fails when shown above);
    * transition: D rises by more than ``negligible`` from the layer before it to its last
      layer (shown); D > 0 at its last layer (shown: SFT closer to the controls than base);
      SFT closer to its control than base there for more than half of the tasks (shown; the
      paper: "high similarity to *all* control models");
    * refinement: mean D over its layers > 0 (shown), and its linear change from the
      transition's last layer to the last refinement layer not below ``-negligible``
      (fails when the fall is shown);
    * shape: the refits choose three groups more often than not, and a rising sigmoid
      fitted to the mean curve reaches 10% of its rise after layer 1 and 90% before the last
      fitted layer (a low and a high level, not a convex or saturating curve); its interval
      comes from the grid fit (:func:`_sigmoid_grid`) of up to 200 task-bootstrap refits.

    Verdict: "not testable" when the fit was not tested; "does not hold" without structure
    or when no group passes; "holds" when all three groups and the shape pass; else "partly".
    """
    n_boot = fit.n_bootstrap

    def verdict(word: str, reason: str, tests=(), smooth=None) -> PaperMap:
        return PaperMap(word, reason, n_boot, tuple(tests), smooth)

    if fit.p_value is None:
        return verdict("not testable", fit.reason)
    if fit.structure is None:
        return verdict("does not hold", f"no layer structure: {fit.reason}")
    n_fit = fit.fit_layers
    sft = np.asarray(sft, dtype=np.float64)[:, :n_fit]
    base = np.asarray(base, dtype=np.float64)[:, :n_fit]
    diff = sft - base
    rng = np.random.default_rng([seed, 1])
    idx = rng.integers(0, diff.shape[0], size=(n_boot, diff.shape[0]))
    d_mean, d_boot = diff.mean(axis=0), diff[idx].mean(axis=1)
    groups = fit.structure.groups
    spans = {name: _clip(span, n_fit) for name, span in groups.items()}
    check = {"alpha": alpha}
    tests = []

    s = spans["shared"]
    if s:
        cols = slice(s.first - 1, s.last)
        tests.append(
            GroupTest(
                "shared",
                s,
                (
                    _check(
                        "at_or_below_base",
                        f"SFT at or below base: mean D over the shared layers not shown above "
                        f"{negligible}",
                        d_mean[cols].mean(),
                        d_boot[:, cols].mean(axis=1),
                        null=negligible,
                        alternative="greater",
                        passes_if_shown=False,
                        **check,
                    ),
                ),
            )
        )
    t = spans["transition"]
    if t:
        before, last = max(t.first - 1, 1) - 1, t.last - 1
        cols = slice(t.first - 1, t.last)
        tests.append(
            GroupTest(
                "transition",
                t,
                (
                    _check(
                        "rise",
                        f"D rises over the transition by more than {negligible}",
                        d_mean[last] - d_mean[before],
                        d_boot[:, last] - d_boot[:, before],
                        null=negligible,
                        alternative="greater",
                        passes_if_shown=True,
                        **check,
                    ),
                    _check(
                        "level",
                        "SFT closer to the controls than base at the transition's last layer "
                        "(D > 0)",
                        d_mean[last],
                        d_boot[:, last],
                        null=0.0,
                        alternative="greater",
                        passes_if_shown=True,
                        **check,
                    ),
                    _check(
                        "across_tasks",
                        "SFT closer to its control than base for most tasks at the "
                        "transition's last layer (share of tasks with D_t > 0 above 1/2)",
                        np.mean(diff[:, last] > 0),
                        np.mean(diff[idx, last] > 0, axis=1),
                        null=0.5,
                        alternative="greater",
                        passes_if_shown=True,
                        **check,
                    ),
                ),
            )
        )
    r = spans["refinement"]
    if r and t:
        cols = slice(r.first - 1, r.last)
        # least-squares slope times length: the fitted change of D over layers t.last..r.last
        trend = slice(t.last - 1, r.last)
        x = np.arange(t.last, r.last + 1, dtype=np.float64) - (t.last + r.last) / 2
        weights = x / np.sum(x**2) * (r.last - t.last)
        tests.append(
            GroupTest(
                "refinement",
                r,
                (
                    _check(
                        "stays_high",
                        "SFT closer to the controls than base over the refinement layers "
                        "(mean D > 0)",
                        d_mean[cols].mean(),
                        d_boot[:, cols].mean(axis=1),
                        null=0.0,
                        alternative="greater",
                        passes_if_shown=True,
                        **check,
                    ),
                    _check(
                        "no_fall",
                        f"D does not fall across the refinement: its linear change from the "
                        f"transition's last layer to the last refinement layer not shown below "
                        f"-{negligible}",
                        d_mean[trend] @ weights,
                        d_boot[:, trend] @ weights,
                        null=-negligible,
                        alternative="less",
                        passes_if_shown=False,
                        **check,
                    ),
                ),
            )
        )
    shape, smooth = _shape_test(d_mean, d_boot, fit)
    tests.append(shape)
    missing = [name for name in GROUPS if spans[name] is None]
    tests = [*(GroupTest(name, None, ()) for name in missing), *tests]
    tests.sort(key=lambda g: [*GROUPS, "shape"].index(g.group))
    failed = [
        g.group
        if not g.checks
        else f"{g.group} ({', '.join(c.name for c in g.checks if not c.passed)})"
        for g in tests
        if not g.passed
    ]
    if not failed:
        return verdict(
            "holds",
            "every group passes its test, three groups recur in most refits and the curve "
            "has a low and a high level",
            tests,
            smooth,
        )
    if not any(g.passed for g in tests if g.group in GROUPS):
        return verdict(
            "does not hold", f"no group passes its test; failed: {'; '.join(failed)}", tests, smooth
        )
    return verdict("partly", f"failed: {'; '.join(failed)}", tests, smooth)


def _shape_test(d_mean: np.ndarray, d_boot: np.ndarray, fit: LayerFit) -> tuple[GroupTest, dict]:
    """The curve's form: three groups in most refits, and a smooth monotone alternative.

    A rising sigmoid fitted to the mean curve must have a low and a high level inside the
    fitted layers (10% of its rise after layer 1, 90% before the last); ``smooth`` holds the
    residual sums of squares of the segmented fit, a line, the sigmoid and an isotonic
    (monotone step) fit, and the sigmoid's parameters.
    """
    from sklearn.isotonic import IsotonicRegression

    n_fit = len(d_mean)
    x = np.arange(1, n_fit + 1, dtype=np.float64)
    params = fit_sigmoid(d_mean)
    segmented = np.array([fit.structure.fitted[layer] for layer in range(1, n_fit + 1)])
    rss = {
        "segmented": float(np.sum((segmented - d_mean) ** 2)),
        "line": float(np.sum((np.polyval(np.polyfit(x, d_mean, 1), x) - d_mean) ** 2)),
        "sigmoid": None if params is None else float(np.sum((_sigmoid(x, *params) - d_mean) ** 2)),
        "isotonic": float(
            np.sum((IsotonicRegression(increasing=True).fit_transform(x, d_mean) - d_mean) ** 2)
        ),
    }
    names = ("low", "rise", "mid", "width")
    smooth = {
        "rss": rss,
        "sigmoid": None if params is None else dict(zip(names, map(float, params), strict=True)),
    }
    share = fit.structure.model_shares["two_knots"]
    checks = [
        Check(
            "three_groups_reproduced",
            "the task-bootstrap refits choose three groups more often than not",
            share,
            None,
            0.5,
            None,
            None,
            False,
            share > 0.5,
        )
    ]
    if params is None:
        checks.append(
            Check(
                "sigmoid",
                "a rising sigmoid fits the curve",
                None,
                None,
                0.0,
                None,
                None,
                False,
                False,
            )
        )
        return GroupTest("shape", Span(1, n_fit), tuple(checks)), smooth
    points = np.array([_rise_points(p) for p in _sigmoid_grid(d_boot[:SIGMOID_REFITS])])
    lo, hi = _rise_points(params)
    ci = [
        tuple(float(v) for v in np.percentile(points[:, col], [2.5, 97.5])) if len(points) else None
        for col in (0, 1)
    ]
    checks += [
        Check(
            "low_level",
            "a rising sigmoid fitted to D reaches 10% of its rise after layer 1",
            float(lo),
            ci[0],
            1.0,
            None,
            None,
            False,
            bool(lo > 1.0),
        ),
        Check(
            "high_level",
            f"... and 90% of its rise before layer {n_fit}",
            float(hi),
            ci[1],
            float(n_fit),
            None,
            None,
            False,
            bool(hi < n_fit),
        ),
    ]
    return GroupTest("shape", Span(1, n_fit), tuple(checks)), smooth


# -- the whole map ---------------------------------------------------------------------------


def map_layers(
    sft,
    base,
    *,
    n_boot: int = N_BOOT,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[LayerFit, PaperMap, FinalNorm]:
    """The layer map of per-task CKA curves [T, L] (layers 1..L): fit, paper map, final norm.

    The fit uses layers 1..L-1 (the last, after the final norm, joins the last group) when
    that leaves at least 4 layers; the same fit on all L layers says whether the groups
    depend on the last layer.
    """
    sft, base = (np.asarray(a, dtype=np.float64) for a in (sft, base))
    if sft.shape != base.shape:
        raise ValueError(f"sft and base shapes differ: {sft.shape} vs {base.shape}")
    diff = sft - base
    n_layers = diff.shape[1]
    set_aside = n_layers - 1 >= MIN_LAYERS
    options = {"n_boot": n_boot, "alpha": alpha, "seed": seed}
    fit = find_layer_groups(diff, fit_layers=n_layers - set_aside, **options)
    with_it = find_layer_groups(diff, **options) if set_aside else fit
    groups_with_it = with_it.structure.groups if with_it.structure else None
    final = FinalNorm(
        layer=n_layers,
        set_aside=set_aside,
        mean_difference=fit.mean_difference.get(n_layers),
        groups_with_it=groups_with_it,
        depends=None if fit.p_value is None else _differ(fit.structure, with_it.structure),
    )
    return fit, paper_map_of(sft, base, fit, alpha=alpha, seed=seed), final


def _differ(a: Structure | None, b: Structure | None) -> bool:
    """Whether two fits' maps differ: structure, model, or a boundary by more than one layer."""
    if a is None or b is None:
        return (a is None) != (b is None)
    ba, bb = a.boundaries, b.boundaries
    return a.model != b.model or set(ba) != set(bb) or any(abs(ba[k] - bb[k]) > 1 for k in ba)


def layer_map_from_rows(
    rows: Iterable[Mapping],
    *,
    n_boot: int = N_BOOT,
    alpha: float = 0.05,
    seed: int = 0,
    tasks: Iterable[str] | None = None,
) -> LayerMap:
    """The layer map of rows in the cka.csv schema (the pipeline's and ``mossa layermap``'s).

    Each row has ``model`` ("base" or "sft"; others are ignored), ``task``, ``layer`` and
    ``cka``, optionally ``cka_biased`` (then the biased fit is made too) and ``seen``. Layers
    1..L are mapped (L the deepest layer; layer 0 is ignored). ``tasks`` are the tasks to
    map (default: every task, without those with ``seen`` false). A task with a non-finite
    value at some layer is left out (``excluded_tasks``). ValueError when a task lacks a
    layer of a model, a (model, task, layer) appears twice, or a named task has no rows.
    """
    rows = [r for r in rows if r["model"] in ("base", "sft") and int(r["layer"]) >= 1]
    if not rows:
        raise ValueError("no rows of models base and sft at layers >= 1")
    if tasks is None:
        tasks = list(
            dict.fromkeys(r["task"] for r in rows if r.get("seen", True) not in (False, "false"))
        )
    tasks = list(tasks)
    n_layers = max(int(r["layer"]) for r in rows)
    columns = ("cka", "cka_biased") if all("cka_biased" in r for r in rows) else ("cka",)
    values = {
        c: {m: np.full((len(tasks), n_layers), np.nan) for m in ("sft", "base")} for c in columns
    }
    seen = set()
    position = {t: i for i, t in enumerate(tasks)}
    for r in rows:
        if r["task"] not in position:
            continue
        key = (r["model"], r["task"], int(r["layer"]))
        if key in seen:
            raise ValueError(f"model {key[0]!r}, task {key[1]!r}, layer {key[2]} appears twice")
        seen.add(key)
        for c in columns:
            value = r[c]
            values[c][key[0]][position[key[1]], key[2] - 1] = (
                np.nan if value in ("", None) else float(value)
            )
    for t in tasks:
        for m in ("sft", "base"):
            have = {layer for model, task, layer in seen if (model, task) == (m, t)}
            if not have:
                raise ValueError(f"task {t!r} has no rows of model {m!r}")
            if len(have) < n_layers:
                gap = min(set(range(1, n_layers + 1)) - have)
                raise ValueError(
                    f"task {t!r} has no {m} row for layer {gap} (layers 1..{n_layers})"
                )
    usable = np.all(
        [np.isfinite(v).all(axis=1) for c in columns for v in values[c].values()], axis=0
    )
    options = {"n_boot": n_boot, "alpha": alpha, "seed": seed}
    fit, paper, final = map_layers(
        values["cka"]["sft"][usable], values["cka"]["base"][usable], **options
    )
    if "cka_biased" in columns:
        biased = find_layer_groups(
            values["cka_biased"]["sft"][usable] - values["cka_biased"]["base"][usable],
            fit_layers=fit.fit_layers,
            **options,
        )
    else:
        biased = dataclass_replace(
            fit,
            n_tasks=0,
            mean_difference={},
            mean_difference_ci=None,
            p_value=None,
            structure=None,
            reason="no cka_biased column",
        )
    return LayerMap(
        measure="column cka (debiased CKA in a mossa run), SFT minus base, each against the "
        "task's control",
        tasks=tuple(t for t, ok in zip(tasks, usable, strict=True) if ok),
        excluded_tasks=tuple(t for t, ok in zip(tasks, usable, strict=True) if not ok),
        fit=fit,
        biased=biased,
        paper_map=paper,
        final_norm=final,
    )
