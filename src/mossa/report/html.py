"""report.html: one self-contained page (figures inlined as base64 PNG, no external files)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader

from mossa.report.data import RunData, cluster_name
from mossa.report.figures import FIGURES
from mossa.report.readings import READINGS, paper_comparison, working_groups
from mossa.run_dir import RunDir
from mossa.store import mossa_version

CAPTIONS = {
    "layer_map": "Top: mean over seen tasks of CKA(SFT, control) − CKA(base, control) per layer, "
    "with its 95% task-bootstrap interval and the fitted broken line; bands mark the groups. "
    "Bottom: per layer, the share of task-bootstrap refits giving each group, and the paper's "
    "map scaled to this depth.",
    "cka_layers": "Box plots over seen tasks of CKA between each model and the task's control "
    "model, per layer. Grey: the 95th percentile of CKA after shuffling the control's rows (the "
    "largest over tasks), i.e. what unrelated states would score. Bottom: the biased estimator "
    "the paper used.",
    "cka_clusters": "The same box plots for each task cluster (debiased CKA).",
    "tsne": "t-SNE maps of the last-prompt-token states of every seen task, coloured by cluster, "
    "at the paper's layers scaled to this depth.",
    "clustering": "Left: Adjusted Rand Index of k-means (k = number of clusters) against the "
    "cluster labels; right: silhouette of the cluster labels. All seen tasks' states together.",
    "pca_dims": "Number of principal components explaining the configured share of the variance "
    "of each task's states, mean ± sd over seen tasks.",
    "readability": "Pearson correlation over seen tasks between debiased CKA with the control and "
    "the reading difficulty of the task's prompts; rings mark p < 0.05.",
    "unseen": "CKA with the control on tasks the SFT model never saw (their controls were "
    "trained).",
    "data_size": "Pearson correlation over seen tasks between debiased CKA and the task's "
    "training-set size; rings mark p < 0.05.",
    "cross_layer": "Debiased CKA between every layer of the model and every layer of the control, "
    "mean over seen tasks.",
}
POOLING = {"last": "state of the last prompt token", "mean": "states averaged over prompt tokens"}
NOT_DRAWN = {
    "tsne": "no t-SNE maps (analysis.tsne_layers is empty or there are no seen tasks)",
    "unseen": "this run has no unseen tasks",
    "cka_layers": "this run has no seen tasks",
    "cka_clusters": "this run has no seen tasks",
    "clustering": "no clustering table rows",
    "layer_map": "no layer-map curve (no seen tasks)",
    "cross_layer": "no cross-layer matrices",
}


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
    mask = data.seen_mask
    if not mask.any():
        return []

    def med(model, column):
        return np.nanmedian(data.cka[(model, column)][mask], axis=0)

    cols = {
        "base": med("base", "cka"),
        "base_biased": med("base", "cka_biased"),
        "sft": med("sft", "cka"),
        "sft_biased": med("sft", "cka_biased"),
        "null": np.nanmedian(
            np.vstack([data.cka[(m, "null_p95")][mask] for m in ("base", "sft")]), axis=0
        ),
    }
    return [
        {"layer": int(layer), **{k: _num(v[layer]) for k, v in cols.items()}}
        for layer in data.layers
    ]


def render_html(data: RunData, figure_paths: dict[str, Path]) -> str:
    """The report page for ``data`` with the PNGs in ``figure_paths`` (name -> path) inlined."""
    env = Environment(loader=PackageLoader("mossa.report", "templates"), autoescape=True)
    figures = []
    for spec in FIGURES:
        path = figure_paths.get(spec.name)
        if path is None:
            continue
        figures.append(
            {
                "name": spec.name,
                "title": spec.title,
                "paper": spec.paper,
                "png": base64.b64encode(Path(path).read_bytes()).decode("ascii"),
                "caption": CAPTIONS[spec.name],
                "readings": READINGS[spec.name](data),
            }
        )
    missing = {
        s.name: NOT_DRAWN.get(s.name, "not applicable")
        for s in FIGURES
        if s.name not in figure_paths
    }
    _, source = working_groups(data)
    metrics = [
        {
            **r,
            "cluster": cluster_name(data.cluster.get(r["task"], "")),
            **{m: _num(r[m]) for m in ("base", "sft", "control")},
        }
        for r in data.metrics
    ]
    return env.get_template("report.html.j2").render(
        name=data.cfg.name,
        n_layers=data.n_layers,
        n_seen=int(data.seen_mask.sum()),
        n_unseen=int((~data.seen_mask).sum()),
        readings={"layer_map": READINGS["layer_map"](data)},
        setup=setup_facts(data),
        comparison=paper_comparison(data),
        groups_source=source,
        figures=figures,
        missing_figures=missing,
        layer_table=data.groups.get("layer_probabilities")
        if data.groups.get("structure")
        else None,
        group_names=("shared", "transition", "refinement"),
        cka_table=_cka_table(data),
        metrics=metrics,
        version=mossa_version(),
        tables_dir=str(RunDir(data.run_dir).tables_dir),
    )
