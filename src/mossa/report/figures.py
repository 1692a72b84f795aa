"""The paper's figures on this run's tables, one function per figure (matplotlib, Agg), and
those beyond the paper: evidence, the SFT snapshots over training, the other measures.

Each ``fig_*`` function takes the run's :class:`~mossa.report.data.RunData` and returns a
matplotlib Figure, or None when the run has nothing to show for it (e.g. no unseen
tasks, or a run without the table the figure draws). :data:`FIGURES` is the one registry
of the report's figures, in report order: per figure a :class:`FigureSpec` with its
drawing, caption and reading.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from mossa.analysis.layer_map import GROUPS  # noqa: E402
from mossa.analysis.paper import paper_groups  # noqa: E402
from mossa.clustering.over_steps import ari_over_steps_figure  # noqa: E402
from mossa.io import atomic_write_bytes  # noqa: E402
from mossa.report import readings  # noqa: E402
from mossa.report.data import RunData, cluster_name  # noqa: E402

COLORS = {"base": "#4C72B0", "sft": "#DD8452", "control": "#55A868"}
LABELS = {"base": "base", "sft": "SFT", "control": "control"}
GROUP_COLORS = {"shared": "#9ecae1", "transition": "#fdae6b", "refinement": "#a1d99b"}
NULL_COLOR = "#bbbbbb"
DPI = 110


def _layer_ticks(ax, n_layers: int, start: int = 0) -> None:
    step = max(1, math.ceil((n_layers + 1 - start) / 16))
    ax.set_xticks(range(start, n_layers + 1, step))
    ax.set_xlim(start - 0.7, n_layers + 0.7)


def _boxes(ax, data: RunData, mask: np.ndarray, column: str = "cka", null: bool = True) -> None:
    """Paired box plots per layer: base and SFT CKA against the control over ``mask`` tasks."""
    layers = data.layers
    if null and column == "cka":
        p95 = np.nanmax(
            np.vstack([data.cka[(m, "null_p95")][mask] for m in ("base", "sft")]), axis=0
        )
        ax.fill_between(
            layers,
            -1,
            p95,
            step="mid",
            color=NULL_COLOR,
            alpha=0.45,
            lw=0,
            label="permutation null, 95th pct (max over tasks)",
        )
    _model_boxes(ax, layers, {m: data.cka[(m, column)][mask] for m in ("base", "sft")})
    lo = np.nanmin([np.nanmin(data.cka[(m, column)][mask]) for m in ("base", "sft")])
    ax.set_ylim(min(0.0, lo) - 0.05, 1.05)
    ax.axhline(0, color="black", lw=0.5)
    _layer_ticks(ax, data.n_layers)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.grid(axis="y", alpha=0.3)


def _model_legend(ax, extra: list | None = None, **kw) -> None:
    handles = [Patch(color=COLORS[m], label=LABELS[m]) for m in ("base", "sft")]
    ax.legend(handles=handles + (extra or []), fontsize=8, **kw)


def fig_cka_layers(data: RunData) -> Figure | None:
    """Fig. 2: CKA with each task's control per layer, base vs SFT, debiased and biased."""
    mask = data.seen_mask
    if not mask.any():
        return None
    width = max(8.0, 0.42 * (data.n_layers + 1) + 2)
    fig, axes = plt.subplots(2, 1, figsize=(width, 7.2), sharex=True)
    _boxes(axes[0], data, mask, "cka")
    axes[0].set_xlabel("")
    axes[0].set_ylabel("debiased CKA")
    fig.suptitle(f"CKA with each task's control model ({int(mask.sum())} seen tasks)")
    null = Patch(color=NULL_COLOR, alpha=0.45, label="permutation null p95 (max over tasks)")
    _model_legend(
        axes[0], [null], loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False
    )
    _boxes(axes[1], data, mask, "cka_biased", null=False)
    axes[1].set_ylabel("biased CKA (as in the paper)")
    fig.tight_layout()
    return fig


def fig_cka_clusters(data: RunData) -> Figure | None:
    """Fig. 3, 8, 9: the same distributions, one panel per task cluster (debiased)."""
    clusters = data.clusters(seen=True)
    if not clusters:
        return None
    cols = min(3, len(clusters))
    rows = math.ceil(len(clusters) / cols)
    width = max(4.5, 0.2 * (data.n_layers + 1) + 2.2) * cols
    fig, axes = plt.subplots(rows, cols, figsize=(width, 2.9 * rows), squeeze=False)
    for ax, cluster in zip(axes.flat, clusters, strict=False):
        mask = np.array([data.seen[t] and data.cluster[t] == cluster for t in data.tasks])
        _boxes(ax, data, mask, "cka")
        count = int(mask.sum())
        ax.set_title(f"{cluster_name(cluster)} ({count} task{'s' * (count != 1)})", fontsize=10)
        ax.set_ylabel("debiased CKA")
    for ax in list(axes.flat)[len(clusters) :]:
        ax.axis("off")
    _model_legend(
        axes.flat[0], [Patch(color=NULL_COLOR, alpha=0.45, label="null p95")], loc="lower left"
    )
    fig.tight_layout()
    return fig


