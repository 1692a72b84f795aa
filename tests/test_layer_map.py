"""The layer-map algorithm on planted curves (recovery, calibration on noise, reference fits),
and the typed map: its JSON round trip and the errors that name a bad field."""

import functools
import itertools
import json
import re

import numpy as np
import pytest

from mossa.analysis.layer_map import (
    GROUPS,
    LayerGroups,
    LayerMap,
    Span,
    find_layer_groups,
    layer_map_from_rows,
    map_layers,
)

L, T = 12, 8
LAYERS = np.arange(1, L + 1)


def planted(b1: int, b2: int, *, height=0.6, noise=0.12, seed=0, n_tasks=T) -> np.ndarray:
    """Task curves rising at layers b1..b2 only (0 before, ``height`` from b2 on), plus noise."""
    rng = np.random.default_rng(seed)
    w = np.where(LAYERS < b1, 0.0, np.where(LAYERS > b2, 1.0, (LAYERS - b1 + 1) / (b2 - b1 + 1)))
    return height * w[None] + noise * rng.standard_normal((n_tasks, L))


def spans_cover(groups: LayerGroups) -> list[int]:
    return [layer for _, span in groups.items() if span for layer in span.layers]


def groups(first: tuple[int, int] | None, second, third) -> LayerGroups:
    return LayerGroups(*(Span(*s) if s else None for s in (first, second, third)))


@pytest.mark.parametrize("b1,b2", [(4, 7), (5, 8), (6, 9), (5, 5)])
def test_planted_ramp_boundaries_are_recovered(b1, b2):
    hits = 0
    for seed in range(5):
        res = find_layer_groups(planted(b1, b2, noise=0.08, seed=seed), seed=seed)
        found = res.structure
        assert found and found.model == "two_knots"
        assert spans_cover(found.groups) == list(range(1, L + 1))
        start, refine = found.boundaries["transition_start"], found.boundaries["refinement_start"]
        hits += abs(start - b1) <= 1 and abs(refine - (b2 + 1)) <= 1
        assert 0.0 <= min(found.confidence.values()) <= 1.0
    assert hits == 5


def test_recovery_rate_at_moderate_noise():
    """Task noise 0.12 (a tenth of the plateau gap per task): boundaries within ±1 layer."""
    hits = 0
    for seed in range(50):
        res = find_layer_groups(planted(5, 8, noise=0.12, seed=100 + seed), n_boot=50, seed=seed)
        b = res.structure.boundaries if res.structure else {}
        hits += (
            abs(b.get("transition_start", -9) - 5) <= 1
            and abs(b.get("refinement_start", -9) - 9) <= 1
        )
    assert hits >= 43


def test_confidence_and_layer_probabilities_are_consistent():
    found = find_layer_groups(planted(5, 8, noise=0.05), n_boot=300, seed=3).structure
    assert found.confidence["transition_start"] > 0.9
    assert found.confidence["refinement_start"] > 0.9
    probs = found.layer_probabilities
    assert list(probs) == list(LAYERS)  # keyed by layer; the map leaves layer 0 empty
    for p in probs.values():
        assert p.shared + p.transition + p.refinement + p.none == pytest.approx(1.0)
    assert probs[1].shared > 0.95 and probs[L].refinement > 0.95
    assert probs[7].transition > 0.95  # in the middle of the planted ramp


def test_noisier_data_gives_lower_confidence():
    clean = find_layer_groups(planted(5, 8, noise=0.05, seed=1), seed=1)
    noisy = find_layer_groups(planted(5, 8, noise=0.35, seed=1), seed=1)
    noisy_conf = min(noisy.structure.confidence.values()) if noisy.structure else 0.0
    assert noisy_conf < min(clean.structure.confidence.values())


def test_a_sharp_step_is_a_one_layer_transition():
    rng = np.random.default_rng(0)
    curves = 0.6 * (LAYERS >= 7)[None] + 0.05 * rng.standard_normal((T, L))
    found = find_layer_groups(curves, seed=0).structure
    assert found and found.model == "two_knots"
    assert found.groups == groups((1, 6), (7, 7), (8, 12))
    assert found.rise == pytest.approx(0.6, abs=0.1)


