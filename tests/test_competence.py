"""Competence: task-metric intervals, the paired control-vs-base test and the chance level,
checked against known values, independent formulas and their coverage in simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from mossa.analysis import competence as comp
from mossa.tasks import Example, Task, Template


def test_wilson_matches_the_closed_form():
    # Wilson (1927): centre (k + z^2/2) / (n + z^2), half-width z sqrt(pq/n + z^2/4n^2)/(1+z^2/n)
    k, n, z = 7, 20, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = comp.wilson(k, n, 0.95)
    assert (low, high) == pytest.approx((100 * (centre - half), 100 * (centre + half)), abs=1e-9)
    assert comp.wilson(0, 10, 0.95)[0] == 0.0  # never below 0, unlike the Wald interval


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_wilson_exact_coverage_near_nominal(p):
    # exact coverage over all outcomes k of Binomial(100, p): no simulation noise
    n = 100
    covered = [lo <= 100 * p <= hi for lo, hi in (comp.wilson(k, n, 0.95) for k in range(n + 1))]
    coverage = float(np.sum(binom.pmf(np.arange(n + 1), n, p)[covered]))
    assert 0.92 <= coverage <= 0.98


def test_bootstrap_interval_covers_the_mean_in_simulation():
    rng = np.random.default_rng(0)
    hits = 0
    sims = 200
    for s in range(sims):
        x = 100 * rng.beta(2, 5, size=100)  # ROUGE-like, skewed, true mean 100 * 2/7
        idx = comp.resample_index(100, 400, s, "t")
        low, high = comp.interval("rouge_l", x, idx, 0.95)
        hits += low <= 100 * 2 / 7 <= high
    assert 0.89 <= hits / sims <= 0.99  # binomial sd of the coverage ~0.015


def test_mcnemar_exact_hand_computed():
    # 8 examples only control gets right, 2 only base: p = 2 * P(Bin(10, 1/2) <= 2) = 0.109375
    control = [1] * 8 + [0] * 2 + [1] * 5 + [0] * 5
    base = [0] * 8 + [1] * 2 + [1] * 5 + [0] * 5
    idx = comp.resample_index(20, 200, 0, "t")
    diff, low, high, p, test = comp.paired_test("accuracy", control, base, idx, 0.95)
    assert test == "mcnemar_exact" and p == pytest.approx(0.109375)
    assert diff == pytest.approx(30.0) and low <= diff <= high


def test_paired_bootstrap_uses_the_same_resample_for_both():
    # control = base + 5 exactly: the paired difference has no spread at all
    rng = np.random.default_rng(1)
    base = 100 * rng.random(50)
    idx = comp.resample_index(50, 300, 0, "t")
    diff, low, high, p, test = comp.paired_test("rouge_l", base + 5, base, idx, 0.95)
    assert test == "paired_bootstrap"
    assert (diff, low, high) == pytest.approx((5.0, 5.0, 5.0))
    assert p == pytest.approx(2 / 301)  # floored at 1/(B+1), two-sided


def task_with(targets, metric="accuracy"):
    examples = tuple(Example({"x": str(i)}, t) for i, t in enumerate(targets))
    return Task("t", "sentiment", True, (Template("{x}"),), examples, examples, examples,
                metric, "test")  # fmt: skip


def test_chance_is_the_majority_label_rate_of_classification_tasks():
    task = task_with(["yes", "no", "yes", "maybe"] * 5)
    chance, k = comp.chance_level(task, ["Yes", "no", "yes", "yes"])
    assert (chance, k) == (75.0, 3)
    many = task_with([f"answer {i}" for i in range(40)])
    assert comp.chance_level(many, ["answer 1"]) == (None, None)  # not a label set
    assert comp.chance_level(task_with(["a", "b"], "rouge_l"), ["a"]) == (None, None)


def record(control, base, chance=None, metric="accuracy"):
    n = len(base)
    return {
        "task": "t",
        "metric": metric,
        "n": n,
        "chance": chance,
        "base": 100 * np.mean(base),
        "sft": 100 * np.mean(base),
        "control": None if control is None else 100 * np.mean(control),
        "examples": {"base": base, "sft": base, "control": control},
    }


def test_competent_needs_control_above_base_and_chance():
    base = [0] * 80 + [1] * 20
    good = [1] * 70 + [0] * 10 + [1] * 20
    row = comp.task_metric_row(record(good, base), 0.95, 200, 0)
    assert row["competent"] and row["n"] == 100 and row["reason"] == ""
    assert row["control_low"] < row["control"] < row["control_high"]
    # same scores, but chance 85%: the control (90%, interval from ~82%) is not clearly above
    row = comp.task_metric_row(record(good, base, chance=85.0), 0.95, 200, 0)
    assert not row["competent"] and "chance" in row["reason"]
    row = comp.task_metric_row(record(base, base), 0.95, 200, 0)
    assert not row["competent"] and "not above base" in row["reason"]
    row = comp.task_metric_row(record(None, base), 0.95, 200, 0)
    assert not row["competent"] and row["reason"] == "no control"


def test_records_without_examples_are_not_checked():
    rows = comp.task_metric_rows(
        [{"task": "a", "metric": "accuracy", "base": 1.0, "sft": 2.0, "control": 3.0}],
        0.95,
        100,
        0,
    )
    assert rows[0]["reason"] == comp.NOT_CHECKED and math.isnan(rows[0]["base_low"])
    assert comp.competent_tasks(rows) is None  # nothing is left out on an unchecked run
    checked = comp.task_metric_row(record([1] * 30, [0] * 30), 0.95, 100, 0)
    assert comp.competent_tasks([checked, rows[0]]) == {"t"}


def test_paired_interval_covers_the_true_difference_in_simulation():
    # correlated per-example scores (same examples): true mean difference 5 points
    rng = np.random.default_rng(4)
    hits, sims = 0, 200
    for s in range(sims):
        ability = rng.normal(50, 15, size=80)
        base = ability + rng.normal(0, 5, size=80)
        control = ability + 5 + rng.normal(0, 5, size=80)
        idx = comp.resample_index(80, 400, s, "t")
        _, low, high, _, _ = comp.paired_test("rouge_l", control, base, idx, 0.95)
        hits += low <= 5.0 <= high
    assert 0.89 <= hits / sims <= 0.99
