"""Short readings of each figure, and the comparison with the paper, in words.

Every number and verdict comes from the run's findings (``findings.json``, computed by the
analyze stage in :mod:`mossa.analysis.findings`) or its layer map: this module decides
nothing, it only writes sentences. Change the findings and the text changes. The evidence,
over-training and measures sections only count and take medians of their tables' columns
(how many tasks have an interval above 0, at which layers) and quote the verdicts their
JSON tables hold; they test nothing and state no finding of the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mossa.analysis.findings import FAILS, HOLDS, PARTLY, UNTESTABLE
from mossa.analysis.layer_map import GROUPS, LayerGroups
from mossa.analysis.over_training import MAJORITY
from mossa.report.data import RunData, cluster_name

LABELS = {"base": "base", "sft": "SFT"}
MEASURE_NAMES = {"flesch_kincaid": "Flesch-Kincaid", "coleman_liau": "Coleman-Liau"}
MEASURE_TITLES = {
    "cka": "CKA",
    "procrustes": "Procrustes",
    "mutual_knn": "mutual k-NN",
    "rsa": "RSA",
}


def _f(x: float | None, signed: bool = False) -> str:
    """Two decimals; two significant digits for small non-zero values (so 0.0004 is not 0.00)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    spec = ".2f" if x == 0 or abs(x) >= 0.01 else ".1e"
    return format(x, ("+" if signed else "") + spec)