def test_refinement_may_keep_rising_slowly():
    """The paper's picture: flat, steep, then a slower continued rise (not a plateau)."""
    rng = np.random.default_rng(4)
    m = np.interp(LAYERS, [1, 4, 8, 12], [-0.3, -0.3, 0.3, 0.45])
    found = find_layer_groups(m[None] + 0.05 * rng.standard_normal((T, L)), seed=4).structure
    assert found.model == "two_knots"
    assert abs(found.boundaries["transition_start"] - 5) <= 1
    assert abs(found.boundaries["refinement_start"] - 9) <= 1
    assert found.slopes["transition"] > found.slopes["refinement"] > 0


def test_one_bend_gives_two_groups():
    """Flat, then rising to the last layer: shared and transition, no refinement."""
    rng = np.random.default_rng(2)
    m = np.interp(LAYERS, [1, 6, 12], [0.0, 0.0, 0.6])
    found = find_layer_groups(m[None] + 0.05 * rng.standard_normal((T, L)), seed=2).structure
    assert found and found.model == "hinge"
    assert found.groups.refinement is None
    assert abs(found.groups.shared.last - 6) <= 1 and found.groups.transition.last == L
    assert spans_cover(found.groups) == list(range(1, L + 1))
    assert set(found.boundaries) == {"transition_start"}


def test_pure_noise_reports_no_structure():
    rng = np.random.default_rng(11)
    res = find_layer_groups(0.1 * rng.standard_normal((T, L)), seed=11)
    assert res.structure is None and res.p_value is not None and res.reason


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_false_structure_rate_on_noise_is_near_alpha(rho):
    """Calibration on white and layer-correlated noise: about 5% false structure."""
    rng = np.random.default_rng(42)
    n_rep, rejected = 150, 0
    for rep in range(n_rep):
        e = rng.standard_normal((T, L))
        for j in range(1, L):
            e[:, j] = rho * e[:, j - 1] + np.sqrt(1 - rho**2) * e[:, j]
        rejected += find_layer_groups(0.1 * e + 0.3, n_boot=100, seed=rep).structure is not None
    assert rejected / n_rep <= 0.11


def test_steady_linear_trend_is_not_three_groups():
    rng = np.random.default_rng(5)
    rejected = sum(
        find_layer_groups(
            0.05 * LAYERS[None] + 0.1 * rng.standard_normal((T, L)), n_boot=200, seed=s
        ).structure
        is not None
        for s in range(40)
    )
    assert rejected <= 6


def test_falling_curve_is_not_the_paper_structure():
    res = find_layer_groups(-planted(5, 8, noise=0.05), seed=0)
    assert res.structure is None


def test_a_clear_but_tiny_rise_is_not_mapped():
    res = find_layer_groups(planted(5, 8, height=0.01, noise=0.001), seed=0)
    assert res.p_value < 0.05
    assert res.structure is None and "rises by only" in res.reason


def test_too_few_tasks_or_layers_say_why():
    res = find_layer_groups(planted(5, 8)[:2], seed=0)
    assert res.structure is None and "at least 3 seen tasks" in res.reason
    res = find_layer_groups(np.zeros((5, 3)), seed=0)
    assert res.structure is None and "4 layers" in res.reason and res.p_value is None


def test_same_seed_same_result_other_seed_same_map():
    curves = planted(4, 7, seed=9)
    assert find_layer_groups(curves, seed=1) == find_layer_groups(curves, seed=1)
    assert (
        find_layer_groups(curves, seed=2).structure.groups
        == find_layer_groups(curves, seed=1).structure.groups
    )


def test_bad_input_raises_with_location():
    curves = planted(4, 7)
    curves[2, 5] = np.nan
    with pytest.raises(ValueError, match="task row 2, layer 6"):
        find_layer_groups(curves)
    with pytest.raises(ValueError, match="2-D"):
        find_layer_groups(np.zeros(5))
    with pytest.raises(ValueError, match="alpha"):
        find_layer_groups(planted(4, 7), alpha=1.5)


