"""`mossa report`: figures, readings computed from the numbers, and a self-contained report.html."""

import base64
import dataclasses
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pytest
from markupsafe import escape
from typer.testing import CliRunner

from mossa.analysis import findings
from mossa.analysis.synthetic import make_synthetic_run
from mossa.analysis.tables import read_table, read_table_json
from mossa.cli import app
from mossa.config import AnalysisConfig
from mossa.report import figures, readings
from mossa.report import html as html_module
from mossa.report.data import load_run_data
from mossa.report.figures import FIGURES, FigureSpec
from mossa.report.html import render_html

L = 8
FIGURE_NAMES = {spec.name for spec in FIGURES}
# sections whose tables this synthetic run lacks (no control seeds, snapshots or other
# measures; tests/test_report_sections.py writes them): each gets its absent note
ABSENT = {
    "ceiling",
    "over_training_diff",
    "over_training_groups",
    "over_training_ari",
    "measures_layers",
    "measures_agreement",
}
DRAWN = FIGURE_NAMES - ABSENT


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("report")
    make_synthetic_run(
        run,
        n_layers=L,
        n_tasks=6,
        n_unseen=3,
        n_clusters=3,
        n=24,
        d=16,
        boundaries=(3, 5),
        base_similarity="decreasing",
        seed=2,
        analysis=AnalysisConfig(
            permutations=20, bootstrap=20, group_bootstrap=100, tsne_layers=[L], tsne_perplexity=5
        ),
    )
    runner = CliRunner()
    analyzed = runner.invoke(app, ["analyze", str(run)])
    assert analyzed.exit_code == 0 and "layer map: shared 1-" in analyzed.output, analyzed.output
    reported = runner.invoke(app, ["report", str(run)])
    assert reported.exit_code == 0 and "report.html" in reported.output, reported.output
    return run


def refound(data, **changes):
    """``data`` with ``changes``, and the findings the analyze stage computes from them."""
    changed = dataclasses.replace(data, **changes)
    tables = changed.run_dir / "tables"
    return dataclasses.replace(
        changed, findings=findings.compute_findings(changed, changed.layer_map, tables)
    )


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def test_every_figure_is_drawn_as_a_readable_png(run):
    pngs = {p.stem: p for p in (run / "figures").glob("*.png")}
    assert set(pngs) == DRAWN
    import matplotlib.image as mpimg

    for path in pngs.values():
        img = mpimg.imread(path)
        assert img.shape[0] > 250 and img.shape[1] > 400
        assert img[..., :3].std() > 0.05  # not blank


def test_every_figure_spec_draws_a_file_with_a_caption_and_a_reading(run):
    data = load_run_data(run)
    html = (run / "report.html").read_text(encoding="utf-8")
    assert len(FIGURE_NAMES) == len(FIGURES) and ABSENT < FIGURE_NAMES
    for spec in FIGURES:
        assert spec.section and spec.paper and spec.absent
        if spec.name in ABSENT:
            assert not (run / "figures" / f"{spec.name}.png").exists(), spec.name
            assert f'No figure "{spec.name}": {escape(spec.absent)}' in html, spec.name
            continue
        assert (run / "figures" / f"{spec.name}.png").is_file(), spec.name
        assert spec.caption and str(escape(spec.caption)) in html, spec.name
        lines = spec.reading(data)
        assert lines and all(line and str(escape(line)) in html for line in lines), spec.name


def test_adding_a_figure_is_one_spec(run, tmp_path, monkeypatch):
    def draw(data):
        fig, ax = plt.subplots()
        ax.plot(data.layers, data.layers)
        return fig

    def nothing(data):
        return None

    extra = (
        FigureSpec(
            "planted",
            "Planted section",
            "Fig. 99",
            draw,
            "Planted caption.",
            lambda d: ["Planted reading."],
        ),
        FigureSpec(
            "empty", "Empty", "none", nothing, "Never shown.", lambda d: [], "planted absence"
        ),
    )
    monkeypatch.setattr(figures, "FIGURES", (*FIGURES, *extra))
    monkeypatch.setattr(html_module, "FIGURES", figures.FIGURES)
    data = load_run_data(run)
    paths = figures.render_figures(data, tmp_path)
    assert set(paths) == DRAWN | {"planted"} and (tmp_path / "planted.png").is_file()
    html = render_html(data, paths)
    for text in ("Planted section", "Fig. 99", "Planted caption.", "Planted reading."):
        assert text in html
    assert 'No figure "empty": planted absence' in html