def _p(x: float | None) -> str:
    """A p-value with three decimals (n/a when undefined)."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3f}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def _ranges(layers: list[int]) -> str:
    """Layers as text: 'layer 3', 'layers 1–3, 7, 9–12' or 'no layer'."""
    if not layers:
        return "no layer"
    parts, start, prev = [], layers[0], layers[0]
    for layer in [*layers[1:], None]:
        if layer is not None and layer == prev + 1:
            prev = layer
            continue
        parts.append(f"{start}" if start == prev else f"{start}–{prev}")
        if layer is not None:
            start = prev = layer
    word = "layer" if len(layers) == 1 else "layers"
    return f"{word} " + ", ".join(parts)


def groups_text(groups: LayerGroups) -> str:
    """'shared 1–4, transition 5–8, refinement 9–12' (groups that exist, single layers bare)."""
    return ", ".join(
        _span_text(name, span.first, span.last) for name, span in groups.items() if span
    )


def groups_source(data: RunData) -> str:
    """Where the layer ranges of the findings come from, in words."""
    if data.findings["groups"]["source"] == "run":
        return "this run's layer map"
    return f"the paper's map scaled to {data.n_layers} layers"


def _alpha(data: RunData) -> str:
    return f"{data.findings['thresholds']['alpha']:g}"


def read_layer_map(data: RunData) -> list[str]:
    m = data.layer_map
    fit, found = m.fit, m.fit.structure
    out = []
    if not found:
        out.append(f"No layer structure on this run ({fit.n_tasks} seen tasks): {fit.reason}.")
    else:
        kind = (
            f"a curve with two bends beat a straight line (p = {fit.p_value:.3f}) and one with "
            f"a single bend (p = {found.p_value_knots:.3f})"
            if found.model == "two_knots"
            else f"a single bend beat a straight line (p = {fit.p_value:.3f}) and a second one "
            f"did not help (p = {found.p_value_knots:.3f}), so there are two groups only"
        )
        out.append(
            f"Layer groups of {data.n_layers}: {groups_text(found.groups)}, from "
            f"{_n(fit.n_tasks, 'seen task')}; {kind}."
        )
        slopes = ", ".join(f"{name} {_f(v, True)}" for name, v in found.slopes.items())
        out.append(
            f"Over the transition layers the mean SFT−base CKA difference rises by "
            f"{_f(found.rise, True)}; fitted slopes per layer: {slopes}."
        )
        conf = "; ".join(
            f"{name.replace('_', ' ')} at layer {found.boundaries[name]} in {share:.0%} of fits"
            for name, share in found.confidence.items()
        )
        out.append(f"Task bootstrap ({fit.n_bootstrap} refits), boundary within ±1 layer: {conf}.")
    if m.biased.structure:
        out.append(
            "The same fit on biased CKA (the paper's estimator) gives "
            f"{groups_text(m.biased.structure.groups)}."
        )
    else:
        out.append("The same fit on biased CKA (the paper's estimator) finds no structure.")
    if m.excluded_tasks:
        out.append(f"Left out (undefined CKA at some layer): {', '.join(m.excluded_tasks)}.")
    return out


def read_cka_layers(data: RunData) -> list[str]:
    f = data.findings["cka_layers"]
    if f is None:
        return ["No seen tasks on this run."]
    out = []
    if f["sft_above_base_from"] is not None:
        out.append(f"Median SFT CKA is above base from layer {f['sft_above_base_from']} on.")
    else:
        out.append(f"Median SFT CKA is above base at {_ranges(f['sft_above_base_at'])}.")
    hi, lo = f["largest_difference"], f["smallest_difference"]
    out.append(
        f"Mean SFT−base difference: largest {_f(hi['value'], True)} at layer {hi['layer']}, "
        f"smallest {_f(lo['value'], True)} at layer {lo['layer']}."
    )
    first, last = f["median_first"], f["median_last"]
    out.append(
        f"Median base CKA goes from {_f(first['base'])} at layer 1 to {_f(last['base'])} at "
        f"layer {data.n_layers}; SFT from {_f(first['sft'])} to {_f(last['sft'])}."
    )
    shares = [f"{f['above_null'][m]:.0%} of {LABELS[m]}'s" for m in ("base", "sft")]
    out.append(
        f"{shares[0]} and {shares[1]} (task, layer) values lie above their permutation-null 95th "
        "percentile."
    )
    gap = f["biased_excess"]
    out.append(
        f"Biased CKA reads higher than debiased by {_f(gap['base'])} (base) and {_f(gap['sft'])} "
        "(SFT) on average: the bias the paper's estimator carries at this n and d."
    )
    return out


def read_cka_clusters(data: RunData) -> list[str]:
    f = data.findings["cka_clusters"]
    if f is None:
        return ["No seen tasks on this run."]
    most, least = f["most_gain"], f["least_gain"]
    closest, furthest = f["base_closest"], f["base_furthest"]
    out = [
        f"Over {_ranges(f['layers'])} ({groups_source(data)}), SFT gains most over base on "
        f"{cluster_name(most['cluster'])} ({_f(most['value'], True)}) and least on "
        f"{cluster_name(least['cluster'])} ({_f(least['value'], True)}).",
        f"Base is closest to the controls there on {cluster_name(closest['cluster'])} "
        f"({_f(closest['value'])}) and furthest on {cluster_name(furthest['cluster'])} "
        f"({_f(furthest['value'])}).",
    ]
    if max(f["tasks_per_cluster"].values()) < 2:
        out.append(
            "With one seen task per cluster these are differences between single tasks, not "
            "between clusters."
        )
    return out


def read_clustering(data: RunData) -> list[str]:
    f = data.findings["clustering"]
    if f is None:
        return ["Clustering was not computed (no seen tasks)."]
    clear = f"{data.findings['thresholds']['clear_ari']:g}"
    if f["clearly_better_from"] is not None:
        first = (
            f"k-means recovers the clusters clearly better for SFT than base (ARI +{clear} or "
            f"more) from layer {f['clearly_better_from']} on."
        )
    else:
        first = (
            f"SFT's k-means ARI exceeds base's by {clear} or more at "
            f"{_ranges(f['clearly_better_at'])}."
        )
    top, sil = f["top_ari"], f["last_silhouette"]
    return [
        first,
        f"Highest SFT ARI {_f(top['sft'])} at layer {f['top_layer']} (base there: "
        f"{_f(top['base'])}); silhouette of the cluster labels at the last layer: "
        f"SFT {_f(sil['sft'])}, base {_f(sil['base'])}.",
    ]


def read_tsne(data: RunData) -> list[str]:
    f = data.findings["tsne"]
    if f is None:
        return ["No t-SNE maps on this run."]
    pairs = ", ".join(f"layer {a['layer']}: {_f(a['base'])} / {_f(a['sft'])}" for a in f["ari"])
    return [
        f"Maps of {f['n_points']} states of the seen tasks. k-means ARI against the clusters at "
        f"the mapped layers (base / SFT): {pairs}."
    ]


def _ci(row: dict, signed: bool = True) -> str:
    """'[low, high]' of a row with ci_low and ci_high (n/a bounds when undefined)."""
    return f"[{_f(row['ci_low'], signed)}, {_f(row['ci_high'], signed)}]"


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def read_pca(data: RunData) -> list[str]:
    f = data.findings["pca_dims"]
    if f is None:
        return ["PCA dimensions were not computed."]
    per_group = "; ".join(
        f"{g['group']} ({_ranges(g['layers'])}) {_f(g['value'], True)} {_ci(g)}"
        for g in f["groups"]
    )
    top = f["largest"]
    return [
        f"Mean components for {data.cfg.analysis.pca_variance:.0%} of the variance, SFT minus "
        f"base, with a 95% t-interval over seen tasks ({groups_source(data)}): {per_group}.",
        f"The largest SFT excess is {_f(top['value'], True)} components at layer {top['layer']}.",
        f"{_share(f['capped'])} of the counts (every model, task and layer above 0) are at n − 1, "
        "the most n prompts can show: there the states need at least that many.",
    ]


def _correlation_sentence(data: RunData, model: str, f: dict | None) -> str:
    if f is None:
        return f"{LABELS[model]}: undefined (a constant measure or fewer than 3 tasks)"
    where = (
        f"from layer {f['positive_from']} on"
        if f["positive_from"] is not None
        else f"at {_ranges(f['positive_at'])}"
    )
    return (
        f"{LABELS[model]}: highest r = {_f(f['highest']['value'], True)} at layer "
        f"{f['highest']['layer']}; positive with BH-adjusted p < {_alpha(data)} {where}"
    )


def read_readability(data: RunData) -> list[str]:
    f = data.findings["readability"]
    return [
        f"Pearson r over {f['n_seen']} competent seen tasks between debiased CKA and {label}: "
        + "; ".join(_correlation_sentence(data, m, f[measure][m]) for m in ("sft", "base"))
        + "."
        for measure, label in MEASURE_NAMES.items()
    ]


def read_data_size(data: RunData) -> list[str]:
    f = data.findings["data_size"]
    prompts, out = f["prompts"], []
    if prompts["testable"]:
        slopes = "; ".join(
            f"{LABELS[m]} at most {_f(prompts[m]['largest_slope']['value'], True)} (layer "
            f"{prompts[m]['largest_slope']['layer']})"
            for m in ("base", "sft")
        )
        out.append(
            f"Prompts used for CKA (the paper's data size), subsets of "
            f"{', '.join(map(str, prompts['sizes']))} prompts on {prompts['n_tasks']} competent "
            f"seen tasks: mean change of CKA per doubling {slopes}; {prompts['significant']} of "
            f"{prompts['n_tests']} (model, layer) t-tests with p < {_alpha(data)}, "
            f"{prompts['adjusted']} after Benjamini-Hochberg."
        )
    else:
        out.append(
            f"Prompts used for CKA (the paper's data size): not testable ({prompts['reason']})."
        )
    n_train = f["n_train"]
    if n_train is None:
        out.append("Training-set size: undefined (the sizes do not vary, or fewer than 3 tasks).")
    else:
        parts = [
            f"{LABELS[m]}: |r| at most {_f(n_train[m]['max_abs_r'])}; p < {_alpha(data)} at "
            f"{_ranges(n_train[m]['significant_at'])} ({_ranges(n_train[m]['adjusted_at'])} after "
            "Benjamini-Hochberg)"
            for m in ("base", "sft")
        ]
        out.append("Correlation with training-set size (the figure): " + "; ".join(parts) + ".")
    return out


def read_unseen(data: RunData) -> list[str]:
    f = data.findings["unseen"]
    if f is None:
        return ["This run has no unseen tasks."]
    half = f["half"]
    return [
        f"On {_n(f['n_tasks'], 'unseen task')} the median SFT−base difference is below 0 at "
        f"{_ranges(f['below_at'])} and above 0 at {_ranges(f['above_at'])}; "
        f"mean over layers 1–{half}: {_f(f['lower_mean'], True)}, over "
        f"{half + 1}–{data.n_layers}: {_f(f['upper_mean'], True)}."
    ]


def read_cross_layer(data: RunData) -> list[str]:
    f = data.findings["cross_layer"]
    if f is None:
        return ["No cross-layer matrices."]
    parts = [
        f"{LABELS[model]}: mean CKA on the diagonal {_f(f[model]['diagonal_mean'])}; for "
        f"{f[model]['same_layer']} of {data.n_layers} layers the most similar control layer is "
        "the same one (±1)"
        for model in ("base", "sft")
    ]
    higher = _ranges(f["sft_above_base_at"])
    return ["; ".join(parts) + f". The SFT diagonal is above base's at {higher}."]


# -- evidence, over training, measures: counts and medians of the tables, stated as such --


def _argmax(values: np.ndarray) -> int | None:
    """Index of the largest finite value, None when there is none."""
    finite = np.isfinite(values)
    return int(np.flatnonzero(finite)[np.argmax(values[finite])]) if finite.any() else None


def _argmin(values: np.ndarray) -> int | None:
    return _argmax(-values)


def _at(values: np.ndarray, index: int | None, signed: bool = False) -> str:
    """'+0.12 at layer 5' for the value at ``index`` (a layer), 'n/a' without one."""
    if index is None:
        return "n/a"
    return f"{_f(float(values[index]), signed)} at layer {index}"


def _span_text(name: str, first: int, last: int) -> str:
    """'transition 5–8', or 'refinement 9' for a single layer."""
    return f"{name} {first}" if first == last else f"{name} {first}–{last}"


def spans_text(groups: dict | None) -> str:
    """Groups as a table's JSON writes them ({name: [first, last] | null}) in words."""
    if not groups:
        return "no layer groups"
    return ", ".join(_span_text(n, *groups[n]) for n in GROUPS if groups.get(n))