def _reference_fit(mean: np.ndarray) -> tuple[tuple[int, int], float]:
    """Brute force: broken line with knots s < t by lstsq; middle segment steepest, rising."""
    best = ((0, 0), np.inf)
    for s, t in itertools.combinations(range(2, L), 2):
        design = np.column_stack(
            [np.ones(L), LAYERS, np.clip(LAYERS - s, 0, None), np.clip(LAYERS - t, 0, None)]
        )
        coef, *_ = np.linalg.lstsq(design, mean, rcond=None)
        left, mid, right = coef[1], coef[1] + coef[2], coef[1] + coef[2] + coef[3]
        if not (mid > 0 and mid > left and mid > right):
            continue
        rss = float(np.sum((design @ coef - mean) ** 2))
        if rss < best[1] - 1e-12:
            best = ((s, t), rss)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_fit_matches_brute_force_least_squares(seed):
    curves = planted(3 + seed, 6 + seed, noise=0.1, seed=seed)
    found = find_layer_groups(curves, seed=seed).structure
    assert found and found.model == "two_knots"
    (s, t), rss = _reference_fit(curves.mean(axis=0))
    assert found.groups == groups((1, s), (s + 1, t), (t + 1, L))
    fitted = np.array([found.fitted[layer] for layer in LAYERS])
    assert np.sum((fitted - curves.mean(axis=0)) ** 2) == pytest.approx(rss, rel=1e-9)


# ------------------------------------------------------------------ the typed map and its JSON


@functools.cache
def fits_of_every_kind() -> dict:
    """A fit with three groups, with two (each hinge), without structure, and untested."""
    rng = np.random.default_rng(2)
    return {
        "two_knots": find_layer_groups(planted(5, 8), n_boot=50, seed=3),
        "hinge_shared": find_layer_groups(
            np.interp(LAYERS, [1, 6, 12], [0.0, 0.0, 0.6])[None]
            + 0.05 * rng.standard_normal((T, L))
        ),
        "hinge_refinement": find_layer_groups(
            np.interp(LAYERS, [1, 6, 12], [0.0, 0.6, 0.7])[None]
            + 0.05 * rng.standard_normal((T, L))
        ),
        "noise": find_layer_groups(0.1 * rng.standard_normal((T, L)), n_boot=50),
        "too_few": find_layer_groups(planted(5, 8)[:2]),
    }


@pytest.mark.parametrize("kind", list(fits_of_every_kind()))
def test_layer_map_json_round_trip(kind):
    fit = fits_of_every_kind()[kind]
    if kind.startswith("hinge"):
        assert fit.structure.model == "hinge"
    layer_map = LayerMap("measure", ("a", "b"), ("c",), fit=fit, biased=fit)
    data = json.loads(json.dumps(layer_map.to_json()))
    again = LayerMap.from_json(data)
    assert again == layer_map and again.to_json() == data


def test_the_map_leaves_layer_0_empty():
    found = find_layer_groups(planted(5, 8), n_boot=50).structure
    assert list(found.fitted) == list(found.layer_probabilities) == list(range(1, L + 1))
    assert found.groups.layers(*GROUPS) == list(range(1, L + 1))
    assert found.groups.layers("transition") == [5, 6, 7, 8]


def file_of(kind: str) -> dict:
    fit = fits_of_every_kind()[kind]
    return json.loads(json.dumps(LayerMap("m", ("a",), (), fit=fit, biased=fit).to_json()))