def fig_tsne(data: RunData) -> Figure | None:
    """Fig. 4, 11, 12: t-SNE of the states coloured by cluster, base and SFT, chosen layers."""
    if not data.tsne:
        return None
    layers = sorted({r["layer"] for r in data.tsne})
    models = [m for m in ("base", "sft") if any(r["model"] == m for r in data.tsne)]
    clusters = list(dict.fromkeys(r["cluster"] for r in data.tsne))
    cmap = plt.get_cmap("tab20" if len(clusters) > 10 else "tab10")
    color = {c: cmap(i % cmap.N) for i, c in enumerate(clusters)}
    legend_width = 2.9  # inches, for cluster names beside the maps
    width = 2.8 * len(layers) + 0.4 + legend_width
    fig, axes = plt.subplots(
        len(models), len(layers), figsize=(width, 2.9 * len(models) + 0.3), squeeze=False
    )
    for i, model in enumerate(models):
        for j, layer in enumerate(layers):
            ax = axes[i, j]
            pts = [r for r in data.tsne if r["model"] == model and r["layer"] == layer]
            ax.scatter(
                [r["x"] for r in pts],
                [r["y"] for r in pts],
                c=[color[r["cluster"]] for r in pts],
                s=6,
                linewidths=0,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{LABELS[model]}, layer {layer}", fontsize=10)
    handles = [Patch(color=color[c], label=cluster_name(c)) for c in clusters]
    right = 1 - legend_width / width
    fig.legend(
        handles=handles, loc="center left", bbox_to_anchor=(right, 0.5), fontsize=8, frameon=False
    )
    fig.tight_layout(rect=(0, 0, right, 1))
    return fig


def fig_pca_dims(data: RunData) -> Figure | None:
    """Fig. 5: principal components for 99% of the variance per layer, mean over tasks."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    mask = data.seen_mask
    for model in ("base", "sft", "control"):
        if model not in data.pca:
            continue
        values = data.pca[model][mask]
        mean, sd = values.mean(axis=0), values.std(axis=0)
        ax.plot(data.layers, mean, marker="o", ms=3, color=COLORS[model], label=LABELS[model])
        ax.fill_between(data.layers, mean - sd, mean + sd, color=COLORS[model], alpha=0.15, lw=0)
    _layer_ticks(ax, data.n_layers)
    ax.set_xlabel("layer (0 = embeddings)")
    variance = data.cfg.analysis.pca_variance
    ax.set_ylabel(f"components for {variance:.0%} of variance")
    ax.set_title(f"Dimensionality of the states (mean ± sd over {int(mask.sum())} seen tasks)")
    _shade_groups(ax, data)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _shade_groups(ax, data: RunData) -> None:
    """Light background bands for the run's transition layers, when it found any."""
    groups = data.layer_map.groups
    if groups:
        span = groups.transition
        ax.axvspan(
            span.first - 0.5,
            span.last + 0.5,
            color=GROUP_COLORS["transition"],
            alpha=0.25,
            lw=0,
            label="transition layers (this run)",
        )


def _correlation_panel(ax, data: RunData, measure: str, title: str) -> None:
    for model in ("base", "sft"):
        r, p = data.correlations.get((model, measure), (None, None))
        if r is None:
            continue
        ax.plot(data.layers, r, marker="o", ms=3, color=COLORS[model], label=LABELS[model])
        sig = np.isfinite(p) & (p < 0.05)
        ax.scatter(data.layers[sig], r[sig], s=50, facecolors="none", edgecolors=COLORS[model])
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylim(-1.05, 1.05)
    _layer_ticks(ax, data.n_layers)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("Pearson r with CKA")
    ax.set_title(title, fontsize=10)
    _shade_groups(ax, data)
    ax.grid(alpha=0.3)


def _ring():
    return plt.Line2D([], [], ls="", marker="o", mfc="none", mec="black", ms=7, label="p < 0.05")


def fig_readability(data: RunData) -> Figure | None:
    """Fig. 6: correlation of CKA with reading difficulty per layer (FK and Coleman-Liau)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), sharey=True)
    _correlation_panel(axes[0], data, "flesch_kincaid", "(a) Flesch-Kincaid grade")
    _correlation_panel(axes[1], data, "coleman_liau", "(b) Coleman-Liau index")
    handles, _ = axes[0].get_legend_handles_labels()
    axes[0].legend(handles=[*handles, _ring()], fontsize=8, loc="best")
    fig.suptitle("Does similarity to the control follow reading difficulty? (seen tasks)")
    fig.tight_layout()
    return fig


def fig_unseen(data: RunData) -> Figure | None:
    """Fig. 7: CKA with the control per layer on unseen tasks, base vs SFT."""
    mask = ~data.seen_mask
    if not mask.any():
        return None
    fig, ax = plt.subplots(figsize=(max(8.0, 0.42 * (data.n_layers + 1) + 2), 4.2))
    _boxes(ax, data, mask, "cka")
    ax.set_ylabel("debiased CKA")
    ax.set_title(f"Unseen tasks ({int(mask.sum())}, never in the SFT mixture)")
    _model_legend(ax, [Patch(color=NULL_COLOR, alpha=0.45, label="null p95")], loc="lower left")
    fig.tight_layout()
    return fig


def fig_data_size(data: RunData) -> Figure | None:
    """Fig. 10: correlation of CKA with the task's training-set size per layer."""
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    _correlation_panel(ax, data, "data_size", "Correlation of CKA with training-set size")
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*handles, _ring()], fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def fig_layer_map(data: RunData) -> Figure | None:
    """The layer map: SFT-minus-base CKA curve, the fitted groups and their confidence."""
    fit = data.layer_map.fit
    if not fit.mean_difference:
        return None
    n_layers = fit.n_layers
    layers = list(fit.mean_difference)
    fig, (ax, bands) = plt.subplots(
        2,
        1,
        figsize=(max(8.0, 0.35 * n_layers + 3), 5.4),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1.3]},
    )
    if fit.mean_difference_ci:
        ci = np.asarray(list(fit.mean_difference_ci.values()))
        ax.fill_between(
            layers,
            ci[:, 0],
            ci[:, 1],
            color=COLORS["sft"],
            alpha=0.2,
            lw=0,
            label="95% bootstrap interval over tasks",
        )
    ax.plot(
        layers,
        list(fit.mean_difference.values()),
        "o-",
        color=COLORS["sft"],
        ms=4,
        label="mean over seen tasks",
    )
    found = fit.structure
    if found:
        label = "two-bend fit" if found.model == "two_knots" else "one-bend fit"
        ax.plot(layers, list(found.fitted.values()), color="black", lw=1.2, ls="--", label=label)
        for name, span in found.groups.items():
            if span:
                ax.axvspan(
                    span.first - 0.5, span.last + 0.5, color=GROUP_COLORS[name], alpha=0.3, lw=0
                )
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("CKA(SFT) − CKA(base)")
    ax.set_title("Layer map" if found else "Layer map: no layer structure found")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)

    rows = [
        ("this run", found.layer_probabilities if found else None, None),
        ("paper (scaled)", None, paper_groups(n_layers)),
    ]
    for y, (_, probs, groups) in enumerate(rows):
        if probs:
            bottom = np.zeros(n_layers)
            for name in GROUPS:
                p = np.array([getattr(shares, name) for shares in probs.values()])
                bands.bar(
                    list(probs),
                    p * 0.8,
                    bottom=y + bottom - 0.4,
                    width=0.9,
                    color=GROUP_COLORS[name],
                    edgecolor="none",
                )
                bottom += p * 0.8
        elif groups:
            for name, span in groups.items():
                if span:
                    bands.barh(
                        y,
                        span.last - span.first + 1,
                        left=span.first - 0.5,
                        height=0.8,
                        color=GROUP_COLORS[name],
                        edgecolor="white",
                    )
        else:
            bands.text((n_layers + 1) / 2, y, "no groups", ha="center", va="center", fontsize=9)
    bands.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=9)
    bands.set_ylim(len(rows) - 0.5, -0.5)
    bands.set_xlabel("layer (bar height in 'this run' = share of task-bootstrap fits)")
    _layer_ticks(bands, n_layers, start=1)
    handles = [Patch(color=c, label=n) for n, c in GROUP_COLORS.items()]
    bands.legend(
        handles=handles,
        fontsize=8,
        ncol=3,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.55),
        frameon=False,
    )
    fig.tight_layout()
    return fig