def _verdict(paper_map) -> str | None:
    """The verdict of a layer map's ``paper_map`` (an object with one, or the verdict itself)."""
    return paper_map.get("verdict") if isinstance(paper_map, dict) else paper_map


def _blocks(values: np.ndarray) -> np.ndarray:
    """``values`` [..., layer 0..L] with layer 0 (the embeddings every model shares) left out
    as NaN, so the extremes and counts the readings state are over layers 1..L."""
    out = np.array(values, dtype=float)
    out[..., 0] = np.nan
    return out


def read_specificity(data: RunData) -> list[str]:
    """Paired difference and task specificity: how many seen tasks, at which layers 1..L."""
    ev, mask = data.evidence, data.seen_mask
    n_tasks = int(mask.sum())
    above = _blocks(ev.diff["ci_low"][mask]) > 0
    below = _blocks(ev.diff["ci_high"][mask]) < 0
    per_layer = above.sum(axis=0)
    majority = [int(x) for x in np.flatnonzero(per_layer >= MAJORITY * n_tasks)]
    median = _blocks(np.nanmedian(ev.diff["diff"][mask], axis=0))
    top = int(np.argmax(per_layer))
    most = f"; most at layer {top} ({per_layer[top]} of {n_tasks})" if per_layer[top] else ""
    out = [
        f"Paired SFT−base difference (cka_diff.csv): {int(above.any(axis=1).sum())} of "
        f"{n_tasks} seen tasks have its 95% interval above 0 at one or more layers, "
        f"{int(below.any(axis=1).sum())} below 0 at one or more.",
        f"At least half of the seen tasks have it above 0 at {_ranges(majority)} "
        f"({len(majority)} of {data.n_layers} layers){most}.",
        f"Median difference over seen tasks: largest {_at(median, _argmax(median), True)}, "
        f"smallest {_at(median, _argmin(median), True)}.",
    ]
    if not ev.has_specificity:
        out.append(
            "No task specificity on this run (specificity.csv has no rows: "
            "analysis.cross_task_controls is 0 or the other tasks' controls were not extracted)."
        )
        return out
    spec = {
        m: _blocks(np.nanmedian(ev.specificity[(m, "specificity")][mask], axis=0)) for m in LABELS
    }
    at = _argmax(spec["sft"])
    sft_above = [int(x) for x in np.flatnonzero(spec["sft"] > spec["base"])]
    clear = int((ev.specificity[("sft", "ci_low")][mask][:, at] > 0).sum()) if at is not None else 0
    out.append(
        f"Task specificity (own control minus the mean of {ev.k} other tasks' controls), median "
        f"over seen tasks: SFT {_at(spec['sft'], at, True)} (its largest), base "
        f"{_at(spec['base'], at, True)}; SFT's interval lies above 0 there for {clear} of "
        f"{n_tasks} tasks. Median SFT above base at {_ranges(sft_above)}."
    )
    return out


