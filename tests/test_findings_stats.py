"""The statistics behind the findings: Benjamini-Hochberg, t-intervals over tasks, the
data-size test on prompt subsets, and the PCA cap, against references and planted truths."""

from __future__ import annotations

import numpy as np
import pytest

from mossa import similarity
from mossa.analysis import correlations, data_size, findings, pca
from mossa.analysis.tables import TableArrays
from mossa.config import AnalysisConfig


def bh_reference(p):
    """Benjamini & Hochberg (1995) step-up, written out: q_(i) = min_{j >= i} p_(j) m / j."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return q


def test_benjamini_hochberg_against_a_textbook_example_and_a_written_out_reference():
    # Benjamini & Hochberg (1995), section 4: 15 p-values, at q = 0.05 the four smallest are
    # rejected (0.0001 .. 0.0095); the fifth (0.0201) is not, 0.0201 * 15 / 5 = 0.0603 > 0.05
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240,
         0.4262, 0.5719, 0.6528, 0.7590, 1.0000]  # fmt: skip
    q = correlations.adjust(p)
    assert np.sum(q < 0.05) == 4
    assert q == pytest.approx(bh_reference(p), abs=1e-12)
    rng = np.random.default_rng(0)
    many = rng.random(40) ** 3
    assert correlations.adjust(many) == pytest.approx(bh_reference(many), abs=1e-12)
    # undefined p-values stay undefined and are not counted in the family
    with_nan = np.array([0.01, np.nan, 0.04])
    assert np.isnan(correlations.adjust(with_nan)[1])
    assert correlations.adjust(with_nan)[[0, 2]] == pytest.approx(bh_reference([0.01, 0.04]))


def test_correlation_table_adjusts_over_the_whole_table_and_keeps_competent_tasks():
    rng = np.random.default_rng(1)
    tasks = [
        {"name": f"t{i}", "seen": True, "flesch_kincaid": rng.uniform(4, 12),
         "coleman_liau": rng.uniform(4, 12), "n_train": int(rng.integers(100, 900))}
        for i in range(6)
    ]  # fmt: skip
    cka = [
        {"model": m, "task": t["name"], "layer": layer, "cka": float(rng.random())}
        for m in ("base", "sft")
        for t in tasks
        for layer in range(3)
    ]
    rows = correlations.correlation_rows(cka, tasks)
    assert [r["p_adjusted"] for r in rows] == pytest.approx(
        list(bh_reference([r["p_value"] for r in rows]))
    )
    kept = correlations.correlation_rows(cka, tasks, keep={"t0", "t1", "t2", "t3"})
    assert {r["n_tasks"] for r in kept} == {4} and {r["n_tasks"] for r in rows} == {6}


def test_mean_interval_is_a_t_interval_with_nominal_coverage():
    rng = np.random.default_rng(2)
    hits = sum(
        (ci := findings.mean_interval(rng.exponential(1.0, size=12)))["ci_low"]
        <= 1.0
        <= ci["ci_high"]
        for _ in range(400)
    )
    assert 0.88 <= hits / 400 <= 0.98  # skewed data, n = 12: close to 0.95
    assert np.isnan(findings.mean_interval([0.3])["ci_low"])


def test_data_size_rows_recompute_cka_on_prompt_subsets():
    rng = np.random.default_rng(3)
    control = rng.standard_normal((3, 40, 6))
    states = {
        "control": control,
        "base": rng.standard_normal((3, 40, 6)),
        "sft": control @ rng.standard_normal((6, 6)),  # a linear map of the control
    }
    rows = data_size.data_size_rows(states, "t", AnalysisConfig(), seed=0)
    assert sorted({r["n_prompts"] for r in rows}) == [10, 20, 30, 40]
    full = {r["layer"]: r["cka"] for r in rows if r["model"] == "base" and r["n_prompts"] == 40}
    expected = similarity.cka(states["base"], control)
    assert [full[layer] for layer in range(3)] == pytest.approx(list(expected))
    sft = [r for r in rows if r["model"] == "sft"]
    assert all(r["cka"] > 0.5 for r in sft)  # shared structure at every subset size
    assert {r["draws"] for r in rows if r["n_prompts"] < 40} == {data_size.DRAWS}


def arrays(n_tasks: int, n_layers: int = 4) -> TableArrays:
    names = [f"t{i}" for i in range(n_tasks)]
    return TableArrays(
        tasks=names, cluster=dict.fromkeys(names, "c"), seen=dict.fromkeys(names, True),
        n=dict.fromkeys(names, 40), n_layers=n_layers, cka={}, pca={}, correlations={},
        clustering={}, tsne=[], metrics=[], cross={},
    )  # fmt: skip


def planted_sizes(n_tasks: int, slope: float, seed: int) -> list[dict]:
    """data_size.csv rows: CKA = level + slope * log2(n) + noise for every task and layer."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_tasks):
        level = rng.uniform(0.2, 0.8)
        for model in ("base", "sft"):
            for layer in range(5):
                for n in (10, 20, 30, 40):
                    value = level + slope * np.log2(n) + 0.01 * rng.standard_normal()
                    rows.append({"model": model, "task": f"t{i}", "layer": layer,
                                 "n_prompts": n, "draws": 5, "cka": value})  # fmt: skip
    return rows


def test_prompt_size_test_finds_a_planted_drift_and_not_noise():
    flat = findings.prompt_size_test(arrays(8), planted_sizes(8, 0.0, 4))
    assert flat["testable"] and flat["n_tests"] == 8 and flat["adjusted"] <= 1
    drift = findings.prompt_size_test(arrays(8), planted_sizes(8, -0.05, 5))
    assert drift["adjusted"] == 8  # every model and layer
    assert drift["sft"]["largest_slope"]["value"] == pytest.approx(-0.05, abs=0.01)
    few = findings.prompt_size_test(arrays(2), planted_sizes(2, -0.05, 6))
    assert not few["testable"] and "2 tasks" in few["reason"]
    assert not findings.prompt_size_test(arrays(8), None)["testable"]


def test_pca_counts_at_n_minus_one_are_flagged():
    rng = np.random.default_rng(7)
    wide = rng.standard_normal((2, 6, 32))  # 6 prompts, 32 features: 5 dims at most
    rows = pca.pca_rows("base", "t", wide, 0.99)
    assert {r["dims99"] for r in rows} == {5} and all(r["capped"] for r in rows)
    low_rank = rng.standard_normal((1, 40, 2)) @ rng.standard_normal((2, 32))
    assert pca.pca_rows("base", "t", low_rank, 0.99)[0]["capped"] is False


def test_spearman_test_is_exact_for_few_layers():
    from scipy.stats import spearmanr

    rho, p = findings.spearman_test(range(4), [0.9, 0.8, 0.7, 0.6])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(2 / 24)  # 2 of 4! orderings
    rng = np.random.default_rng(8)
    y = -np.arange(30) + rng.normal(0, 10, 30)
    rho, p = findings.spearman_test(np.arange(30), y)
    ref = spearmanr(np.arange(30), y)
    assert rho == pytest.approx(ref.statistic) and p < 0.01 and ref.pvalue < 0.01
