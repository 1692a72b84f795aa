"""`mossa report`: figures, readings computed from the numbers, and a self-contained report.html."""

import base64
import dataclasses
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from typer.testing import CliRunner

from mossa.analysis.synthetic import make_synthetic_run
from mossa.analysis.tables import read_table
from mossa.cli import app
from mossa.config import AnalysisConfig
from mossa.report import readings
from mossa.report.data import load_run_data
from mossa.report.figures import FIGURES
from mossa.report.html import render_html

L = 8
FIGURE_NAMES = {spec.name for spec in FIGURES}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("report")
    make_synthetic_run(
        run,
        n_layers=L,
        n_tasks=6,
        n_unseen=2,
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


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def test_every_figure_is_drawn_as_a_readable_png(run):
    pngs = {p.stem: p for p in (run / "figures").glob("*.png")}
    assert set(pngs) == FIGURE_NAMES
    import matplotlib.image as mpimg

    for path in pngs.values():
        img = mpimg.imread(path)
        assert img.shape[0] > 250 and img.shape[1] > 400
        assert img[..., :3].std() > 0.05  # not blank


def test_report_is_self_contained_and_embeds_every_figure(run):
    html = (run / "report.html").read_text(encoding="utf-8")
    for needle in ("http://", "https://", 'src="file', "<link", "url(", "@import"):
        assert needle not in html, needle
    parser = Images()
    parser.feed(html)
    assert len(parser.srcs) == len(FIGURE_NAMES)
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
    groups = load_run_data(run).groups
    spans = ", ".join(f"{k} {v[0]}–{v[1]}" for k, v in groups["groups"].items() if v)
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

    shifted = dataclasses.replace(data, cka=dict(data.cka))
    shifted.cka[("sft", "cka")] = data.cka[("sft", "cka")] + 0.07
    new_text = " ".join(readings.read_cka_layers(shifted))
    assert f"largest {diff[top] + 0.07:+.2f} at layer {top + 1}" in new_text
    assert new_text != text


def test_layer_map_reading_without_structure_says_why(run):
    data = load_run_data(run)
    flat = dataclasses.replace(
        data,
        groups={
            **{k: data.groups[k] for k in ("mean_difference", "n_tasks")},
            "structure": False,
            "reason": "planted reason 42",
        },
    )
    text = " ".join(readings.read_layer_map(flat))
    assert "No layer structure" in text and "planted reason 42" in text
    html = render_html(flat, {})
    assert "planted reason 42" in html
    verdicts = {r["finding"][:20]: r["verdict"] for r in readings.paper_comparison(flat)}
    assert verdicts["Three functional gro"] == readings.FAILS


def test_paper_comparison_on_the_planted_run(run):
    rows = {r["finding"]: r for r in readings.paper_comparison(load_run_data(run))}
    by_start = {k[:30]: v["verdict"] for k, v in rows.items()}
    assert by_start["Base CKA with the controls fal"] == readings.HOLDS
    assert by_start["SFT is below base in the share"] == readings.HOLDS
    assert by_start["SFT forms more distinct task c"] == readings.HOLDS
    assert by_start["Unseen tasks: SFT below base i"] in (readings.HOLDS, readings.PARTLY)
    for row in rows.values():
        assert row["verdict"] in (
            readings.HOLDS,
            readings.PARTLY,
            readings.FAILS,
            readings.UNTESTABLE,
        )


def test_no_unseen_tasks_and_no_metrics_are_stated(run):
    data = load_run_data(run)
    only_seen = dataclasses.replace(data, seen=dict.fromkeys(data.tasks, True), metrics=[])
    verdicts = {r["finding"][:12]: r["verdict"] for r in readings.paper_comparison(only_seen)}
    assert verdicts["Unseen tasks"] == readings.UNTESTABLE
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
    assert loaded.group(1) == loaded.group(2) == str(len(FIGURE_NAMES))


def test_paper_map_scales_with_depth():
    from mossa.analysis.paper import paper_groups

    assert paper_groups(32) == {"shared": [1, 9], "transition": [10, 15], "refinement": [16, 32]}
    assert paper_groups(16) == {"shared": [1, 5], "transition": [6, 8], "refinement": [9, 16]}
    for n in range(3, 40):
        spans = paper_groups(n).values()
        assert [x for lo, hi in spans for x in range(lo, hi + 1)] == list(range(1, n + 1))
    assert paper_groups(2) is None
