"""Report sections beyond the paper: evidence, over training, measures.

A small synthetic run with SFT snapshots and every measure is analysed once (the new tables
as the analyze stage writes them); copies of it then get planted numbers in those tables
(and control seeds and cross-task controls, which a synthetic run lacks), so each reading can
be checked against what the tables say, or lose them, so each section's absence is noted.
"""

import csv
import dataclasses
import json
import re
import shutil
import subprocess

import matplotlib.image as mpimg
import numpy as np
import pytest
from markupsafe import escape

from mossa.analysis.measure_tables import agreement
from mossa.analysis.synthetic import make_synthetic_run
from mossa.analysis.tables import SCHEMAS, read_table, write_json, write_table
from mossa.config import AnalysisConfig
from mossa.io import CorruptRunFile, write_checksums
from mossa.pipeline.report import run_report
from mossa.report import figures, readings
from mossa.report.data import load_run_data
from mossa.report.figures import FIGURES
from mossa.run_dir import RunDir, snapshot_adapter

L = 6
STEPS = [2, 4, 6, 8]
PLANTED_LAYERS = (3, 4, 5)  # task-specific similarity from step 4 on
NEW = {
    "Evidence": ("specificity", "ceiling"),
    "Over training": ("over_training_diff", "over_training_groups", "over_training_ari"),
    "Measures": ("measures_layers", "measures_agreement"),
}
NEW_NAMES = {name for names in NEW.values() for name in names}


SNAPSHOT_STEPS = (2, 4)
NEW_TABLES = (
    "cka_over_training.csv",
    "clustering_over_training.csv",
    "layer_map_over_training.json",
    "measures.csv",
    "layer_groups_by_measure.json",
)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A synthetic run with every measure and two SFT snapshots (step 2: base plus noise,
    step 4: SFT itself), through the analyze stage: the new tables as it writes them."""
    from mossa.pipeline.analyze import run_analysis

    root = tmp_path_factory.mktemp("analysed")
    cfg = make_synthetic_run(
        root,
        n_layers=L,
        n_tasks=6,
        n_unseen=2,
        n_clusters=3,
        n=20,
        d=12,
        boundaries=(3, 4),
        seed=3,
        analysis=AnalysisConfig(
            permutations=10,
            bootstrap=20,
            group_bootstrap=50,
            tsne_layers=[],
            pca_variance=0.9,
            measures=["cka", "procrustes", "mutual_knn", "rsa"],
            knn_k=5,
        ),
    )
    run = RunDir(root)
    store = run.store()
    rng = np.random.default_rng(5)
    for step in SNAPSHOT_STEPS:
        run.adapter(snapshot_adapter(step)).mkdir(parents=True)
        for task in store.tasks("sft"):
            source = store.load("base" if step == 2 else "sft", task)[0]
            states = source + 0.05 * rng.standard_normal(source.shape).astype(np.float32)
            states[0] = source[0]  # the embeddings every model shares
            prompts = [f"{task} prompt {j}" for j in range(source.shape[1])]
            store.save(snapshot_adapter(step), task, states, prompts=prompts, meta={})
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"snapshot_every": 2})})
    with pytest.warns(UserWarning, match="specificity.csv and tables/ceiling.csv stay empty"):
        run_analysis(root, cfg)
    return root


def copy_run(src, dst, remove=()):
    """A copy of run ``src`` at ``dst`` without the tables ``remove`` (checksums rewritten)."""
    shutil.copytree(src, dst)
    tables = dst / "tables"
    for name in remove:
        (tables / name).unlink()
    sums = json.loads((tables / "checksums.json").read_text())
    write_checksums(tables, [n for n in sums if n not in remove])
    return dst


@pytest.fixture(scope="module")
def bare(analysed, tmp_path_factory):
    """The analysed run without the over-training and measures tables (an older run, or one
    whose config asks for neither): cka_diff.csv, but none of the other new sections'."""
    return copy_run(analysed, tmp_path_factory.mktemp("bare") / "run", NEW_TABLES)