def fig_cross_layer(data: RunData) -> Figure | None:
    """Cross-layer CKA (model layer x control layer), mean over seen tasks, base and SFT."""
    models = [m for m in ("base", "sft") if m in data.cross]
    if not models:
        return None
    fig, axes = plt.subplots(
        1, len(models), figsize=(4.6 * len(models) + 1.2, 4.4), squeeze=False, layout="constrained"
    )
    vmin = min(0.0, min(float(np.nanmin(data.cross[m])) for m in models))
    vmax = max(float(np.nanmax(data.cross[m])) for m in models)
    for ax, model in zip(axes[0], models, strict=True):
        im = ax.imshow(
            data.cross[model], origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto"
        )
        ax.set_xlabel("control layer")
        ax.set_ylabel(f"{LABELS[model]} layer")
        ax.set_title(f"{LABELS[model]} vs control (mean debiased CKA)", fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, label="CKA")
    return fig


def fig_clustering(data: RunData) -> Figure | None:
    """k-means ARI against cluster labels and silhouette per layer, base and SFT."""
    if not data.clustering:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for model, (ari, sil) in data.clustering.items():
        axes[0].plot(
            data.layers, ari, "o-", ms=3, color=COLORS.get(model), label=LABELS.get(model, model)
        )
        axes[1].plot(
            data.layers, sil, "o-", ms=3, color=COLORS.get(model), label=LABELS.get(model, model)
        )
    for ax, ylabel in zip(
        axes, ("ARI of k-means vs clusters", "silhouette of cluster labels"), strict=True
    ):
        _layer_ticks(ax, data.n_layers)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylabel(ylabel)
        ax.axhline(0, color="black", lw=0.6)
        _shade_groups(ax, data)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Do the states group by task cluster? (all seen tasks together)")
    fig.tight_layout()
    return fig