def read_ceiling(data: RunData) -> list[str]:
    """SFT against the noise ceiling: medians over seen tasks and the tasks at the ceiling."""
    ev, mask = data.evidence, data.seen_mask
    n_tasks, last = int(mask.sum()), data.n_layers
    ceiling = _blocks(np.nanmedian(ev.ceiling["ceiling"][mask], axis=0))
    relative = _blocks(np.nanmedian(ev.ceiling["sft_relative"][mask], axis=0))
    low = ev.ceiling["sft_relative_ci_low"][mask][:, last]
    high = ev.ceiling["sft_relative_ci_high"][mask][:, last]
    at_ceiling = int(((low <= 1) & (high >= 1)).sum())
    return [
        f"Noise ceiling from {ev.n_seeds} seeds per control: the median over seen tasks of CKA "
        f"between seeds is lowest {_at(ceiling, _argmin(ceiling))} and highest "
        f"{_at(ceiling, _argmax(ceiling))}.",
        f"Median CKA(SFT, C_t) / ceiling over seen tasks: lowest "
        f"{_at(relative, _argmin(relative))}, highest {_at(relative, _argmax(relative))}; at "
        f"layer {last} {_f(relative[last])}, and the ratio's 95% interval includes 1 for "
        f"{at_ceiling} of {n_tasks} seen tasks and lies below 1 for {int((high < 1).sum())}.",
    ]


