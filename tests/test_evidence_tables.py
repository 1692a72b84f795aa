"""The evidence tables of issue 13: the paired SFT-minus-base difference, task specificity
and the noise ceiling. Statistics against references and planted truths; the run's
planning of cross-task controls and control seeds; the tables of a demo-smoke run."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import reference_cka as ref
from conftest import mossa_cmd
from mossa.analysis.evidence import task_evidence
from mossa.config import AnalysisConfig, load_config
from mossa.pipeline.extract import plan_jobs as extraction_jobs
from mossa.pipeline.plan import make_plan
from mossa.run_dir import control_adapter, cross_task_controls
from mossa.similarity import (
    ContrastResult,
    bootstrap_ci,
    bootstrap_replicates,
    contrast_interval,
    paired_bootstrap,
)

ANALYSIS = AnalysisConfig(bootstrap=200)


def population_cka(a: np.ndarray, noise: float) -> float:
    """Linear CKA between x = z A + noise·e and z (z, e standard normal): the population value.

    Σxy = Aᵀ, Σxx = AᵀA + noise² I, Σzz = I, so CKA = ||A||²_F / (||AᵀA + noise² I||_F √d).
    """
    d = a.shape[0]
    sxx = a.T @ a + noise**2 * np.eye(a.shape[1])
    return float(np.sum(a**2) / (np.linalg.norm(sxx) * np.sqrt(d)))


def planted_models(rng, sets: int, n: int, d: int, a_sft, a_base, noise_sft, noise_base):
    """``sets`` independent datasets (as layers) of a control z and two models of it."""
    z = rng.standard_normal((sets, n, d))
    sft = z @ a_sft + noise_sft * rng.standard_normal((sets, n, a_sft.shape[1]))
    base = z @ a_base + noise_base * rng.standard_normal((sets, n, a_base.shape[1]))
    return z, sft, base


# ------------------------------------------------------------------ the paired bootstrap


def test_replicates_are_those_of_bootstrap_ci_and_the_estimate_matches_a_reference():
    rng = np.random.default_rng(0)
    z, sft, base = planted_models(rng, 3, 25, 4, np.eye(4), np.eye(4), 0.5, 2.0)
    estimates, samples = bootstrap_replicates([(sft, z), (base, z)], n_boot=30, seed=4)
    for p, x in enumerate((sft, base)):
        single = bootstrap_ci(x, z, n_boot=30, seed=4)
        np.testing.assert_allclose(samples[:, p], single.samples, atol=1e-12)
        np.testing.assert_allclose(estimates[p], ref.cka(x, z, "linear", True), atol=1e-10)
    result = paired_bootstrap([(sft, z), (base, z)], n_boot=30, seed=4)
    assert isinstance(result, ContrastResult)
    np.testing.assert_allclose(result.estimate, estimates[0] - estimates[1], atol=1e-12)
    np.testing.assert_allclose(result.samples, samples[:, 0] - samples[:, 1], atol=1e-12)
    two_d = paired_bootstrap([(sft[0], z[0]), (base[0], z[0])], n_boot=30, seed=4)
    assert isinstance(two_d.estimate, float) and two_d.samples.shape == (30,)
    assert two_d.estimate == pytest.approx(result.estimate[0])


def test_paired_interval_covers_the_planted_difference():
    """150 datasets (as layers) with a known population difference of linear CKA."""
    rng = np.random.default_rng(7)
    a_sft, a_base = np.eye(4), np.diag([1.0, 1.0, 0.3, 0.3])
    truth = population_cka(a_sft, 0.8) - population_cka(a_base, 0.8)
    assert truth > 0.1
    z, sft, base = planted_models(rng, 150, 80, 4, a_sft, a_base, 0.8, 0.8)
    result = paired_bootstrap([(sft, z), (base, z)], n_boot=200, seed=1)
    covered = np.mean((result.low <= truth) & (truth <= result.high))
    assert 0.88 <= covered <= 0.99, covered
    assert abs(np.mean(result.estimate) - truth) < 0.02
    assert np.mean(result.p_value < 0.05) > 0.8  # the difference is found
    assert result.p_value.min() == pytest.approx(2 / 201)  # the two-sided floor


def test_p_value_is_calibrated_when_the_terms_are_exchangeable():
    rng = np.random.default_rng(3)
    z, sft, base = planted_models(rng, 200, 60, 4, np.eye(4), np.eye(4), 1.0, 1.0)
    result = paired_bootstrap([(sft, z), (base, z)], n_boot=200, seed=2)
    rejected = np.mean(result.p_value < 0.05)
    assert rejected < 0.12, rejected
    covered = np.mean((result.low <= 0) & (0 <= result.high))
    assert covered > 0.88, covered


def test_paired_interval_is_narrower_than_independent_resamples():
    """SFT = base + a little: the terms move together, and pairing cancels what they share."""
    rng = np.random.default_rng(5)
    z, base, _ = planted_models(rng, 40, 60, 4, np.eye(4), np.eye(4), 1.0, 1.0)
    sft = base + 0.3 * rng.standard_normal(base.shape)
    paired = paired_bootstrap([(sft, z), (base, z)], n_boot=200, seed=1)
    one, two = bootstrap_ci(sft, z, n_boot=200, seed=11), bootstrap_ci(base, z, n_boot=200, seed=12)
    unpaired = np.quantile(one.samples - two.samples, [0.025, 0.975], axis=0)
    ratio = (paired.high - paired.low) / (unpaired[1] - unpaired[0])
    assert np.median(ratio) < 0.6, np.median(ratio)


def test_a_constant_contrast_is_not_significant():
    """A layer every model shares (CKA 1 everywhere): rounding must not give a small p."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 5))
    result = paired_bootstrap([(x, x), (x, x), (x, x)], (1.0, -0.5, -0.5), n_boot=50, seed=0)
    assert abs(result.estimate) < 1e-12 and result.p_value == 1.0