@pytest.mark.parametrize(
    "damage, field",
    [
        (lambda d: d.pop("n_tasks"), "'n_tasks' is missing"),
        (lambda d: d["biased"].pop("p_value_knots"), "'biased.p_value_knots' is missing"),
        (lambda d: d.update(structure="yes"), "'structure' must be true or false"),
        (lambda d: d.update(tasks="a"), "'tasks' must be a list of task names"),
        (lambda d: d["groups"].update(transition=[9, 5]), "'groups.transition' must be null or"),
        (lambda d: d["groups"].update(transition=None), "'groups.transition' must not be null"),
        (lambda d: d["biased"]["groups"].pop("shared"), "'biased.groups.shared' is missing"),
        (lambda d: d["boundaries"].update(transition_start=3), "'boundaries' must be"),
        (lambda d: d["mean_difference"].pop(), "'mean_difference' must be a list of 12 numbers"),
        (lambda d: d["layer_probabilities"].pop(0), "'layer_probabilities' must be one"),
        (lambda d: d["slopes"].pop("shared"), "'slopes' must be a number per"),
        (lambda d: d.update(biased=[]), "'biased' must be an object"),
    ],
)
def test_from_json_names_the_missing_or_bad_field(damage, field):
    data = file_of("two_knots")
    damage(data)
    with pytest.raises(ValueError, match=re.escape(field)):
        LayerMap.from_json(data)


def test_from_json_checks_the_untested_and_no_structure_forms():
    data = file_of("too_few")
    data["structure"] = True
    with pytest.raises(ValueError, match="'structure' must be false"):
        LayerMap.from_json(data)
    data = file_of("noise")
    del data["reason"]
    with pytest.raises(ValueError, match="'reason' is missing"):
        LayerMap.from_json(data)
    with pytest.raises(ValueError, match="layer map file must be an object"):
        LayerMap.from_json([])


# ------------------------------------------- the paper map on per-task SFT and base CKA curves

PL = 16  # layers of the planted tables (the last one after the final norm)
PX = np.arange(1, PL + 1)
PAPER_GROUPS = {"shared": [1, 5], "transition": [6, 10], "refinement": [11, 16]}
CURVES = {
    # flat slightly below 0 to layer 5, steep rise over 6..10, then a plateau / a slow rise
    "paper_plateau": np.interp(PX, [1, 5, 10, PL], [-0.05, -0.05, 0.5, 0.55]),
    "paper_slow_rise": np.interp(PX, [1, 5, 10, PL], [-0.03, -0.03, 0.45, 0.6]),
    "negative_s": -0.6 + 0.55 / (1 + np.exp(-(PX - 8.0))),  # SFT below base everywhere
    "convex": 0.6 * np.expm1((PX - 1) / 4) / np.expm1((PL - 1) / 4),
    "saturating": 0.6 * -np.expm1(-(PX - 1) / 3),
    "noise": np.zeros(PL),
    # the paper's rise, then D falls back over the refinement layers
    "rise_then_fall": np.interp(PX, [1, 5, 10, PL], [-0.05, -0.05, 0.5, 0.15]),
}


def cka_tables(d, seed, *, noise=0.05, n_tasks=10):
    """Per-task (sft, base) CKA [T, L]: base falls with depth (task offsets), sft = base + d."""
    rng = np.random.default_rng(seed)
    base = (
        0.9
        - 0.5 * PX / PL
        + 0.08 * rng.standard_normal((n_tasks, 1))
        + 0.02 * rng.standard_normal((n_tasks, PL))
    )
    return base + d + noise * rng.standard_normal((n_tasks, PL)), base


def within_one_layer(groups: LayerGroups, planted: dict) -> bool:
    found = groups.to_json()
    return all(
        found[name] is not None
        and all(abs(a - b) <= 1 for a, b in zip(found[name], span, strict=True))
        for name, span in planted.items()
    )


@pytest.mark.parametrize("shape", ["paper_plateau", "paper_slow_rise"])
def test_paper_like_curve_gives_the_planted_groups_and_holds(shape):
    for seed in range(4):
        fit, paper, final = map_layers(*cka_tables(CURVES[shape], seed), n_boot=199, seed=seed)
        assert within_one_layer(fit.structure.groups, PAPER_GROUPS), fit.structure.groups
        assert paper.verdict == "holds", paper.reason
        assert final.set_aside and fit.fit_layers == PL - 1
        assert fit.structure.groups.refinement.last == PL  # the last layer joins the last group