def _model_boxes(ax, layers: np.ndarray, values: dict[str, np.ndarray]) -> None:
    """Box plots per layer of [task, layer] arrays, base beside SFT (NaN left out)."""
    for offset, model in ((-0.19, "base"), (0.19, "sft")):
        columns = [v[np.isfinite(v)] for v in values[model].T]
        ax.boxplot(
            columns,
            positions=layers + offset,
            widths=0.34,
            patch_artist=True,
            manage_ticks=False,
            flierprops={"markersize": 2, "markeredgecolor": COLORS[model]},
            medianprops={"color": "black", "lw": 1},
            boxprops={"facecolor": COLORS[model], "edgecolor": COLORS[model], "alpha": 0.85},
            whiskerprops={"color": COLORS[model]},
            capprops={"color": COLORS[model]},
        )


def _median_band(ax, layers, values: np.ndarray, color: str, label: str) -> None:
    """Median over tasks per layer with the band between the quartiles."""
    q1, med, q3 = np.nanquantile(values, [0.25, 0.5, 0.75], axis=0)
    ax.plot(layers, med, color=color, lw=2, marker="o", ms=3, label=label)
    ax.fill_between(layers, q1, q3, color=color, alpha=0.2, lw=0)


def fig_specificity(data: RunData) -> Figure | None:
    """Paired SFT-minus-base difference per task (cka_diff.csv) and task specificity of base
    and SFT (specificity.csv), seen tasks, per layer."""
    mask = data.seen_mask
    ev = data.evidence
    if not (mask.any() and ev.has_diff):
        return None
    rows = 2 if ev.has_specificity else 1
    fig, axes = plt.subplots(rows, 1, figsize=(11, 4.2 * rows), squeeze=False)
    ax = axes[0, 0]
    layers = data.layers
    diff, low, high = (ev.diff[c][mask] for c in ("diff", "ci_low", "ci_high"))
    for d, lo, hi in zip(diff, low, high, strict=True):
        ax.plot(layers, d, color=COLORS["sft"], lw=0.7, alpha=0.5)
        clear = (lo > 0) | (hi < 0)
        ax.plot(layers[clear], d[clear], "o", color=COLORS["sft"], ms=3)
    ax.plot(layers, np.nanmedian(diff, axis=0), color="black", lw=2, label="median over tasks")
    ax.axhline(0, color="black", lw=0.6)
    ax.plot([], [], "o", color=COLORS["sft"], ms=3, label="task whose 95% interval excludes 0")
    ax.set_ylabel("CKA(SFT, C_t) − CKA(base, C_t)")
    ax.set_title("Paired difference per seen task (bootstrap over prompts)")
    ax.legend(fontsize=8)
    _layer_ticks(ax, data.n_layers)
    if ev.has_specificity:
        ax = axes[1, 0]
        spec = {m: ev.specificity[(m, "specificity")][mask] for m in ("base", "sft")}
        _model_boxes(ax, layers, spec)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylabel("CKA(M, C_t) − mean CKA(M, C_other)")
        ax.set_title("Task specificity: own control minus other tasks' controls")
        _model_legend(ax)
        _layer_ticks(ax, data.n_layers)
    axes[-1, 0].set_xlabel("layer (0 = embeddings)")
    fig.tight_layout()
    return fig