def _steps_text(steps: list[int]) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}–{steps[-1]}"


def read_over_training_diff(data: RunData) -> list[str]:
    """The paired difference over snapshots: where and from when most tasks are above base."""
    ot = data.over_training
    steps, mean, present = ot.steps, _blocks(ot.mean_diff), ot.present
    out = [
        f"{_n(len(steps), 'SFT snapshot')} ({_steps_text(steps)}), {int(ot.seen.sum())} seen "
        f"tasks; at the last snapshot the mean paired difference is largest, "
        f"{_at(mean[-1], _argmax(mean[-1]), True)}."
    ]
    marked = [i for i in range(len(steps)) if present[i].any()]
    if marked:
        first, layers = marked[0], [int(x) for x in np.flatnonzero(present[marked[0]])]
        now = [int(x) for x in np.flatnonzero(present[-1])]
        out.append(
            f"At least half of the seen tasks' paired intervals lie above 0 first at step "
            f"{steps[first]} ({_ranges(layers)}); at the last snapshot at {_ranges(now)} "
            f"({len(now)} of {data.n_layers})."
        )
    else:
        out.append(
            "At no snapshot and layer do at least half of the seen tasks' paired intervals lie "
            "above 0."
        )
    if ot.maps is not None:
        found = ot.maps["emergence"]
        out.append(
            f"Task-specific similarity is present from step {found['step']} in "
            f"{_ranges(found['layers'])} and at every later snapshot "
            "(layer_map_over_training.json)."
            if found["step"] is not None
            else "No layer keeps at least half of the seen tasks' paired intervals above 0 "
            "through the last snapshot (layer_map_over_training.json)."
        )
    return out


