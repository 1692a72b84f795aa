"""report.html: one self-contained page (figures inlined as base64 PNG, no external files)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader

from mossa.analysis.layer_map import GROUPS
from mossa.report.data import RunData, cluster_name
from mossa.report.figures import FIGURES
from mossa.report.readings import groups_source, paper_comparison, read_layer_map, summary
from mossa.run_dir import RunDir
from mossa.store import mossa_version

POOLING = {"last": "state of the last prompt token", "mean": "states averaged over prompt tokens"}


def _num(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"


def setup_facts(data: RunData) -> list[tuple[str, str]]:
    """The run's setup as (label, value) pairs, from its config and tables."""
    cfg = data.cfg
    seen = [t for t in data.tasks if data.seen[t]]
    clusters = ", ".join(cluster_name(c) for c in data.clusters(seen=True))
    ns = sorted(set(data.n.values()))
    t = cfg.training
    facts = [
        ("run", f"{cfg.name} (seed {cfg.seed})"),
        ("base model", f"{cfg.model.base}, {data.n_layers} layers (+ embeddings as layer 0)"),
        (
            "tasks",
            f"{len(seen)} seen in {len(data.clusters(seen=True))} clusters ({clusters}); "
            f"{len(data.tasks) - len(seen)} unseen; suite {cfg.tasks.suite}",
        ),
        (
            "prompts per task",
            ", ".join(map(str, ns)) + f" ({POOLING[cfg.extraction.pooling]})",
        ),
        (
            "training",
            f"LoRA r={t.lora_r}, alpha={t.lora_alpha:g} on {', '.join(t.target_modules)}; "
            f"lr {t.lr:g}; SFT {t.sft_steps} steps, controls {t.control_steps} steps, "
            f"batch {t.batch_size}",
        ),
        (
            "analysis",
            f"{cfg.analysis.kernel} CKA (debiased primary, biased for comparison); "
            f"{cfg.analysis.permutations} permutations, {cfg.analysis.bootstrap} "
            f"bootstrap resamples, {cfg.analysis.group_bootstrap} layer-map bootstrap draws",
        ),
    ]
    manifest = RunDir(data.run_dir).manifest
    if manifest.is_file():
        stages = json.loads(manifest.read_text(encoding="utf-8")).get("stages", {})
        times = ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in stages.items() if "seconds" in v)
        if times:
            facts.append(("stage times", times))
    return facts


def _cka_table(data: RunData) -> list[dict]:
    """Rows of the biased-beside-debiased table: the findings' medians per layer, formatted."""
    return [
        {k: v if k == "layer" else _num(v) for k, v in row.items()}
        for row in data.findings["cka_medians"]
    ]


def _span(row: dict, prefix: str) -> str:
    """'12.0 [8.1, 17.2]': a metric with its interval, one decimal ('–' when undefined)."""
    value = row.get(prefix)
    if value is None or not np.isfinite(value):
        return "–"
    low, high = row.get(f"{prefix}_low"), row.get(f"{prefix}_high")
    if low is None or not np.isfinite(low):
        return f"{value:.1f}"
    return f"{value:.1f} [{low:.1f}, {high:.1f}]"


def _metric_row(data: RunData, r: dict) -> dict:
    """A row of the task-metrics table: metrics with intervals, the test, competence."""
    p = r.get("p_value")
    return {
        "task": r["task"],
        "cluster": cluster_name(data.cluster.get(r["task"], "")),
        "metric": r["metric"],
        "n": "–" if r.get("n") is None else r["n"],
        **{m: _span(r, m) for m in ("base", "sft", "control", "diff")},
        "chance": _span(r, "chance"),
        "p_value": "–" if p is None or not np.isfinite(p) else f"{p:.3f}",
        "test": r.get("test") or "–",
        "competent": "yes" if r.get("competent") else "no",
        "reason": r.get("reason") or "",
    }


SOURCE_FIELDS = ("source", "package", "license", "original_split", "stands_in_for")


def task_sources(data: RunData) -> list[dict]:
    """Where each task's data comes from (tasks.json), for suites that record it (the real
    suite: dataset, package==version, licence, original split, the Flan dataset it stands
    in for); empty for suites without sources."""
    records = RunDir(data.run_dir).read_tasks(required=("name",))
    if not any(r.get("source") for r in records):
        return []
    return [
        {"task": r["name"], "cluster": cluster_name(r.get("cluster", "")), "seen": r.get("seen")}
        | {f: r.get(f) or "" for f in SOURCE_FIELDS}
        for r in records
    ]


def render_html(data: RunData, figure_paths: dict[str, Path]) -> str:
    """The report page for ``data`` with the PNGs in ``figure_paths`` (name -> path) inlined."""
    env = Environment(loader=PackageLoader("mossa.report", "templates"), autoescape=True)
    figures = [
        {
            "name": spec.name,
            "section": spec.section,
            "part": spec.part,
            "paper": spec.paper,
            "png": base64.b64encode(Path(figure_paths[spec.name]).read_bytes()).decode("ascii"),
            "caption": spec.caption,
            "readings": spec.reading(data),
        }
        for spec in FIGURES
        if spec.name in figure_paths
    ]
    missing = {s.name: s.absent for s in FIGURES if s.name not in figure_paths}
    found = data.layer_map.fit.structure
    metrics = [_metric_row(data, r) for r in data.metrics]
    return env.get_template("report.html.j2").render(
        name=data.cfg.name,
        n_layers=data.n_layers,
        n_seen=int(data.seen_mask.sum()),
        n_unseen=int((~data.seen_mask).sum()),
        summary=summary(data),
        layer_map_reading=read_layer_map(data),
        setup=setup_facts(data),
        comparison=paper_comparison(data),
        groups_source=groups_source(data),
        figures=figures,
        missing_figures=missing,
        layer_table=found.layer_probabilities if found else None,
        group_names=GROUPS,
        cka_table=_cka_table(data),
        metrics=metrics,
        sources=task_sources(data),
        version=mossa_version(),
        tables_dir=str(RunDir(data.run_dir).tables_dir),
        confidence=f"{data.cfg.evaluation.confidence:.0%}",
    )