def fig_ceiling(data: RunData) -> Figure | None:
    """CKA(SFT, C_t) against the noise ceiling (CKA between two seeds of C_t), per layer."""
    mask = data.seen_mask
    ev = data.evidence
    if not (mask.any() and ev.has_ceiling):
        return None
    layers = data.layers
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    _median_band(left, layers, ev.ceiling["ceiling"][mask], COLORS["control"], "ceiling")
    _median_band(left, layers, ev.ceiling["sft_cka"][mask], COLORS["sft"], "CKA(SFT, C_t)")
    left.set_ylabel("debiased CKA (median, quartiles over seen tasks)")
    left.set_title("CKA between two seeds of a control, and SFT's")
    left.legend(fontsize=8)
    relative = ev.ceiling["sft_relative"][mask]
    for r in relative:
        right.plot(layers, r, color=COLORS["sft"], lw=0.7, alpha=0.5)
    right.plot(layers, np.nanmedian(relative, axis=0), color="black", lw=2, label="median")
    right.axhline(1, color=COLORS["control"], lw=1, ls="--", label="at the ceiling")
    right.set_ylabel("CKA(SFT, C_t) / ceiling")
    right.set_title("SFT relative to the noise ceiling, per seen task")
    right.legend(fontsize=8)
    for ax in (left, right):
        _layer_ticks(ax, data.n_layers)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def fig_over_training_diff(data: RunData) -> Figure | None:
    """Layer x step heatmap of the mean paired SFT-snapshot-minus-base difference over seen
    tasks; dots where at least half of the tasks' paired intervals lie above 0."""
    ot = data.over_training
    if not (ot.steps and ot.seen.any()):
        return None
    mean, present = ot.mean_diff, ot.present
    limit = max(float(np.nanmax(np.abs(mean), initial=0.0)), 1e-6)
    fig = Figure(
        figsize=(max(6.5, 0.45 * len(ot.steps) + 3.5), max(4.2, 0.25 * (data.n_layers + 1) + 1.8)),
        layout="constrained",
    )
    ax = fig.subplots()
    im = ax.imshow(mean.T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
    cols, rows = np.nonzero(present)
    ax.scatter(cols, rows, s=14, color="black", label="≥ half of the tasks' 95% interval above 0")
    found = ot.maps["emergence"]["step"] if ot.maps else None
    if found in ot.steps:
        ax.axvline(
            ot.steps.index(found) - 0.5,
            color="black",
            ls="--",
            lw=1.2,
            label=f"present from step {found} on (layer_map_over_training.json)",
        )
    every = max(1, math.ceil(len(ot.steps) / 16))
    ax.set_xticks(range(0, len(ot.steps), every), [str(s) for s in ot.steps[::every]])
    _layer_ticks_y(ax, data.n_layers)
    ax.set_xlabel("SFT training step (snapshot)")
    ax.set_ylabel("layer (0 = embeddings)")
    ax.set_title(f"Mean CKA(snapshot, C_t) − CKA(base, C_t) over {int(ot.seen.sum())} seen tasks")
    fig.colorbar(im, ax=ax, label="mean paired difference (debiased CKA)")
    if len(rows) or found in ot.steps:
        fig.legend(fontsize=8, loc="outside lower center", ncol=2, frameon=False)
    return fig


def _layer_ticks_y(ax, n_layers: int) -> None:
    step = max(1, math.ceil((n_layers + 1) / 16))
    ax.set_yticks(range(0, n_layers + 1, step))


BOUNDARY_COLORS = {"transition": "#e6550d", "refinement": "#31a354"}


def fig_over_training_groups(data: RunData) -> Figure | None:
    """The layer map of every snapshot: group spans as bars, the transition and refinement
    starts joined over steps (marker size and opacity: share of refits within ±1 layer)."""
    maps = data.over_training.maps
    if not (maps and maps["maps"]):
        return None
    snaps = maps["maps"]
    steps = np.array([m["step"] for m in snaps], dtype=float)
    width = 0.6 * (float(np.min(np.diff(steps))) if len(steps) > 1 else 1.0)
    fig = Figure(figsize=(max(7.0, 0.4 * len(steps) + 4), 4.6), layout="constrained")
    ax = fig.subplots()
    bare = [x for x, m in zip(steps, snaps, strict=True) if not (m["structure"] and m["groups"])]
    if bare:
        middle = [(data.n_layers + 1) / 2] * len(bare)
        ax.plot(bare, middle, "x", ls="", color="grey", ms=10, mew=2, label="no groups")
    for x, m in zip(steps, snaps, strict=True):
        if not (m["structure"] and m["groups"]):
            continue
        for name, span in m["groups"].items():
            if span:
                ax.bar(
                    x,
                    span[1] - span[0] + 1,
                    bottom=span[0] - 0.5,
                    width=width,
                    color=GROUP_COLORS[name],
                    alpha=0.6,
                    lw=0,
                )
    for name, color in BOUNDARY_COLORS.items():
        starts, shares = [], []
        for m in snaps:
            span = (m["groups"] or {}).get(name) if m["structure"] else None
            starts.append(span[0] if span else np.nan)
            shares.append((m.get("confidence") or {}).get(f"{name}_start", 1.0))
        starts, shares = np.array(starts, dtype=float), np.array(shares, dtype=float)
        ax.plot(steps, starts, "-", color=color, lw=1.2)  # NaN: a gap where no group starts
        rgba = np.array([matplotlib.colors.to_rgba(color, 0.25 + 0.75 * a) for a in shares])
        ax.scatter(steps, starts, s=15 + 60 * shares, color=rgba, label=f"{name} start", zorder=3)
    marks: dict[int, list[str]] = {}
    for key, label in (
        ("first_structure_step", "groups appear"),
        ("first_holds_step", "paper's map holds"),
    ):
        if maps[key] is not None:
            marks.setdefault(maps[key], []).append(label)
    for step, labels in marks.items():
        ax.axvline(step, color="black", ls="--", lw=1)
        ax.text(step, data.n_layers + 0.6, " " + ", ".join(labels), fontsize=8, va="bottom")
    if len(steps) <= 16:
        ax.set_xticks(steps, [str(int(x)) for x in steps])
    ax.set_ylim(0, data.n_layers + 1.5)
    ax.set_xlabel("SFT training step (snapshot)")
    ax.set_ylabel("layer")
    ax.set_title("Layer groups of each snapshot")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=c, alpha=0.6, label=n) for n, c in GROUP_COLORS.items()]
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3)
    return fig