def test_bad_input_names_the_argument():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="pairs must all have the same layers and rows"):
        paired_bootstrap([(x, y), (x[:8], y[:8])])
    with pytest.raises(ValueError, match="pairs must be a non-empty list"):
        paired_bootstrap([])
    with pytest.raises(ValueError, match="weights must have one entry per pair"):
        paired_bootstrap([(x, y), (y, x)], (1.0, -1.0, 0.0))
    est, samples = bootstrap_replicates([(x, y)], n_boot=5)
    with pytest.raises(ValueError, match="weights must be finite"):
        contrast_interval(est, samples, [np.nan])
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap([(x, y), (y, x)], n_boot=0)


# ------------------------------------------------------------------ specificity, ceiling


def task_states(rng, *, own_closer: bool, n: int = 60, d: int = 6, layers: int = 30):
    """States of one task: a shared drift s, controls that follow it, SFT and base.

    Every control is s plus its own noise; the own control (``own_closer``) also carries
    the task-specific part t that SFT learned.
    """
    s = rng.standard_normal((layers, n, d))
    t = rng.standard_normal((layers, n, d))
    specific = t if own_closer else 0.0

    def noisy(x):
        return x + 0.8 * rng.standard_normal((layers, n, d))

    return {
        "base": noisy(s),
        "sft": noisy(s + specific),
        "control": noisy(s + specific),
        **{f"control__o{i}": noisy(s) for i in range(3)},
        "control__t__seed1": noisy(s + specific),
    }


TASK = {"name": "t", "cluster": "c", "seen": True}


def rows_by_model(rows: list[dict], column: str) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r.get("model", ""), []).append(r[column])
    return {k: np.array(v) for k, v in out.items()}


def test_specificity_is_zero_for_exchangeable_controls_and_positive_when_planted():
    rng = np.random.default_rng(2)
    others = ["control__o0", "control__o1", "control__o2"]
    found = task_evidence(
        task_states(rng, own_closer=False), TASK, others=others, seeds=[], analysis=ANALYSIS, seed=0
    )
    spec = rows_by_model(found["specificity"], "specificity")
    low = rows_by_model(found["specificity"], "ci_low")
    high = rows_by_model(found["specificity"], "ci_high")
    for model in ("base", "sft"):
        assert abs(spec[model].mean()) < 0.03, spec[model].mean()
        assert np.mean((low[model] <= 0) & (0 <= high[model])) > 0.85
    assert {r["k"] for r in found["specificity"]} == {3} and found["ceiling"] == []

    planted = task_evidence(
        task_states(rng, own_closer=True), TASK, others=others, seeds=[], analysis=ANALYSIS, seed=0
    )
    spec = rows_by_model(planted["specificity"], "specificity")
    low = rows_by_model(planted["specificity"], "ci_low")
    assert np.all(low["sft"] > 0) and spec["sft"].mean() > 0.2
    # base lacks the task-specific part the own control carries: it sits closer to the others
    assert spec["base"].mean() < 0 and spec["sft"].mean() > spec["base"].mean() + 0.3


