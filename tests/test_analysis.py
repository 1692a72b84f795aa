"""`mossa analyze` on synthetic runs with planted structure: every table, checked."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import pearsonr

import reference_cka as ref
from mossa.analysis.layer_map import LayerMap
from mossa.analysis.synthetic import make_synthetic_run
from mossa.analysis.tables import SCHEMAS, read_table, read_table_json, write_json
from mossa.config import AnalysisConfig
from mossa.pipeline.analyze import run_analysis
from mossa.run_dir import RunDir
from mossa.store import ActivationStore

L, SEEN, UNSEEN, N, D = 12, 8, 2, 40, 32
PLANTED = (5, 8)  # transition layers 5..8: shared 1-4, transition 5-8, refinement 9-12
SMALL = {"permutations": 30, "bootstrap": 30, "group_bootstrap": 200}


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("planted")
    analysis = AnalysisConfig(**SMALL, tsne_layers=[L], tsne_perplexity=10)
    cfg = make_synthetic_run(
        run,
        n_layers=L,
        n_tasks=SEEN,
        n_unseen=UNSEEN,
        n=N,
        d=D,
        boundaries=PLANTED,
        analysis=analysis,
        seed=0,
    )
    run_analysis(run, cfg)
    return run


@pytest.fixture(scope="module")
def noise_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("noise")
    cfg = make_synthetic_run(
        run,
        n_layers=L,
        n_tasks=SEEN,
        n_unseen=0,
        n=N,
        d=D,
        boundaries=None,
        analysis=AnalysisConfig(**SMALL, tsne_layers=[]),
        seed=1,
    )
    run_analysis(run, cfg)
    return run


def tasks_of(run):
    return RunDir(run).read_tasks()


def test_every_table_has_its_schema(planted_run):
    tables = planted_run / "tables"
    optional = {"measures", "cka_over_training", "clustering_over_training"}  # when asked for
    assert all(not (tables / f"{name}.csv").exists() for name in optional)
    for name, columns in SCHEMAS.items():
        if name in optional:
            continue
        header = (tables / f"{name}.csv").read_text().splitlines()[0]
        assert tuple(header.split(",")) == columns, name
    assert json.loads((tables / "layer_groups.json").read_text())["structure"] in (True, False)


def test_cka_table_covers_every_layer_task_and_model_with_valid_ranges(planted_run):
    rows = read_table(planted_run / "tables" / "cka.csv", "cka")
    tasks = tasks_of(planted_run)
    keys = {(r["model"], r["task"], r["layer"]) for r in rows}
    expected = {
        (m, t["name"], layer) for m in ("base", "sft") for t in tasks for layer in range(L + 1)
    }
    assert keys == expected and len(rows) == len(expected)
    by_task = {t["name"]: t for t in tasks}
    for r in rows:
        assert (
            r["seen"] == by_task[r["task"]]["seen"]
            and r["cluster"] == by_task[r["task"]]["cluster"]
        )
        assert r["n"] == N
        assert 0.0 - 1e-9 <= r["cka_biased"] <= 1.0 + 1e-9
        assert -1.0 - 1e-9 <= r["cka"] <= 1.0 + 1e-9
    inside = np.mean([r["ci_low"] - 1e-9 <= r["cka"] <= r["ci_high"] + 1e-9 for r in rows])
    assert inside > 0.9


def test_cka_values_match_an_independent_reference(planted_run):
    rows = {
        (r["model"], r["task"], r["layer"]): r
        for r in read_table(planted_run / "tables" / "cka.csv", "cka")
    }
    store = ActivationStore(planted_run / "activations")
    for task in ("task00", "task09"):
        control, _ = store.load("control", task)
        for model in ("base", "sft"):
            hidden, _ = store.load(model, task)
            for layer in (1, 6, L):
                r = rows[(model, task, layer)]
                assert r["cka"] == pytest.approx(ref.cka(hidden[layer], control[layer]), abs=1e-6)
                biased = ref.cka(hidden[layer], control[layer], debiased=False)
                assert r["cka_biased"] == pytest.approx(biased, abs=1e-6)


def test_null_is_small_for_independent_states_and_cka_is_near_zero(noise_run):
    rows = read_table(noise_run / "tables" / "cka.csv", "cka")
    upper = [r for r in rows if r["layer"] >= 1]
    assert max(r["null_p95"] for r in upper) < 0.2
    assert abs(np.mean([r["cka"] for r in upper])) < 0.03
    # With unrelated states, CKA exceeds its own null p95 about 5% of the time.
    assert np.mean([r["cka"] > r["null_p95"] for r in upper]) < 0.15


def test_cross_layer_matrices_have_both_models_and_match_the_diagonal(planted_run):
    rows = {
        (r["model"], r["task"], r["layer"]): r["cka"]
        for r in read_table(planted_run / "tables" / "cka.csv", "cka")
    }
    for task in tasks_of(planted_run):
        with np.load(planted_run / "tables" / "cka_cross_layer" / f"{task['name']}.npz") as data:
            assert set(data.files) == {"sft", "base"}
            for model in ("sft", "base"):
                assert data[model].shape == (L + 1, L + 1)
                diag = [rows[(model, task["name"], layer)] for layer in range(L + 1)]
                np.testing.assert_allclose(np.diag(data[model]), diag, atol=1e-6)


def test_pca_dims_match_a_plain_svd(planted_run):
    rows = read_table(planted_run / "tables" / "pca_dims.csv", "pca_dims")
    assert {r["model"] for r in rows} == {"base", "sft", "control"}
    assert len(rows) == 3 * (SEEN + UNSEEN) * (L + 1)
    hidden, _ = ActivationStore(planted_run / "activations").load("sft", "task03")
    got = {r["layer"]: r["dims99"] for r in rows if r["model"] == "sft" and r["task"] == "task03"}
    for layer in (0, 5, L):
        assert got[layer] == ref.pca_dims(hidden[layer], 0.99)


def test_readability_correlation_recovers_the_planted_sign(planted_run):
    rows = read_table(planted_run / "tables" / "correlations.csv", "correlations")
    assert {r["measure"] for r in rows} == {"flesch_kincaid", "coleman_liau", "data_size"}
    assert {r["model"] for r in rows} == {"base", "sft"}
    fk = {
        r["layer"]: r["pearson_r"]
        for r in rows
        if r["model"] == "sft" and r["measure"] == "flesch_kincaid"
    }
    assert np.mean([fk[layer] for layer in range(PLANTED[1] + 1, L + 1)]) > 0.6
    # The same number from scipy on the raw tables.
    cka = {
        (r["task"], r["layer"]): r["cka"]
        for r in read_table(planted_run / "tables" / "cka.csv", "cka")
        if r["model"] == "sft"
    }
    seen = [t for t in tasks_of(planted_run) if t["seen"]]
    r_ref = pearsonr(
        [cka[(t["name"], L)] for t in seen], [t["flesch_kincaid"] for t in seen]
    ).statistic
    assert fk[L] == pytest.approx(r_ref, abs=1e-9)
    for r in rows:
        assert np.isnan(r["p_value"]) or 0.0 <= r["p_value"] <= 1.0


def test_readability_table_mirrors_tasks(planted_run):
    rows = read_table(planted_run / "tables" / "readability.csv", "readability")
    tasks = tasks_of(planted_run)
    assert [r["task"] for r in rows] == [t["name"] for t in tasks]
    assert rows[0]["flesch_kincaid"] == pytest.approx(tasks[0]["flesch_kincaid"])


def test_clustering_ari_is_high_where_clusters_are_planted(planted_run):
    rows = read_table(planted_run / "tables" / "clustering.csv", "clustering")
    ari = {(r["model"], r["layer"]): r["ari"] for r in rows}
    assert min(ari[("sft", layer)] for layer in range(PLANTED[1], L + 1)) > 0.8
    assert max(ari[("base", layer)] for layer in range(1, L + 1)) < 0.5
    assert max(ari[("sft", layer)] for layer in range(1, PLANTED[0] - 1)) < 0.5
    sil = {(r["model"], r["layer"]): r["silhouette"] for r in rows}
    assert sil[("sft", L)] > sil[("base", L)] + 0.1


def test_tsne_rows_for_requested_layers(planted_run):
    rows = read_table(planted_run / "tables" / "tsne.csv", "tsne")
    assert {(r["model"], r["layer"]) for r in rows} == {("base", L), ("sft", L)}
    assert sum(1 for r in rows if r["model"] == "sft" and r["layer"] == L) == SEEN * N
    assert all(np.isfinite(r["x"]) and np.isfinite(r["y"]) for r in rows)


def test_layer_groups_recover_the_planted_boundaries(planted_run):
    groups = json.loads((planted_run / "tables" / "layer_groups.json").read_text())
    assert groups["structure"] is True and groups["model"] == "two_knots"
    spans = [groups["groups"][k] for k in ("shared", "transition", "refinement")]
    assert [x for lo, hi in spans for x in range(lo, hi + 1)] == list(range(1, L + 1))
    assert abs(groups["boundaries"]["transition_start"] - PLANTED[0]) <= 1
    assert abs(groups["boundaries"]["refinement_start"] - (PLANTED[1] + 1)) <= 1
    assert groups["tasks"] == [f"task{i:02d}" for i in range(SEEN)]
    assert groups["biased"]["structure"] is True


def test_layer_map_round_trips_byte_for_byte(planted_run, tmp_path):
    path = planted_run / "tables" / "layer_groups.json"
    layer_map = read_table_json(path, LayerMap.from_json)
    assert layer_map.fit.structure and layer_map.tasks == tuple(f"task{i:02d}" for i in range(SEEN))
    assert LayerMap.from_json(layer_map.to_json()) == layer_map
    write_json(tmp_path / "again.json", layer_map.to_json())
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_layer_groups_report_no_structure_on_noise(noise_run):
    groups = json.loads((noise_run / "tables" / "layer_groups.json").read_text())
    assert groups["structure"] is False and groups["reason"]
    assert groups["groups"] is None


def test_task_metrics_copied_from_evaluation(planted_run, noise_run):
    rows = read_table(planted_run / "tables" / "task_metrics.csv", "task_metrics")
    source = json.loads((planted_run / "eval" / "task_metrics.json").read_text())
    assert [(r["task"], r["sft"]) for r in rows] == [
        (s["task"], pytest.approx(s["sft"])) for s in source
    ]


def small_noise_run(run_dir, **analysis):
    """A 3-layer, 3-task synthetic run without planted structure and few resamples."""
    return make_synthetic_run(
        run_dir,
        n_layers=3,
        n_tasks=3,
        n_unseen=0,
        n=8,
        d=4,
        boundaries=None,
        analysis=AnalysisConfig(permutations=5, bootstrap=5, group_bootstrap=10, **analysis),
    )


def test_missing_metrics_give_an_empty_table(tmp_path):
    cfg = small_noise_run(tmp_path, tsne_layers=[])
    (tmp_path / "eval" / "task_metrics.json").unlink()
    run_analysis(tmp_path, cfg)
    assert read_table(tmp_path / "tables" / "task_metrics.csv", "task_metrics") == []


def test_same_seed_same_tables(tmp_path):
    small = AnalysisConfig(permutations=10, bootstrap=10, group_bootstrap=20, tsne_layers=[4])
    outputs = []
    for name in ("a", "b"):
        cfg = make_synthetic_run(
            tmp_path / name,
            n_layers=4,
            n_tasks=4,
            n_unseen=1,
            n=12,
            d=6,
            boundaries=(3, 3),
            analysis=small,
            seed=5,
        )
        run_analysis(tmp_path / name, cfg)
        tables = tmp_path / name / "tables"
        outputs.append({p.name: p.read_bytes() for p in tables.iterdir() if p.is_file()})
    assert outputs[0] == outputs[1] and "cka.csv" in outputs[0]


def test_misaligned_prompts_are_refused(tmp_path):
    cfg = small_noise_run(tmp_path)
    store = ActivationStore(tmp_path / "activations")
    hidden, _ = store.load("sft", "task01")
    store.save(
        "sft",
        "task01",
        hidden[:, ::-1],
        prompts=[f"task01 prompt {j}" for j in reversed(range(8))],
        meta={},
    )
    with pytest.raises(ValueError, match=r"sft/task01.json .* same prompts"):
        run_analysis(tmp_path, cfg)


def test_missing_inputs_name_the_file(tmp_path):
    cfg = make_synthetic_run(tmp_path, n_layers=3, n_tasks=3, n_unseen=0, n=8, d=4, boundaries=None)
    (tmp_path / "activations" / "control" / "task02.json").unlink()
    with pytest.raises(FileNotFoundError, match="control.*task02"):
        run_analysis(tmp_path, cfg)
    (tmp_path / "tasks" / "tasks.json").unlink()
    with pytest.raises(FileNotFoundError, match="tasks.json"):
        run_analysis(tmp_path, cfg)


def test_cli_analyze_bad_run_dir_exits_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mossa.cli", "analyze", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "config.resolved.yaml not found" in done.stderr