def test_report_is_self_contained_and_embeds_every_figure(run):
    html = (run / "report.html").read_text(encoding="utf-8")
    for needle in ("http://", "https://", 'src="file', "<link", "url(", "@import"):
        assert needle not in html, needle
    parser = Images()
    parser.feed(html)
    assert len(parser.srcs) == len(DRAWN)
    embedded = set()
    for src in parser.srcs:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        embedded.add(data)
    assert embedded == {p.read_bytes() for p in (run / "figures").glob("*.png")}


def test_report_states_setup_groups_comparison_and_metrics(run):
    html = (run / "report.html").read_text(encoding="utf-8")
    for text in (
        "Setup",
        "Comparison with the paper",
        "Task metrics",
        "Biased beside debiased",
        "shared",
        "transition",
        "refinement",
        "task00",
    ):
        assert text in html
    groups = load_run_data(run).layer_map.groups
    spans = ", ".join(f"{k} {v.first}–{v.last}" for k, v in groups.items() if v)
    assert spans in html


def test_readings_follow_the_numbers(run):
    data = load_run_data(run)
    rows = read_table(run / "tables" / "cka.csv", "cka")
    seen = {r["task"] for r in rows if r["seen"]}
    value = {(r["model"], r["task"], r["layer"]): r["cka"] for r in rows}
    diff = [
        np.mean([value[("sft", t, x)] - value[("base", t, x)] for t in seen])
        for x in range(1, L + 1)
    ]
    top = int(np.argmax(diff))
    text = " ".join(readings.read_cka_layers(data))
    assert f"largest {diff[top]:+.2f} at layer {top + 1}" in text

    cka = {**data.cka, ("sft", "cka"): data.cka[("sft", "cka")] + 0.07}
    new_text = " ".join(readings.read_cka_layers(refound(data, cka=cka)))
    assert f"largest {diff[top] + 0.07:+.2f} at layer {top + 1}" in new_text
    assert new_text != text


def test_layer_map_reading_without_structure_says_why(run):
    data = load_run_data(run)
    fit = dataclasses.replace(data.layer_map.fit, structure=None, reason="planted reason 42")
    untested = dataclasses.replace(data.layer_map, fit=fit, paper_map=None)
    flat = refound(data, layer_map=untested)
    text = " ".join(readings.read_layer_map(flat))
    assert "No layer structure" in text and "planted reason 42" in text
    html = render_html(flat, {})
    assert "planted reason 42" in html
    verdicts = {r["finding"][:20]: r["verdict"] for r in readings.paper_comparison(flat)}
    # without the test against the paper's definitions the groups claim is not testable
    assert verdicts["Three functional gro"] == findings.UNTESTABLE
    assert escape("not tested against the paper's definitions") in html
    assert "map scaled to 8 layers" in html  # the groups the findings fall back on


def test_paper_comparison_on_the_planted_run(run):
    rows = {r["finding"]: r for r in readings.paper_comparison(load_run_data(run))}
    by_start = {k[:30]: v["verdict"] for k, v in rows.items()}
    assert by_start["Base CKA with the controls fal"] == findings.HOLDS
    assert by_start["SFT is below base in the share"] == findings.HOLDS
    assert by_start["SFT forms more distinct task c"] == findings.HOLDS
    assert by_start["Unseen tasks: SFT below base i"] in (findings.HOLDS, findings.PARTLY)
    assert {row["verdict"] for row in rows.values()} <= set(findings.VERDICTS)