def test_ceiling_is_one_for_identical_seeds_and_below_for_different_ones():
    rng = np.random.default_rng(4)
    states = task_states(rng, own_closer=True)
    states["control__t__seed1"] = states["control"].copy()
    found = task_evidence(
        states, TASK, others=[], seeds=["control__t__seed1"], analysis=ANALYSIS, seed=0
    )
    ceiling = np.array([r["ceiling"] for r in found["ceiling"]])
    np.testing.assert_allclose(ceiling, 1.0, atol=1e-9)
    assert found["specificity"] == [] and {r["n_seeds"] for r in found["ceiling"]} == {2}
    rel = np.array([r["sft_relative"] for r in found["ceiling"]])
    sft = np.array([r["sft_cka"] for r in found["ceiling"]])
    np.testing.assert_allclose(rel, sft, atol=1e-9)

    different = task_evidence(
        task_states(rng, own_closer=True),
        TASK,
        others=[],
        seeds=["control__t__seed1"],
        analysis=ANALYSIS,
        seed=0,
    )
    rows = different["ceiling"]
    assert all(r["ci_low"] <= r["ceiling"] <= r["ci_high"] < 1 for r in rows)
    # SFT is made like the seeds here, so it sits at the ceiling: relative ~ 1
    assert abs(np.mean([r["sft_relative"] for r in rows]) - 1) < 0.1


def test_diff_rows_hold_debiased_and_biased_differences():
    rng = np.random.default_rng(6)
    states = task_states(rng, own_closer=True, layers=3)
    found = task_evidence(states, TASK, others=[], seeds=[], analysis=ANALYSIS, seed=0)
    rows = found["cka_diff"]
    assert [r["layer"] for r in rows] == [0, 1, 2] and {r["n"] for r in rows} == {60}
    for layer, r in enumerate(rows):
        debiased = [
            ref.cka(states[m][layer], states["control"][layer], "linear", True)
            for m in ("sft", "base")
        ]
        biased = [
            ref.cka(states[m][layer], states["control"][layer], "linear", False)
            for m in ("sft", "base")
        ]
        assert r["diff"] == pytest.approx(debiased[0] - debiased[1], abs=1e-9)
        assert r["diff_biased"] == pytest.approx(biased[0] - biased[1], abs=1e-9)
        assert r["ci_low"] <= r["diff"] <= r["ci_high"]
        assert r["biased_ci_low"] <= r["diff_biased"] <= r["biased_ci_high"]
        assert 0 < r["p_value"] <= 1


# ------------------------------------------------------------------ planning


def suite(n: int, unseen: int = 0) -> list[dict]:
    return [{"name": f"t{i}", "cluster": "c", "seen": i >= unseen} for i in range(n)]


def test_cross_task_controls_are_k_others_chosen_by_seed_not_order():
    tasks = suite(8)
    chosen = cross_task_controls(tasks, controls="all", k=3, cross_task=False, seed=0)
    assert set(chosen) == {t["name"] for t in tasks}
    for task, others in chosen.items():
        assert len(others) == 3 and task not in others and others == sorted(set(others))
    reordered = cross_task_controls(tasks[::-1], controls="all", k=3, cross_task=False, seed=0)
    assert reordered == chosen
    other_seed = cross_task_controls(tasks, controls="all", k=3, cross_task=False, seed=1)
    assert other_seed != chosen
    every = cross_task_controls(tasks, controls="all", k=3, cross_task=True, seed=0)
    assert all(len(v) == 7 for v in every.values())
    assert cross_task_controls(tasks, controls="all", k=0, cross_task=False, seed=0) == {
        t["name"]: [] for t in tasks
    }
    seen_only = cross_task_controls(
        suite(5, unseen=2), controls="seen", k=2, cross_task=False, seed=0
    )
    assert set(seen_only) == {"t2", "t3", "t4"}
    assert all(set(v) <= {"t2", "t3", "t4"} for v in seen_only.values())


def test_too_many_cross_task_controls_name_the_key_and_the_most():
    with pytest.raises(ValueError, match=r"analysis.cross_task_controls=3: .* at most 2"):
        cross_task_controls(suite(3), controls="all", k=3, cross_task=False, seed=0)
    with pytest.raises(ValueError, match=r"analysis.cross_task_controls=3: .* at most 1"):
        cross_task_controls(suite(4, unseen=2), controls="seen", k=3, cross_task=False, seed=0)