def read_over_training_groups(data: RunData) -> list[str]:
    """The layer map per snapshot: when groups appear, where the boundaries sit and move."""
    maps = data.over_training.maps
    snaps = maps["maps"]
    grouped = [m for m in snaps if m["structure"] and m["groups"]]
    first, holds = maps["first_structure_step"], maps["first_holds_step"]
    out = [
        f"Layer maps at {_n(len(snaps), 'snapshot')} ({_steps_text([m['step'] for m in snaps])}); "
        f"layer groups at {len(grouped)} of them."
        + (f" The groups first appear at step {first}." if first is not None else "")
    ]
    verdict = _verdict(snaps[-1]["paper_map"]) if snaps else None
    out.append(
        f"Test against the paper's map first gives 'holds' at step {holds}."
        if holds is not None
        else f"No snapshot's map passes the test against the paper's map (last: {verdict})."
    )
    if grouped:
        m = grouped[-1]
        conf = "; ".join(
            f"{name.replace('_', ' ')} within ±1 layer in {share:.0%} of refits"
            for name, share in m["confidence"].items()
        )
        out.append(
            f"Last snapshot with groups, step {m['step']}: {spans_text(m['groups'])}"
            + (f" ({conf})." if conf else ".")
        )
        starts = [
            (g["step"], g["groups"]["transition"][0])
            for g in grouped
            if g["groups"].get("transition")
        ]
        if len(starts) > 1:
            out.append(
                f"The transition starts at layer {starts[0][1]} at step {starts[0][0]} and at "
                f"layer {starts[-1][1]} at step {starts[-1][0]}."
            )
    return out


def _clustering_sentence(rows: list[dict], split: str) -> str | None:
    """ARI of one split: the layer highest (task labels) at the last step, first vs last step."""
    ari = {(r["labels"], r["step"], r["layer"]): r["ari"] for r in rows if r["split"] == split}
    steps = sorted({step for labels, step, _ in ari if labels == "task"})
    if not steps:
        return None
    first, last = steps[0], steps[-1]
    layers = sorted({layer for labels, _, layer in ari if labels == "task"})
    top = _argmax(np.array([ari.get(("task", last, x), math.nan) for x in layers]))
    if top is None:
        return None
    layer = layers[top]
    start = "the base model" if first == 0 else "the first snapshot"
    text = (
        f"{split.capitalize()} tasks: k-means ARI against the task labels at layer {layer} (the "
        f"highest at the last snapshot) goes from {_f(ari.get(('task', first, layer)))} at step "
        f"{first} ({start}) to {_f(ari[('task', last, layer)])} at step {last}"
    )
    if np.isfinite(ari.get(("cluster", first, layer), math.nan)):
        text += (
            f"; against the cluster labels from {_f(ari[('cluster', first, layer)])} to "
            f"{_f(ari.get(('cluster', last, layer)))}"
        )
    return text + "."


def read_over_training_ari(data: RunData) -> list[str]:
    """Task clustering over training: per split, the best layer's ARI at the first and last step."""
    rows = data.over_training.clustering
    return [s for s in (_clustering_sentence(rows, x) for x in ("seen", "unseen")) if s]


def read_measures_layers(data: RunData) -> list[str]:
    """Per measure: where median SFT is above median base, and the largest gap."""
    out = []
    for name, v in data.measure_values().items():
        base, sft = np.nanmedian(v["base"], axis=0), np.nanmedian(v["sft"], axis=0)
        gap = _blocks(sft - base)
        above = [int(x) for x in np.flatnonzero(gap > 0)]
        over_null = (v["sft"] > v["null"])[:, 1:]
        out.append(
            f"{MEASURE_TITLES.get(name, name)}: median SFT above median base at {_ranges(above)}; "
            f"largest gap {_at(gap, _argmax(gap), True)}; at layer {data.n_layers} base "
            f"{_f(base[-1])}, SFT {_f(sft[-1])}; {over_null.mean():.0%} of SFT's (task, layer ≥ 1) "
            "values above their permutation-null 95th percentile."
        )
    return out


def read_measures_agreement(data: RunData) -> list[str]:
    """How many layers the measures put in the same group, and each measure's map."""
    maps = data.measures.maps
    rows, names = maps["agreement"], list(maps["measures"])
    agree = [r["layer"] for r in rows if r["agree"]]
    out = [
        f"The measures ({', '.join(MEASURE_TITLES.get(n, n) for n in names)}) agree on the "
        f"group of {len(agree)} of {len(rows)} layers ({_ranges(agree)})."
    ]
    for name, m in maps["measures"].items():
        verdict = _verdict(m.get("paper_map"))
        groups = spans_text(m["groups"]) if m["structure"] else "no layer structure"
        out.append(
            f"{MEASURE_TITLES.get(name, name)}: {groups}"
            + (f" (test against the paper's map: {verdict})." if verdict else ".")
        )
    return out