def test_a_last_layer_dip_leaves_the_groups_unchanged():
    dip = CURVES["paper_plateau"] - 0.4 * (PX == PL)
    for seed in range(4):
        sft, base = cka_tables(CURVES["paper_plateau"], seed)
        plain = map_layers(sft, base, n_boot=199, seed=seed)[0].structure.groups
        sft_dip, _ = cka_tables(dip, seed)
        fit, paper, final = map_layers(sft_dip, base, n_boot=199, seed=seed)
        assert within_one_layer(fit.structure.groups, plain.to_json())
        assert paper.verdict == "holds"
        assert final.mean_difference == pytest.approx(fit.mean_difference[PL])
        assert final.mean_difference < fit.mean_difference[PL - 1] - 0.2


def test_the_last_layer_alone_cannot_make_a_refinement_group():
    """A rise that only levels off at the (final-norm) last layer: no refinement group."""
    d = np.interp(PX, [1, 8, PL - 1, PL], [0.0, 0.0, 0.6, 0.6])
    fit, paper, final = map_layers(*cka_tables(d, 3, noise=0.02), n_boot=199, seed=3)
    assert fit.structure.model == "hinge" and fit.structure.groups.refinement is None
    assert paper.verdict == "partly" and not paper.test("refinement").passed


def test_all_negative_s_curve_does_not_hold():
    for seed in range(4):
        fit, paper, _ = map_layers(*cka_tables(CURVES["negative_s"], seed), n_boot=199, seed=seed)
        assert paper.verdict != "holds"
        assert not paper.test("refinement").passed and not paper.test("transition").passed


def test_a_fall_after_the_transition_is_not_refinement():
    for seed in range(3):
        fit, paper, _ = map_layers(
            *cka_tables(CURVES["rise_then_fall"], seed), n_boot=199, seed=seed
        )
        assert paper.verdict != "holds"
        no_fall = paper.test("refinement").checks[1]
        assert no_fall.name == "no_fall" and not no_fall.passed and no_fall.value < -0.2


@pytest.mark.parametrize("shape", ["convex", "saturating"])
def test_smooth_convex_and_saturating_curves_do_not_hold(shape):
    for seed in range(4):
        fit, paper, _ = map_layers(*cka_tables(CURVES[shape], seed), n_boot=199, seed=seed)
        assert paper.verdict != "holds"
        assert not paper.test("shape").passed  # one level only (or no three groups)


def test_pure_noise_gives_no_structure_at_a_bounded_rate():
    """False structure over 100 seeds at alpha 0.05 (docs/layermap.md: the same with B = 999)."""
    found = 0
    for seed in range(100):
        diff = np.subtract(*cka_tables(CURVES["noise"], seed))
        fit = find_layer_groups(diff, n_boot=99, seed=seed, fit_layers=PL - 1)
        found += fit.structure is not None
    assert found <= 10


def test_too_few_tasks_are_not_testable():
    sft, base = cka_tables(CURVES["paper_plateau"], 0, n_tasks=2)
    fit, paper, final = map_layers(sft, base, n_boot=99)
    assert paper.verdict == "not testable" and final.depends is None and fit.p_value is None


def test_p_values_at_the_floor_say_so():
    fit, paper, _ = map_layers(*cka_tables(CURVES["paper_plateau"], 0), n_boot=99)
    assert fit.p_value == pytest.approx(1 / 100)
    assert fit.to_json()["p_value_text"] == "p <= 0.01"
    rise = paper.test("transition").checks[0]
    assert rise.name == "rise" and rise.at_floor and rise.p_value == pytest.approx(1 / 100)
    assert sum(fit.structure.model_shares.values()) == pytest.approx(1.0)


def test_refits_choose_their_model_again():
    """A weak bend: some refits find no structure, and the shares say so."""
    d = np.interp(PX, [1, 5, 10, PL], [0.0, 0.0, 0.12, 0.12])
    fit = map_layers(*cka_tables(d, 5, noise=0.1), n_boot=199, seed=5)[0]
    shares = fit.structure.model_shares
    assert shares["none"] > 0.05 and shares["two_knots"] < 0.95