def fig_over_training_ari(data: RunData) -> bytes | None:
    """k-means ARI against task labels per layer over the snapshots, seen and unseen tasks,
    drawn by the figure the regex clustering experiment uses (PNG bytes)."""
    rows = [r for r in data.over_training.clustering if r["labels"] == "task"]
    drawn = {r["split"] for r in rows if np.isfinite(r["ari"])}
    splits = tuple(s for s in ("seen", "unseen") if s in drawn)
    if not splits:
        return None
    return ari_over_steps_figure(
        rows,
        splits=splits,
        title="Do the states cluster by task over SFT? (step 0 = base model)",
        ylabel="ARI of k-means (k = tasks) vs task labels",
        labels="task",
    )


def fig_measures_layers(data: RunData) -> Figure | None:
    """Median over seen tasks per layer of every measure, base vs SFT (one panel each), with
    the permutation-null p95."""
    if not (data.measures.names and data.seen_mask.any()):
        return None
    values = data.measure_values()
    cols = min(2, len(values))
    rows = math.ceil(len(values) / cols)
    fig = Figure(figsize=(6.0 * cols, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (name, v) in zip(axes, values.items(), strict=False):
        for model in ("base", "sft"):
            _median_band(ax, data.layers, v[model], COLORS[model], LABELS[model])
        null = np.nanmedian(v["null"], axis=0)
        ax.plot(data.layers, null, color="grey", ls="--", lw=1, label="null p95 (median)")
        ax.set_title(readings.MEASURE_TITLES.get(name, name), fontsize=10)
        ax.set_ylabel("median over seen tasks")
        _layer_ticks(ax, data.n_layers)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.grid(alpha=0.3)
    for ax in axes[len(values) :]:
        ax.axis("off")
    axes[0].legend(fontsize=8)
    fig.suptitle("Each measure against the task's control (band: quartiles over seen tasks)")
    return fig


def fig_measures_agreement(data: RunData) -> Figure | None:
    """Measure x layer grid coloured by each measure's layer group (grey: none); triangles
    mark the layers every measure puts in the same group."""
    maps = data.measures.maps
    if not (maps and maps["agreement"]):
        return None
    names = list(maps["measures"])
    layers = [r["layer"] for r in maps["agreement"]]
    code = {None: 0, **{g: i + 1 for i, g in enumerate(GROUPS)}}
    grid = np.array([[code[r["groups"].get(n)] for r in maps["agreement"]] for n in names])
    cmap = ListedColormap([NULL_COLOR, *(GROUP_COLORS[g] for g in GROUPS)])
    fig = Figure(
        figsize=(max(7.0, 0.32 * len(layers) + 3), 1.6 + 0.55 * len(names)), layout="constrained"
    )
    ax = fig.subplots()
    ax.imshow(
        grid,
        cmap=cmap,
        vmin=-0.5,
        vmax=len(GROUPS) + 0.5,
        aspect="auto",
        extent=(layers[0] - 0.5, layers[-1] + 0.5, len(names) - 0.5, -0.5),
    )
    agree = [r["layer"] for r in maps["agreement"] if r["agree"]]
    ax.scatter(agree, [-0.8] * len(agree), marker="v", color="black", clip_on=False, s=25)
    ax.set_ylim(len(names) - 0.5, -1.1)
    labels = [
        readings.MEASURE_TITLES.get(n, n) + ("" if maps["measures"][n]["structure"] else " (none)")
        for n in names
    ]
    ax.set_yticks(range(len(names)), labels)
    _layer_ticks(ax, layers[-1], start=layers[0])
    ax.set_xlabel("layer")
    ax.set_title(f"Layer groups per measure: agree on {len(agree)} of {len(layers)} layers")
    handles = [Patch(color=GROUP_COLORS[g], label=g) for g in GROUPS]
    handles += [Patch(color=NULL_COLOR, label="no group")]
    handles += [plt.Line2D([], [], ls="", marker="v", color="black", label="all measures agree")]
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncol=5, frameon=False)
    return fig


@dataclass(frozen=True)
class FigureSpec:
    """Everything the report needs of one figure; adding a figure is adding one of these.

    ``name`` is the PNG's file stem and the section's anchor, ``section`` its heading and
    ``paper`` the paper figure it redraws. ``draw`` returns the figure (or its PNG bytes, for
    a figure shared with another experiment), or None when the run has nothing to show
    (``absent`` then says why). ``caption`` goes under the figure and ``reading`` gives the
    sentences under that (from the findings; the figures beyond the paper's count and take
    medians of their tables, see :mod:`mossa.report.readings`). Consecutive figures with the
    same ``part`` are grouped under that heading (h2, each figure an h3).
    """

    name: str
    section: str
    paper: str
    draw: Callable[[RunData], Figure | bytes | None]
    caption: str
    reading: Callable[[RunData], list[str]]
    absent: str = "not applicable"
    part: str = ""


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "layer_map",
        "Layer map",
        "Fig. 1",
        fig_layer_map,
        "Top: mean over seen tasks of CKA(SFT, control) − CKA(base, control) per layer, with its "
        "95% task-bootstrap interval and the fitted broken line; bands mark the groups. Bottom: "
        "per layer, the share of task-bootstrap refits giving each group, and the paper's map "
        "scaled to this depth.",
        readings.read_layer_map,
        "no layer-map curve (no seen tasks)",
    ),
    FigureSpec(
        "cka_layers",
        "CKA with the control models per layer",
        "Fig. 2",
        fig_cka_layers,
        "Box plots over seen tasks of CKA between each model and the task's control model, per "
        "layer. Grey: the 95th percentile of CKA after shuffling the control's rows (the largest "
        "over tasks), i.e. what unrelated states would score. Bottom: the biased estimator the "
        "paper used.",
        readings.read_cka_layers,
        "this run has no seen tasks",
    ),
    FigureSpec(
        "cka_clusters",
        "CKA per task cluster",
        "Fig. 3, 8, 9",
        fig_cka_clusters,
        "The same box plots for each task cluster (debiased CKA).",
        readings.read_cka_clusters,
        "this run has no seen tasks",
    ),
    FigureSpec(
        "tsne",
        "t-SNE of the states by cluster",
        "Fig. 4, 11, 12",
        fig_tsne,
        "t-SNE maps of the last-prompt-token states of every seen task, coloured by cluster, at "
        "the paper's layers scaled to this depth.",
        readings.read_tsne,
        "no t-SNE maps (analysis.tsne_layers is empty or there are no seen tasks)",
    ),
    FigureSpec(
        "clustering",
        "Clustering of the states by task cluster",
        "Fig. 4, quantified",
        fig_clustering,
        "Left: Adjusted Rand Index of k-means (k = number of clusters) against the cluster "
        "labels; right: silhouette of the cluster labels. All seen tasks' states together.",
        readings.read_clustering,
        "no clustering table rows",
    ),
    FigureSpec(
        "pca_dims",
        "Dimensions for 99% of the variance",
        "Fig. 5",
        fig_pca_dims,
        "Number of principal components explaining the configured share of the variance of "
        "each task's states, mean ± sd over seen tasks.",
        readings.read_pca,
    ),
    FigureSpec(
        "readability",
        "CKA and reading difficulty",
        "Fig. 6",
        fig_readability,
        "Pearson correlation over seen tasks between debiased CKA with the control and the "
        "reading difficulty of the task's prompts; rings mark p < 0.05.",
        readings.read_readability,
    ),
    FigureSpec(
        "unseen",
        "Unseen tasks",
        "Fig. 7",
        fig_unseen,
        "CKA with the control on tasks the SFT model never saw (their controls were trained).",
        readings.read_unseen,
        "this run has no unseen tasks",
    ),
    FigureSpec(
        "data_size",
        "CKA and data size",
        "Fig. 10",
        fig_data_size,
        "Pearson correlation over seen tasks between debiased CKA and the task's training-set "
        "size; rings mark p < 0.05.",
        readings.read_data_size,
    ),
    FigureSpec(
        "cross_layer",
        "Cross-layer CKA",
        "not in the paper",
        fig_cross_layer,
        "Debiased CKA between every layer of the model and every layer of the control, mean "
        "over seen tasks.",
        readings.read_cross_layer,
        "no cross-layer matrices",
    ),
    FigureSpec(
        "specificity",
        "Paired difference and task specificity",
        "not in the paper",
        fig_specificity,
        "Top: per seen task, CKA(SFT, C_t) − CKA(base, C_t) with both terms on the same "
        "bootstrap resamples of the task's prompts (dots: the 95% interval excludes 0), and the "
        "median over tasks. Bottom: task specificity, CKA with the task's own control minus the "
        "mean CKA with other tasks' controls on the same prompts, base beside SFT.",
        readings.read_specificity,
        "no paired differences of seen tasks (tables/cka_diff.csv missing or empty)",
        part="Evidence",
    ),
    FigureSpec(
        "ceiling",
        "SFT against the noise ceiling",
        "not in the paper",
        fig_ceiling,
        "Left: median and quartiles over seen tasks of the ceiling (CKA between two training "
        "seeds of the task's control) and of CKA(SFT, C_t). Right: their ratio per task; 1 means "
        "SFT is as close to the control as another seed of the control is.",
        readings.read_ceiling,
        "no noise ceiling (tables/ceiling.csv empty: training.control_seeds is 1)",
        part="Evidence",
    ),
    FigureSpec(
        "over_training_diff",
        "Paired difference per layer and step",
        "not in the paper",
        fig_over_training_diff,
        "Mean over seen tasks of CKA(snapshot, C_t) − CKA(base, C_t) for every SFT snapshot "
        "(column) and layer (row); red: the snapshot is closer to the task's control than the "
        "base is. Dots: at least half of the tasks' paired 95% intervals lie above 0.",
        readings.read_over_training_diff,
        "no SFT snapshots (tables/cka_over_training.csv missing or empty: training.snapshot_every)",
        part="Over training",
    ),
    FigureSpec(
        "over_training_groups",
        "Layer groups over training",
        "not in the paper",
        fig_over_training_groups,
        "The layer map of each snapshot: bars span the shared, transition and refinement layers; "
        "lines join the first layer of the transition and of the refinement group across steps "
        "(larger, darker markers: more task-bootstrap refits put the boundary within ±1 layer). "
        "×: no groups at that step.",
        readings.read_over_training_groups,
        "no layer maps over training (tables/layer_map_over_training.json missing)",
        part="Over training",
    ),
    FigureSpec(
        "over_training_ari",
        "Task clustering over training",
        "Wu & Varshney, on this model",
        fig_over_training_ari,
        "k-means (k = number of tasks) on the last-prompt-token states of each snapshot, "
        "Adjusted Rand Index against the task labels, one line per layer; step 0 is the base "
        "model. Seen and unseen tasks apart.",
        readings.read_over_training_ari,
        "no clustering over training (tables/clustering_over_training.csv missing or empty)",
        part="Over training",
    ),
    FigureSpec(
        "measures_layers",
        "Every measure per layer",
        "not in the paper",
        fig_measures_layers,
        "Per measure, the median over seen tasks of its value between each model and the task's "
        "control (band: quartiles), base beside SFT; dashed: the median permutation-null 95th "
        "percentile.",
        readings.read_measures_layers,
        "no measure beside CKA (tables/measures.csv missing or empty: analysis.measures)",
        part="Measures",
    ),
    FigureSpec(
        "measures_agreement",
        "Where the measures agree on the groups",
        "not in the paper",
        fig_measures_agreement,
        "The layer group each measure's own layer map gives every layer (grey: none, or no map); "
        "triangles mark the layers that all measures put in the same group.",
        readings.read_measures_agreement,
        "no per-measure layer maps (tables/layer_groups_by_measure.json missing)",
        part="Measures",
    ),
)


def render_figures(data: RunData, out_dir: Path) -> dict[str, Path]:
    """Draw every applicable figure into ``out_dir`` as PNG; returns name -> path."""
    import io

    written = {}
    for spec in FIGURES:
        fig = spec.draw(data)
        if fig is None:
            continue
        if isinstance(fig, bytes):
            png = fig
        else:
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=DPI)
            plt.close(fig)
            png = buf.getvalue()
        path = Path(out_dir) / f"{spec.name}.png"
        atomic_write_bytes(path, png)
        written[spec.name] = path
    return written