def test_extraction_runs_the_chosen_controls_and_the_extra_seeds():
    tasks = suite(4)
    cross = cross_task_controls(tasks, controls="all", k=2, cross_task=False, seed=0)
    jobs = extraction_jobs(tasks, controls="all", cross=cross, control_seeds=3)
    entries = {(model, task): adapter for adapter, model, task in jobs}
    assert len(entries) == len(jobs) == 4 * (2 + 1 + 2 + 2)
    for task, others in cross.items():
        assert entries[("control", task)] == control_adapter(task)
        for other in others:
            assert entries[(control_adapter(other), task)] == control_adapter(other)
        for replica in (1, 2):
            name = control_adapter(task, replica)
            assert name == f"control__{task}__seed{replica}" and entries[(name, task)] == name
    assert [j[0] for j in jobs[:8]] == [None] * 4 + ["sft"] * 4


def test_training_plans_every_control_seed_with_its_own_seed():
    from mossa.pipeline.tasks import load_run_tasks
    from mossa.training.jobs import adapter_dir_name, plan_jobs

    one = load_config(profile="demo-smoke")
    two = load_config(profile="demo-smoke", overrides=["training.control_seeds=2"])
    tasks = load_run_tasks(one)
    jobs_one, jobs_two = plan_jobs(tasks, one), plan_jobs(tasks, two)
    assert jobs_two[: len(jobs_one)] == jobs_one  # seed 0: names, data and seeds unchanged
    extra = jobs_two[len(jobs_one) :]
    assert len(extra) == len(tasks)
    for job, first in zip(extra, jobs_one[1:], strict=True):
        assert job.name == first.name + "@seed1"
        assert job.dir_name == first.dir_name + "__seed1"
        assert job.train == first.train and job.seed != first.seed
    with pytest.raises(ValueError, match="job name must be"):
        adapter_dir_name("control:t@seed0")


def test_dry_run_plan_counts_control_seeds_and_cross_task_extraction():
    base = make_plan(
        load_config(profile="llama2-7b-flan", overrides=["analysis.cross_task_controls=0"])
    )
    more = make_plan(
        load_config(
            profile="llama2-7b-flan",
            overrides=["analysis.cross_task_controls=3", "training.control_seeds=2"],
        )
    )
    n = base["tasks"]["total"]
    assert len(more["jobs"]) == 1 + 2 * n
    assert more["extraction"]["entries"] == n * (3 + 3 + 1)
    assert base["extraction"]["entries"] == 3 * n
    assert more["activation_disk_gb"] == pytest.approx(base["activation_disk_gb"] * 7 / 3)
    assert more["gpu_hours"]["extraction"] == pytest.approx(base["gpu_hours"]["extraction"] * 7 / 3)
    with pytest.raises(ValueError, match="analysis.cross_task_controls=99"):
        make_plan(load_config(profile="demo-smoke", overrides=["analysis.cross_task_controls=99"]))


# ------------------------------------------------------------------ a run