# -- the comparison with the paper: per finding, what the paper says and what this run shows --


def _three_groups(data: RunData, row: dict) -> str:
    fit, tested = data.layer_map.fit, row["paper_map"]
    failed = [t["group"] for t in tested["tests"] if not t["passed"]]
    found = (
        groups_text(fit.structure.groups) if fit.structure else f"no layer structure ({fit.reason})"
    )
    place = "within" if row["where_paper_puts_them"] else "not within"
    return (
        f"{found}; against the paper's definitions: {tested['reason']}"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f"; boundaries {place} ±{row['tolerance']} of the paper's"
    )


def _base_falls(data: RunData, row: dict) -> str:
    return (
        f"Spearman ρ of median base CKA with layer = {_f(row['rho'], True)} (p = "
        f"{_p(row['p_value'])}); from layer 1 to {data.n_layers} it changes by "
        f"{_f(row['change'], True)}"
    )


def _sft_below_in_shared(data: RunData, row: dict) -> str:
    return (
        f"mean SFT−base over the shared {_ranges(row['layers'])} ({groups_source(data)}) = "
        f"{_f(row['mean'], True)} {_ci(row)} over {row['n']} tasks; below 0 for "
        f"{row['share_below']:.0%} of tasks"
    )


def _sft_close_after_shared(data: RunData, row: dict) -> str:
    return (
        f"mean SFT−base over {_ranges(row['layers'])} = {_f(row['mean'], True)} {_ci(row)}; "
        f"task spread (IQR) SFT {_f(row['iqr']['sft'])} vs base {_f(row['iqr']['base'])}"
    )


def _more_dims_in_transition(data: RunData, row: dict) -> str:
    t, s, d = row["transition"], row["shared"], row["transition_minus_shared"]
    return (
        f"SFT−base components: transition {_f(t['mean'], True)} {_ci(t)}, shared "
        f"{_f(s['mean'], True)} {_ci(s)}, difference {_f(d['mean'], True)} {_ci(d)}; "
        f"{_share(row['capped'])} of these counts at n − 1"
    )


def _distinct_clusters(data: RunData, row: dict) -> str:
    return f"mean ARI SFT−base over {_ranges(row['layers'])} = {_f(row['gain'], True)}"


def _readability(data: RunData, row: dict) -> str:
    return (
        f"mean r over {_ranges(row['layers'])}: SFT {_f(row['sft'], True)}, base "
        f"{_f(row['base'], True)}; SFT positive with BH-adjusted p < {_alpha(data)} at "
        f"{row['n_significant']} of {len(row['layers'])} layers"
    )


def _no_data_size_correlation(data: RunData, row: dict) -> str:
    slope = row["largest_slope"]
    return (
        f"CKA on {', '.join(map(str, row['sizes']))} prompts, {row['n_tasks']} tasks: "
        f"{row['significant']} of {row['n_tests']} (model, layer) slopes with p < "
        f"{_alpha(data)}, {row['adjusted']} after Benjamini-Hochberg; largest mean change per "
        f"doubling base {_f(slope['base']['value'], True)}, SFT {_f(slope['sft']['value'], True)}"
    )


def _unseen_below_then_above(data: RunData, row: dict) -> str:
    half, low, high = row["half"], row["lower"], row["upper"]
    return (
        f"{_n(row['n_tasks'], 'unseen task')}; mean SFT−base layers 1–{half}: "
        f"{_f(low['mean'], True)} {_ci(low)}, {half + 1}–{data.n_layers}: "
        f"{_f(high['mean'], True)} {_ci(high)}"
    )


@dataclass(frozen=True)
class Claim:
    """One finding of the paper: its statement, the paper's evidence, and this run's, in words.

    ``paper`` may name ``{n_layers}`` and ``{scaled}`` (the paper's map at this depth); when
    the finding cannot be tested the run shows the reason findings.json gives.
    """

    finding: str
    paper: str
    here: Callable[[RunData, dict], str]