def test_findings_json_holds_the_verdicts_and_follows_from_the_tables(run, tmp_path):
    """The analyze stage wrote findings.json (checksummed); it is what the tables give."""
    path = run / "tables" / "findings.json"
    found = read_table_json(path, findings.check_findings)
    assert "findings.json" in json.loads((run / "tables" / "checksums.json").read_text())
    assert [r["finding"] for r in found["paper"]] == [
        "three_groups",
        "base_falls",
        "sft_below_in_shared",
        "sft_close_after_shared",
        "more_dims_in_transition",
        "distinct_clusters",
        "readability_flesch_kincaid",
        "readability_coleman_liau",
        "no_data_size_correlation",
        "unseen_below_then_above",
    ]
    assert {r["verdict"] for r in found["paper"]} <= set(findings.VERDICTS)
    verdict = {r["finding"]: r["verdict"] for r in found["paper"]}
    assert verdict["base_falls"] == verdict["sft_below_in_shared"] == findings.HOLDS
    assert found["groups"]["source"] == "run"
    data = load_run_data(run)
    assert found == findings.compute_findings(data, data.layer_map, run / "tables")
    del found["tsne"]
    damaged = tmp_path / "tables" / "findings.json"
    damaged.parent.mkdir()
    damaged.write_text(json.dumps(found))
    with pytest.raises(ValueError, match=r"findings.json: findings lack the sections \['tsne'\]"):
        read_table_json(damaged, findings.check_findings)
    found["tsne"], found["paper"][1]["verdict"] = None, "maybe"
    with pytest.raises(ValueError, match="finding 'base_falls' has no verdict among"):
        findings.check_findings(found)


def test_no_unseen_tasks_and_no_metrics_are_stated(run):
    data = load_run_data(run)
    only_seen = refound(data, seen=dict.fromkeys(data.tasks, True), metrics=[])
    verdicts = {r["finding"][:12]: r["verdict"] for r in readings.paper_comparison(only_seen)}
    assert verdicts["Unseen tasks"] == findings.UNTESTABLE
    assert readings.read_unseen(only_seen) == ["This run has no unseen tasks."]
    assert "Task metrics were not computed" in render_html(only_seen, {})