@pytest.fixture(scope="module")
def seeds_run(tmp_path_factory, smoke_env):
    """`mossa run --profile demo-smoke --set training.control_seeds=2` (issue 13's command),
    with SFT snapshots every 2 steps (issue 16's) and every measure (issue 18's) in the
    same run, so one smoke run checks all three."""
    out = tmp_path_factory.mktemp("seeds")
    cmd = mossa_cmd(
        "run",
        "--profile",
        "demo-smoke",
        "--set",
        "training.control_seeds=2",
        "--set",
        "training.snapshot_every=2",
        "--set",
        "analysis.measures=[cka,procrustes,mutual_knn,rsa]",
        "--set",
        "analysis.knn_k=5",
        "--out",
        str(out),
    )
    done = subprocess.run(cmd, capture_output=True, text=True, env=smoke_env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_run_with_two_control_seeds_writes_the_three_tables(seeds_run):
    tasks = [t["name"] for t in json.loads((seeds_run / "tasks/tasks.json").read_text())["tasks"]]
    layers = {int(r["layer"]) for r in read_csv(seeds_run / "tables/cka.csv")}
    diff = read_csv(seeds_run / "tables/cka_diff.csv")
    spec = read_csv(seeds_run / "tables/specificity.csv")
    ceiling = read_csv(seeds_run / "tables/ceiling.csv")
    assert len(diff) == len(ceiling) == len(tasks) * len(layers)
    assert len(spec) == 2 * len(tasks) * len(layers) and {r["k"] for r in spec} == {"3"}
    assert {r["n_seeds"] for r in ceiling} == {"2"}
    cka = {
        (r["model"], r["task"], r["layer"]): float(r["cka"])
        for r in read_csv(seeds_run / "tables/cka.csv")
    }
    for r in diff:
        expected = cka[("sft", r["task"], r["layer"])] - cka[("base", r["task"], r["layer"])]
        assert float(r["diff"]) == pytest.approx(expected, abs=1e-8)
        assert 0 < float(r["p_value"]) <= 1
    for r in ceiling:
        assert float(r["sft_cka"]) == pytest.approx(cka[("sft", r["task"], r["layer"])], abs=1e-8)
    checksums = json.loads((seeds_run / "tables/checksums.json").read_text())
    names = json.dumps(checksums)
    assert all(f"{t}.csv" in names for t in ("cka_diff", "specificity", "ceiling"))
    adapters = {p.name for p in (seeds_run / "adapters").iterdir()}
    assert {f"control__{t}__seed1" for t in tasks} <= adapters
    assert (seeds_run / "adapters" / f"control__{tasks[0]}__seed1" / "checksums.json").is_file()


@pytest.mark.slow
def test_a_missing_control_seed_entry_is_named_with_the_command(
    seeds_run, tmp_path, monkeypatch, capsys
):
    import shutil

    from conftest import run_main

    run = tmp_path / "run"
    shutil.copytree(seeds_run, run)
    gone = sorted((run / "activations").glob("control__*__seed1/*.safetensors"))[0]
    gone.unlink()
    code, _, err = run_main(monkeypatch, capsys, "analyze", str(run))
    assert code == 2
    assert str(gone) in err and f"mossa extract {run}" in err


def test_run_refuses_too_many_cross_task_controls_before_training(
    tmp_path, smoke_env, monkeypatch, capsys
):
    from conftest import run_main

    monkeypatch.setenv("MOSSA_CACHE_DIR", smoke_env["MOSSA_CACHE_DIR"])
    args = ("--profile", "demo-smoke", "--set", "analysis.cross_task_controls=40")
    code, _, err = run_main(monkeypatch, capsys, "run", *args, "--out", str(tmp_path))
    assert code == 2
    assert "analysis.cross_task_controls=40" in err and "at most" in err
    assert not (tmp_path / "adapters").exists()


@pytest.mark.slow
def test_snapshots_give_the_three_over_training_tables(seeds_run):
    """Issue 16: cka_over_training.csv, layer_map_over_training.json and
    clustering_over_training.csv over >= 3 snapshot steps, every task and layer."""
    tables = seeds_run / "tables"
    tasks = [t["name"] for t in json.loads((seeds_run / "tasks/tasks.json").read_text())["tasks"]]
    layers = {int(r["layer"]) for r in read_csv(tables / "cka.csv")}
    steps = sorted(
        int(p.name.split("-")[1]) for p in (seeds_run / "adapters/sft/snapshots").iterdir()
    )
    assert steps == [2, 4, 6]
    over = read_csv(tables / "cka_over_training.csv")
    assert {(int(r["step"]), r["task"], int(r["layer"])) for r in over} == {
        (s, t, layer) for s in steps for t in tasks for layer in layers
    }
    assert all(float(r["diff_ci_low"]) <= float(r["diff_ci_high"]) for r in over)
    assert all(r["specificity"] != "nan" for r in over)  # k = 3 other controls
    maps = json.loads((tables / "layer_map_over_training.json").read_text())
    assert maps["steps"] == steps and [m["step"] for m in maps["maps"]] == steps
    assert all(
        m["paper_map"] in ("holds", "partly", "does not hold", "not testable") for m in maps["maps"]
    )
    clustering = read_csv(tables / "clustering_over_training.csv")
    assert {int(r["step"]) for r in clustering} == {0, *steps}
    assert {(r["split"], r["labels"]) for r in clustering} >= {
        ("seen", "task"),
        ("seen", "cluster"),
    }
    html = (seeds_run / "report.html").read_text()
    assert 'id="part-over-training"' in html
    for name in ("over_training_diff", "over_training_groups", "over_training_ari"):
        assert (seeds_run / "figures" / f"{name}.png").is_file(), name


@pytest.mark.slow
def test_every_measure_gets_its_rows_and_layer_map(seeds_run):
    """Issue 18: per-measure rows with calibration and the measures' agreement per layer."""
    tables = seeds_run / "tables"
    rows = read_csv(tables / "measures.csv")
    assert {r["measure"] for r in rows} == {"procrustes", "mutual_knn", "rsa"}
    assert all(float(r["ci_low"]) <= float(r["ci_high"]) for r in rows)
    maps = json.loads((tables / "layer_groups_by_measure.json").read_text())
    assert list(maps["measures"]) == ["cka", "procrustes", "mutual_knn", "rsa"]
    n_layers = max(int(r["layer"]) for r in rows)
    assert [a["layer"] for a in maps["agreement"]] == list(range(1, n_layers + 1))
    assert "layer_groups_by_measure.json" in json.loads((tables / "checksums.json").read_text())