def write_csv(path, columns, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def planted_tables(tables, tasks: list[dict]) -> dict:
    """Write the new sections' tables for ``tasks`` (dicts of name, cluster, seen) into
    ``tables``; returns the planted arrays the readings are checked against."""
    rng = np.random.default_rng(0)
    seen = [t for t in tasks if t["seen"]]
    # evidence: specificity (k = 3) and ceiling (2 seeds) rows, rewritten with checksums
    spec, ceiling = [], []
    ceil_arrays = {k: np.zeros((len(seen), L + 1)) for k in ("ceiling", "relative", "lo", "hi")}
    spec_sft = np.zeros((len(seen), L + 1))
    for i, t in enumerate(tasks):
        for layer in range(L + 1):
            key = {"task": t["name"], "cluster": t["cluster"], "seen": t["seen"], "layer": layer}
            for model, value in (("base", 0.01 * i), ("sft", 0.02 * layer + 0.005 * i)):
                spec.append(
                    key
                    | {
                        "model": model,
                        "k": 3,
                        "specificity": value,
                        "ci_low": value - 0.03,
                        "ci_high": value + 0.03,
                        "p_value": 0.2,
                    }
                )
            ceil = 0.9 - 0.01 * layer - 0.02 * i
            sft = 0.6 + 0.03 * layer + 0.01 * i
            rel = sft / ceil
            lo, hi = rel - 0.05 * (1 + i % 3), rel + 0.05 * (1 + i % 3)
            ceiling.append(
                key
                | {
                    "n_seeds": 2,
                    "ceiling": ceil,
                    "ci_low": ceil - 0.05,
                    "ci_high": ceil + 0.05,
                    "sft_cka": sft,
                    "sft_relative": rel,
                    "sft_relative_ci_low": lo,
                    "sft_relative_ci_high": hi,
                }
            )
            if t["seen"]:
                j = seen.index(t)
                spec_sft[j, layer] = 0.02 * layer + 0.005 * i
                for name, v in zip(ceil_arrays, (ceil, rel, lo, hi), strict=True):
                    ceil_arrays[name][j, layer] = v
    write_table(tables / "specificity.csv", "specificity", spec)
    write_table(tables / "ceiling.csv", "ceiling", ceiling)

    # over training: seen tasks above base from step 4 in the planted layers
    diff = np.full((len(STEPS), len(tasks), L + 1), -0.02)
    diff[:, :, 0] = 0.05  # the embeddings: never counted, whatever the table says
    for s, step in enumerate(STEPS):
        for layer in PLANTED_LAYERS:
            if step >= 4:
                diff[s, :, layer] = 0.03 * layer + 0.01 * step + rng.uniform(0, 0.01, len(tasks))
    rows = [
        {
            "step": step,
            "task": t["name"],
            "cluster": t["cluster"],
            "seen": "true" if t["seen"] else "false",
            "layer": layer,
            "cka": 0.5,
            "diff": diff[s, i, layer],
            "diff_ci_low": diff[s, i, layer] - 0.015,
            "diff_ci_high": diff[s, i, layer] + 0.015,
            "diff_p_value": 0.01,
            "specificity": "nan",
            "specificity_ci_low": "",
            "specificity_ci_high": "",
        }
        for s, step in enumerate(STEPS)
        for i, t in enumerate(tasks)
        for layer in range(L + 1)
    ]
    write_csv(tables / "cka_over_training.csv", SCHEMAS["cka_over_training"], rows)
    clustering = [
        {
            "step": step,
            "split": split,
            "layer": layer,
            "labels": labels,
            "ari": scale * (0.05 + 0.1 * step / 2 * layer / L),
            "silhouette": 0.1,
        }
        for step in [0, *STEPS]
        for split, split_scale in (("seen", 1.0), ("unseen", 0.5))
        for labels, label_scale in (("task", 1.0), ("cluster", 0.5))
        for layer in range(L + 1)
        for scale in [split_scale * label_scale]
    ]
    write_table(tables / "clustering_over_training.csv", "clustering_over_training", clustering)
    none = {"structure": False, "groups": None, "paper_map": "not testable", "confidence": {}}

    def mapped(step, groups, verdict, conf):
        confidence = {"transition_start": conf[0], "refinement_start": conf[1]}
        return {
            "step": step,
            "structure": True,
            "groups": groups,
            "paper_map": verdict,
            "confidence": confidence,
        }

    maps = {
        "steps": STEPS,
        "maps": [
            {"step": 2, **none},
            mapped(
                4,
                {"shared": [1, 2], "transition": [3, 4], "refinement": [5, 6]},
                "partly",
                (0.6, 0.5),
            ),
            mapped(
                6,
                {"shared": [1, 2], "transition": [3, 5], "refinement": [6, 6]},
                "holds",
                (0.8, 0.7),
            ),
            mapped(
                8,
                {"shared": [1, 3], "transition": [4, 5], "refinement": [6, 6]},
                "holds",
                (0.9, 0.75),
            ),
        ],
        "first_structure_step": 4,
        "first_holds_step": 6,
        "emergence": {"step": 4, "layers": list(PLANTED_LAYERS)},
    }
    write_json(tables / "layer_map_over_training.json", maps)

    # measures: SFT rises with depth, base falls
    values = {}
    measure_rows = []
    for m, measure in enumerate(("procrustes", "rsa")):
        for model in ("base", "sft"):
            grid = np.zeros((len(seen), L + 1))
            for i, t in enumerate(tasks):
                for layer in range(L + 1):
                    v = (
                        0.3 + 0.1 * layer + 0.013 * i + 0.05 * m
                        if model == "sft"
                        else 0.5 - 0.05 * layer + 0.02 * i
                    )
                    measure_rows.append(
                        {
                            "measure": measure,
                            "model": model,
                            "task": t["name"],
                            "cluster": t["cluster"],
                            "seen": t["seen"],
                            "layer": layer,
                            "n": 20,
                            "value": v,
                            "null_p95": 0.45,
                            "ci_low": v - 0.05,
                            "ci_high": v + 0.05,
                        }
                    )
                    if t["seen"]:
                        grid[seen.index(t), layer] = v
            values[(measure, model)] = grid
    write_table(tables / "measures.csv", "measures", measure_rows)
    three = {"shared": [1, 2], "transition": [3, 4], "refinement": [5, 6]}
    by_measure = {
        "cka": {"structure": True, "groups": three, "paper_map": {"verdict": "partly"}},
        "procrustes": {
            "structure": True,
            "groups": {"shared": [1, 2], "transition": [3, 5], "refinement": [6, 6]},
            "paper_map": {"verdict": "holds"},
        },
        "rsa": {"structure": True, "groups": three, "paper_map": None},
    }
    write_json(
        tables / "layer_groups_by_measure.json",
        {"measures": by_measure, "agreement": agreement(by_measure, L)},
    )
    write_checksums(tables, list(json.loads((tables / "checksums.json").read_text())))
    return {
        "spec_sft": spec_sft,
        "ceiling": ceil_arrays,
        "diff": diff[:, [t["seen"] for t in tasks]],
        "measures": values,
    }


@pytest.fixture(scope="module")
def full(analysed, tmp_path_factory):
    """The analysed run with planted numbers in every new section's tables, and the report
    drawn from them."""
    run = copy_run(analysed, tmp_path_factory.mktemp("full") / "run")
    rows = read_table(run / "tables" / "cka.csv", "cka")
    tasks = list(
        {
            r["task"]: {"name": r["task"], "cluster": r["cluster"], "seen": r["seen"]} for r in rows
        }.values()
    )
    planted = planted_tables(run / "tables", tasks)
    run_report(run, load_run_data(run).cfg)
    return run, planted


def text_of(lines: list[str]) -> str:
    return " ".join(lines)


def test_every_new_section_draws_its_figures_and_readings(full):
    run, _ = full
    html = (run / "report.html").read_text(encoding="utf-8")
    data = load_run_data(run)
    for part, names in NEW.items():
        assert f">{part}</h2>" in html, part
        for name in names:
            path = run / "figures" / f"{name}.png"
            img = mpimg.imread(path)
            assert img.shape[0] > 250 and img.shape[1] > 400 and img[..., :3].std() > 0.05, name
            spec = next(s for s in FIGURES if s.name == name)
            assert spec.part == part and str(escape(spec.caption)) in html
            lines = spec.reading(data)
            assert lines and all(str(escape(line)) in html for line in lines), name
            assert f'No figure "{name}"' not in html
    # self-contained: every figure of the run inlined, nothing fetched
    drawn = {p.stem for p in (run / "figures").glob("*.png")}
    assert drawn == {s.name for s in FIGURES} - {"tsne"}  # analysis.tsne_layers is empty here
    assert html.count('src="data:image/png;base64,') == len(drawn)
    for needle in ("http://", "https://", 'src="file', "<link", "url(", "@import"):
        assert needle not in html, needle
    # the parts follow each other in the registry's order, each heading once
    order = [html.index(f">{part}</h2>") for part in NEW]
    assert order == sorted(order) and all(html.count(f">{p}</h2>") == 1 for p in NEW)


def test_evidence_readings_state_the_tables_numbers(full):
    run, planted = full
    data = load_run_data(run)
    rows = [r for r in read_table(run / "tables" / "cka_diff.csv", "cka_diff") if r["seen"]]
    tasks = {r["task"] for r in rows}
    above = {r["task"] for r in rows if r["ci_low"] > 0}
    per_layer = [sum(r["ci_low"] > 0 for r in rows if r["layer"] == x) for x in range(1, L + 1)]
    text = text_of(readings.read_specificity(data))
    assert f"{len(above)} of {len(tasks)} seen tasks have its 95% interval above 0" in text
    top = 1 + int(np.argmax(per_layer))  # layer 0, the shared embeddings, is left out
    half = [x for x in range(1, L + 1) if per_layer[x - 1] >= len(tasks) / 2]
    assert f"have it above 0 at {readings._ranges(half)} ({len(half)} of {L} layers)" in text
    assert f"most at layer {top} ({per_layer[top - 1]} of {len(tasks)})" in text
    median = np.median(planted["spec_sft"], axis=0)
    assert f"SFT {median[L]:+.2f} at layer {L} (its largest)" in text
    assert "the mean of 3 other tasks' controls" in text
    assert "Median SFT above base at layers 1–6" in text

    # every interval shifted below 0: no task above 0 at any layer
    ev = data.evidence
    shifted = dataclasses.replace(ev, diff={**ev.diff, "ci_low": ev.diff["ci_low"] - 9})
    moved = text_of(readings.read_specificity(dataclasses.replace(data, evidence=shifted)))
    assert f"0 of {len(tasks)} seen tasks have its 95% interval above 0" in moved
    assert "above 0 at no layer (0 of 6 layers)." in moved
    # exactly half of the seen tasks above 0, at layer 2 only
    low = np.full_like(ev.diff["ci_low"], -1.0)
    low[np.flatnonzero(data.seen_mask)[:3], 2] = 0.1
    half = dataclasses.replace(ev, diff={**ev.diff, "ci_low": low})
    moved = text_of(readings.read_specificity(dataclasses.replace(data, evidence=half)))
    assert "3 of 6 seen tasks have its" in moved
    assert "above 0 at layer 2 (1 of 6 layers); most at layer 2 (3 of 6)." in moved

    c = planted["ceiling"]
    text = text_of(readings.read_ceiling(data))
    ceil = np.median(c["ceiling"], axis=0)[1:]
    rel = np.median(c["relative"], axis=0)[1:]
    assert "from 2 seeds per control" in text
    assert f"lowest {ceil.min():.2f} at layer {1 + int(np.argmin(ceil))}" in text
    assert f"lowest {rel.min():.2f} at layer 1, highest {rel.max():.2f} at layer {L}" in text
    assert f"at layer {L} {rel[-1]:.2f}, and" in text
    includes = int(((c["lo"][:, L] <= 1) & (c["hi"][:, L] >= 1)).sum())
    below = int((c["hi"][:, L] < 1).sum())
    n_seen = len(c["lo"])
    assert f"includes 1 for {includes} of {n_seen} seen tasks and lies below 1 for {below}" in text
    assert 0 < includes < len(c["lo"])  # the planted intervals differ in width


def test_over_training_readings_state_the_tables_numbers(full):
    run, planted = full
    data = load_run_data(run)
    ot = data.over_training
    assert ot.steps == STEPS and ot.seen.sum() == 6
    mean = planted["diff"].mean(axis=1)
    text = text_of(readings.read_over_training_diff(data))
    top = int(np.argmax(mean[-1]))
    assert "4 SFT snapshots (steps 2–8), 6 seen tasks" in text
    assert f"largest, {mean[-1, top]:+.2f} at layer {top}" in text
    assert "first at step 4 (layers 3–5); at the last snapshot at layers 3–5 (3 of 6)" in text
    assert "present from step 4 in layers 3–5 and at every later snapshot" in text

    # the figure marks the same cells the reading counts
    fig = figures.fig_over_training_diff(data)
    marks = {tuple(p) for p in fig.axes[0].collections[0].get_offsets().astype(int)}
    assert marks == {(s, x) for s in range(1, 4) for x in PLANTED_LAYERS}

    text = text_of(readings.read_over_training_groups(data))
    assert "Layer maps at 4 snapshots (steps 2–8); layer groups at 3 of them." in text
    assert "The groups first appear at step 4." in text
    assert "first gives 'holds' at step 6" in text
    assert (
        "step 8: shared 1–3, transition 4–5, refinement 6 (transition start within ±1 layer in "
        "90% of refits; refinement start within ±1 layer in 75% of refits)"
    ) in text
    assert "transition starts at layer 3 at step 4 and at layer 4 at step 8" in text

    text = text_of(readings.read_over_training_ari(data))
    assert (
        "Seen tasks: k-means ARI against the task labels at layer 6 (the highest at the last "
        "snapshot) goes from 0.05 at step 0 (the base model) to 0.45 at step 8; against the "
        "cluster labels from 0.03 to 0.23."
    ) in text
    assert "Unseen tasks" in text and "from 0.03 at step 0 (the base model) to 0.23" in text

    # no snapshot with groups and no emergence: the readings say so
    maps = {
        **ot.maps,
        "first_structure_step": None,
        "first_holds_step": None,
        "emergence": {"step": None, "layers": []},
        "maps": [{**m, "structure": False, "groups": None} for m in ot.maps["maps"]],
    }
    flat = dataclasses.replace(data, over_training=dataclasses.replace(ot, maps=maps))
    text = text_of(readings.read_over_training_groups(flat))
    assert "layer groups at 0 of them." in text and "first appear" not in text
    assert "No snapshot's map passes the test against the paper's map (last: holds)" in text
    assert "No layer keeps" in text_of(readings.read_over_training_diff(flat))
    assert figures.fig_over_training_groups(flat) is not None  # gaps, not an error


def test_measures_readings_state_the_tables_numbers(full):
    run, planted = full
    data = load_run_data(run)
    text = text_of(readings.read_measures_layers(data))
    for title, measure in (("Procrustes", "procrustes"), ("RSA", "rsa")):
        base, sft = (
            np.median(planted["measures"][(measure, model)], axis=0) for model in ("base", "sft")
        )
        gap = sft - base
        above = np.flatnonzero(gap > 0)
        assert f"{title}: median SFT above median base at layers {above[0]}–{L}" in text
        assert f"largest gap {gap.max():+.2f} at layer {int(np.argmax(gap))}" in text
        assert f"base {base[L]:.2f}, SFT {sft[L]:.2f}" in text
        share = (planted["measures"][(measure, "sft")][:, 1:] > 0.45).mean()  # null p95 0.45
        assert f"SFT {sft[L]:.2f}; {share:.0%} of SFT's (task, layer ≥ 1) values above" in text
    assert text.startswith("CKA: median SFT")  # CKA (from cka.csv) beside the others

    text = text_of(readings.read_measures_agreement(data))
    assert (
        "The measures (CKA, Procrustes, RSA) agree on the group of 5 of 6 layers (layers 1–4, 6)."
    ) in text
    assert (
        "Procrustes: shared 1–2, transition 3–5, refinement 6 (test against the paper's map: "
        "holds)."
    ) in text
    assert "RSA: shared 1–2, transition 3–4, refinement 5–6." in text

    # the grid shows each measure's group per layer
    grid = figures.fig_measures_agreement(data).axes[0].images[0].get_array()
    assert grid.tolist() == [[1, 1, 2, 2, 3, 3], [1, 1, 2, 2, 2, 3], [1, 1, 2, 2, 3, 3]]

    maps = data.measures.maps
    rsa = {"structure": False, "groups": None, "paper_map": None}
    measures = {**maps["measures"], "rsa": rsa}
    changed = dataclasses.replace(
        data.measures, maps={"measures": measures, "agreement": agreement(measures, L)}
    )
    text = text_of(readings.read_measures_agreement(dataclasses.replace(data, measures=changed)))
    assert "agree on the group of 0 of 6 layers (no layer)" in text
    assert "RSA: no layer structure." in text


def render_new(data, out, monkeypatch) -> dict:
    """render_figures of the new sections' figures only (the paper's are test_report's)."""
    monkeypatch.setattr(figures, "FIGURES", tuple(s for s in FIGURES if s.name in NEW_NAMES))
    return figures.render_figures(data, out)


def test_absent_tables_give_the_absent_note(bare, tmp_path, monkeypatch):
    data = load_run_data(bare)
    assert not data.over_training.steps and data.over_training.maps is None
    assert not data.measures.names and data.measures.maps is None
    paths = render_new(data, tmp_path, monkeypatch)
    assert set(paths) == {"specificity"}  # cka_diff.csv is there
    from mossa.report.html import render_html

    html = render_html(data, paths)
    for spec in FIGURES:
        if spec.name in NEW_NAMES - {"specificity"}:
            assert f'No figure "{spec.name}": {escape(spec.absent)}' in html
    assert ">Over training</h2>" not in html and ">Measures</h2>" not in html
    assert ">Evidence</h2>" in html  # the paired difference is drawn
    text = text_of(readings.read_specificity(data))
    assert "No task specificity on this run" in text


def test_a_run_without_the_evidence_tables_still_reports(bare, tmp_path):
    evidence = ("cka_diff.csv", "specificity.csv", "ceiling.csv")
    data = load_run_data(copy_run(bare, tmp_path / "run", evidence))
    assert not data.evidence.has_diff
    assert figures.fig_specificity(data) is None and figures.fig_ceiling(data) is None


def test_the_analyze_stages_tables_are_drawn_and_read(analysed, tmp_path, monkeypatch):
    """The new sections on the tables as the analyze stage writes them."""
    data = load_run_data(analysed)
    ot, measures = data.over_training, data.measures
    assert ot.steps == list(SNAPSHOT_STEPS) and ot.seen.sum() == 6
    assert measures.names == ["procrustes", "mutual_knn", "rsa"]
    assert list(measures.maps["measures"]) == ["cka", "procrustes", "mutual_knn", "rsa"]
    paths = render_new(data, tmp_path, monkeypatch)
    assert set(paths) == NEW_NAMES - {"ceiling"}  # one seed per control
    for spec in FIGURES:
        if spec.name in NEW_NAMES - {"ceiling"}:
            assert all(spec.reading(data)), spec.name
    agree = sum(r["agree"] for r in measures.maps["agreement"])
    assert f"agree on the group of {agree} of {L} layers" in text_of(
        readings.read_measures_agreement(data)
    )
    # step 4's states are SFT's, which the synthetic run plants above base from layer 3
    present = ot.present[ot.steps.index(4)]
    assert present[4:].all() and not present[:3].any()
    assert f"at the last snapshot at layers {int(np.flatnonzero(present)[0])}–{L}" in text_of(
        readings.read_over_training_diff(data)
    )
    seen = [r for r in ot.clustering if r["split"] == "seen" and r["labels"] == "task"]
    assert {r["step"] for r in seen} == {0, *SNAPSHOT_STEPS}
    assert "Seen tasks: k-means ARI against the task labels" in text_of(
        readings.read_over_training_ari(data)
    )


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("cka_over_training.csv", lambda t: t.replace("diff_ci_low", "low", 1), "columns"),
        ("measures.csv", lambda t: t + "rsa,base\n", "2 cells, expected 11"),
        ("clustering_over_training.csv", lambda t: t.replace(",0.1\n", ",x\n", 1), "line 2"),
        ("layer_map_over_training.json", lambda t: t.replace('"emergence"', '"x"'), "emergence"),
        ("layer_groups_by_measure.json", lambda t: t[:-5], "not valid JSON"),
    ],
)
def test_a_damaged_new_table_names_the_file_and_the_command(full, tmp_path, name, damage, message):
    run = copy_run(full[0], tmp_path / "run")
    path = run / "tables" / name
    path.write_text(damage(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(CorruptRunFile, match="do not match the checksum") as err:
        load_run_data(run)
    assert name in str(err.value)
    # written so by the analyze stage (checksummed): the reader names what is wrong
    write_checksums(path.parent, list(json.loads((path.parent / "checksums.json").read_text())))
    with pytest.raises(CorruptRunFile, match=message) as err:
        load_run_data(run)
    assert name in str(err.value) and "--redo analyze" in str(err.value)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_headless_chromium_loads_every_figure_of_the_full_report(full, tmp_path):
    run, _ = full
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
    args += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
    args += [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    done = subprocess.run(
        ["chromium", *args, "--dump-dom", (run / "report.html").as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = re.search(r'data-figures-loaded="(\d+)/(\d+)"', done.stdout)
    assert loaded, done.stderr[-2000:]
    assert loaded.group(1) == loaded.group(2) == str(len(list((run / "figures").glob("*.png"))))
    assert int(loaded.group(1)) == len(FIGURES) - 1  # every figure but t-SNE (none asked for)