def test_html_escapes_names(run):
    data = load_run_data(run)
    evil = dataclasses.replace(
        data,
        metrics=[
            {
                "task": "<script>alert(1)</script>",
                "metric": "acc",
                "base": 0.1,
                "sft": 0.2,
                "control": 0.3,
            }
        ],
    )
    html = render_html(evil, {})
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_headless_chromium_loads_every_figure(run, tmp_path):
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (run / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = re.search(r'data-figures-loaded="(\d+)/(\d+)"', done.stdout)
    assert loaded, done.stderr[-2000:]
    assert loaded.group(1) == loaded.group(2) == str(len(DRAWN))


def test_paper_map_scales_with_depth():
    from mossa.analysis.layer_map import GROUPS
    from mossa.analysis.paper import paper_groups

    def spans(n):
        return paper_groups(n).to_json()

    assert spans(32) == {"shared": [1, 9], "transition": [10, 15], "refinement": [16, 32]}
    assert spans(16) == {"shared": [1, 5], "transition": [6, 8], "refinement": [9, 16]}
    for n in range(3, 40):
        assert paper_groups(n).layers(*GROUPS) == list(range(1, n + 1))
    assert paper_groups(2) is None


def metric_rows(data, failing: set[str]):
    """task_metrics.csv rows: the control learns every task except those in ``failing``."""
    from mossa.analysis import competence

    rows = []
    for task in data.tasks:
        base = [0] * 25 + [1] * 5
        control = base if task in failing else [1] * 30
        record = {"task": task, "metric": "accuracy", "base": 100 * np.mean(base),
                  "sft": 100 * np.mean(base), "control": 100 * np.mean(control),
                  "examples": {"base": base, "sft": base, "control": control}}  # fmt: skip
        rows.append(competence.task_metric_row(record, 0.95, 200, 0))
    return rows


def test_tasks_that_are_not_competent_are_left_out_of_every_verdict(run):
    data = load_run_data(run)
    seen = [t for t in data.tasks if data.seen[t]]
    failing = {seen[0], [t for t in data.tasks if not data.seen[t]][0]}
    left_out = refound(data, metrics=metric_rows(data, failing))
    comp = left_out.findings["competence"]
    assert comp["checked"] and comp["testable"]
    assert {x["task"] for x in comp["excluded"]} == failing
    assert all("control not above base" in x["reason"] for x in comp["excluded"])
    verdicts = {r["finding"]: r for r in left_out.findings["paper"]}
    assert verdicts["sft_below_in_shared"]["n"] == len(seen) - 1
    assert verdicts["unseen_below_then_above"]["verdict"] == findings.UNTESTABLE  # 2 of 3 left
    html = render_html(left_out, {})
    assert f"{seen[0]} (control not above base" in html

    # fewer than MIN_COMPETENT seen tasks learned: no verdict at all, and the report says so
    none = refound(data, metrics=metric_rows(data, set(seen[:-2])))
    assert {r["verdict"] for r in none.findings["paper"]} == {findings.UNTESTABLE}
    assert "No finding of the paper is tested on this run" in " ".join(readings.summary(none))


class Summary(HTMLParser):
    """The <li> lines of the report's summary list."""

    def __init__(self):
        super().__init__()
        self.inside, self.lines = False, []

    def handle_starttag(self, tag, attrs):
        if tag == "ul" and "summary" in (dict(attrs).get("class") or ""):
            self.inside = True
        elif tag == "li" and self.inside:
            self.lines.append("")

    def handle_endtag(self, tag):
        if tag == "ul":
            self.inside = False

    def handle_data(self, data):
        if self.inside and self.lines:
            self.lines[-1] += data


@pytest.mark.parametrize("failing", ["none", "some", "most"])
def test_summary_states_as_holding_only_what_findings_json_gives_as_holds(run, failing):
    data = load_run_data(run)
    seen = [t for t in data.tasks if data.seen[t]]
    drop = {"none": set(), "some": {seen[0]}, "most": set(seen[:-1])}[failing]
    variant = refound(data, metrics=metric_rows(data, drop))
    parser = Summary()
    parser.feed(render_html(variant, {}))
    holds_line = [x for x in parser.lines if x.startswith("Holds on this run:")]
    claims = {
        r["finding"]: readings.CLAIMS[r["finding"]].finding for r in variant.findings["paper"]
    }
    holding = {f for f, v in ((r["finding"], r["verdict"]) for r in variant.findings["paper"])
               if v == findings.HOLDS}  # fmt: skip
    stated = " ".join(holds_line)
    for finding, text in claims.items():
        assert (escape(text) in stated or text in stated) == (finding in holding), finding
    assert bool(holding) == bool(holds_line)


def test_task_sources_are_listed_when_the_suite_records_them(run, tmp_path):
    """The real suite records each task's dataset, package, licence, split and Flan
    stand-in; the report lists them (escaped), and a suite without sources gets no table."""
    data = load_run_data(run)
    assert "Tasks and their data" not in render_html(data, {})
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    doc = json.loads((copy / "tasks" / "tasks.json").read_text())
    for i, task in enumerate(doc["tasks"]):
        task |= {
            "source": f"Dataset <{i}>",
            "package": f"pkg{i}==1.0",
            "license": "CC-BY-4.0",
            "original_split": "test",
            "stands_in_for": "SST-2",
        }
    (copy / "tasks" / "tasks.json").write_text(json.dumps(doc))
    html = render_html(dataclasses.replace(data, run_dir=copy), {})
    assert "Tasks and their data" in html and "Dataset &lt;3&gt;" in html
    assert all(f"pkg{i}==1.0" in html for i in range(len(doc["tasks"])))