CLAIMS = {
    "three_groups": Claim(
        "Three functional groups: shared 1–9, transition 10–15, refinement 16–32",
        "Llama 2 7B, 32 layers; scaled to {n_layers}: {scaled}",
        _three_groups,
    ),
    "base_falls": Claim(
        "Base CKA with the controls falls through higher layers (§4.1)",
        "generally decreasing",
        _base_falls,
    ),
    "sft_below_in_shared": Claim(
        "SFT is below base in the shared layers (§4.2)",
        "lower for many tasks in layers 1–9",
        _sft_below_in_shared,
    ),
    "sft_close_after_shared": Claim(
        "From the transition layers on SFT is close to all controls, with low variance across "
        "tasks (§4.2)",
        "high CKA, low variance in 10–32",
        _sft_close_after_shared,
    ),
    "more_dims_in_transition": Claim(
        "SFT needs more dimensions for 99% variance in the transition layers (§4.3)",
        "similar in shared, more for SFT from the transition on",
        _more_dims_in_transition,
    ),
    "distinct_clusters": Claim(
        "SFT forms more distinct task clusters than base from the transition on (§4.3)",
        "t-SNE, by eye",
        _distinct_clusters,
    ),
    **{
        f"readability_{measure}": Claim(
            f"CKA of SFT correlates positively with {label} from the transition on, more than "
            "base (§4.4)",
            "rises in 10–15, then saturates",
            _readability,
        )
        for measure, label in MEASURE_NAMES.items()
    },
    "no_data_size_correlation": Claim(
        "No correlation between CKA and data size (§4.4)",
        "no clear correlation with the number of data points used for CKA",
        _no_data_size_correlation,
    ),
    "unseen_below_then_above": Claim(
        "Unseen tasks: SFT below base in lower layers, above in higher ones (§4.5)",
        "below up to layer 12, then matching and above",
        _unseen_below_then_above,
    ),
}


def paper_comparison(data: RunData) -> list[dict]:
    """The paper's findings as rows of finding, paper, here (this run) and verdict."""
    paper = data.findings["groups"]["paper"]
    scaled = groups_text(LayerGroups.from_json(paper, data.n_layers)) if paper else "n/a"
    rows = []
    for row in data.findings["paper"]:
        claim = CLAIMS[row["finding"]]
        untestable = row["verdict"] == UNTESTABLE
        rows.append(
            {
                "finding": claim.finding,
                "paper": claim.paper.format(n_layers=data.n_layers, scaled=scaled),
                "here": row.get("reason", "") if untestable else claim.here(data, row),
                "verdict": row["verdict"],
            }
        )
    return rows


def read_competence(data: RunData) -> list[str]:
    """Which tasks the verdicts rest on: the competent ones, and every other with its reason."""
    c = data.findings["competence"]
    if not c["checked"]:
        return [
            "Task competence was not checked (the evaluation kept no per-example scores): the "
            "verdicts assume that every control learned its task."
        ]
    confidence = f"{data.cfg.evaluation.confidence:.0%}"
    out = [
        f"{len(c['competent'])} of {len(data.tasks)} tasks are competent: the control beats the "
        f"base on the same test examples, and chance where the task has one, at {confidence} "
        "confidence. Only these enter the layer map and the verdicts."
    ]
    if c["excluded"]:
        out.append(
            "Left out: " + "; ".join(f"{x['task']} ({x['reason']})" for x in c["excluded"]) + "."
        )
    if not c["testable"]:
        out.append(f"No finding of the paper is tested on this run: {c['reason']}.")
    return out


SUMMARY_VERDICTS = {
    HOLDS: "Holds on this run",
    PARTLY: "Holds in part",
    FAILS: "Does not hold",
    UNTESTABLE: "Not testable",
}


def summary(data: RunData) -> list[str]:
    """The report's summary: competence, then the paper's findings grouped by their verdict.

    A finding is listed under "Holds on this run" only when findings.json says it holds.
    """
    rows = paper_comparison(data)
    out = read_competence(data)
    for verdict, label in SUMMARY_VERDICTS.items():
        found = [r["finding"] for r in rows if r["verdict"] == verdict]
        if found:
            out.append(f"{label}: " + "; ".join(found) + ".")
    return out