def cka_rows(sft, base, *, names=None, layer0=True) -> list[dict]:
    names = names or [f"t{i}" for i in range(len(sft))]
    rows = []
    for model, table in (("base", base), ("sft", sft)):
        for name, curve in zip(names, table, strict=True):
            if layer0:
                rows.append(
                    {"model": model, "task": name, "layer": 0, "cka": 1.0, "cka_biased": 1.0}
                )
            rows += [
                {"model": model, "task": name, "layer": i + 1, "cka": v, "cka_biased": v + 0.1}
                for i, v in enumerate(curve)
            ]
    return rows


def test_layer_map_from_rows_matches_map_layers_and_round_trips():
    sft, base = cka_tables(CURVES["paper_plateau"], 1)
    rows = cka_rows(sft, base)
    the_map = layer_map_from_rows(rows, n_boot=99, seed=2)
    fit, paper, final = map_layers(sft, base, n_boot=99, seed=2)
    assert the_map.fit == fit and the_map.paper_map == paper and the_map.final_norm == final
    assert the_map.biased.structure.groups == fit.structure.groups  # a constant shift
    data = json.loads(json.dumps(the_map.to_json()))
    assert data["paper_map"]["verdict"] == "holds" and data["groups"] == PAPER_GROUPS
    assert LayerMap.from_json(data) == the_map and LayerMap.from_json(data).to_json() == data


def test_layer_map_from_rows_selects_and_excludes_tasks():
    sft, base = cka_tables(CURVES["paper_plateau"], 1, n_tasks=6)
    rows = cka_rows(sft, base)
    assert layer_map_from_rows(rows, n_boot=19, tasks=["t0", "t2", "t4"]).tasks == (
        "t0",
        "t2",
        "t4",
    )
    for r in rows:
        r["seen"] = r["task"] != "t5"
        if (r["task"], r["layer"], r["model"]) == ("t1", 3, "sft"):
            r["cka"] = float("nan")
    the_map = layer_map_from_rows(rows, n_boot=19)
    assert the_map.tasks == ("t0", "t2", "t3", "t4") and the_map.excluded_tasks == ("t1",)
    no_biased = layer_map_from_rows(
        [{k: v for k, v in r.items() if k != "cka_biased"} for r in rows], n_boot=19
    )
    assert no_biased.biased.reason == "no cka_biased column"
    with pytest.raises(ValueError, match="task 't2' has no sft row for layer 7"):
        layer_map_from_rows(
            [r for r in rows if (r["task"], r["layer"], r["model"]) != ("t2", 7, "sft")]
        )
    with pytest.raises(ValueError, match="appears twice"):
        layer_map_from_rows([*rows, rows[5]])


@pytest.mark.parametrize(
    "damage, field",
    [
        (lambda d: d["paper_map"].pop("verdict"), "'paper_map.verdict' is missing"),
        (lambda d: d["paper_map"].update(verdict="maybe"), "'paper_map.verdict' must be one of"),
        (
            lambda d: d["paper_map"]["tests"][0]["checks"][0].update(passed=1),
            "'paper_map.tests[0].checks[0].passed' must be true or false",
        ),
        (
            lambda d: d["paper_map"]["tests"][1].update(passed=False),
            "'paper_map.tests[1].passed' must be True",
        ),
        (lambda d: d["final_norm"].update(layer=3), "'final_norm.layer' must be 16"),
        (lambda d: d.pop("fit_layers"), "'fit_layers' is missing"),
        (lambda d: d["model_shares"].pop("none"), "'model_shares' must be a number per"),
    ],
)
def test_from_json_names_bad_paper_map_fields(damage, field):
    sft, base = cka_tables(CURVES["paper_plateau"], 1)
    data = json.loads(json.dumps(layer_map_from_rows(cka_rows(sft, base), n_boot=49).to_json()))
    damage(data)
    with pytest.raises(ValueError, match=re.escape(field)):
        LayerMap.from_json(data)
