"""Short readings of each figure, and the comparison with the paper, from this run's numbers.

Every sentence is computed from the tables (through :class:`RunData`): change the numbers
and the text changes. Layer ranges for "shared" and "after the shared layers" come from
this run's layer map when it found one, else from the paper's map scaled to this depth
(the text says which).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from mossa.analysis.paper import paper_groups
from mossa.report.data import RunData, cluster_name

HOLDS, PARTLY, FAILS, UNTESTABLE = "holds", "partly", "does not hold", "not testable"
NEGLIGIBLE_CKA = 0.01  # mean CKA differences below this count as no difference in the verdicts
NEGLIGIBLE_DIMS = 0.5  # likewise for mean differences in principal components
LABELS = {"base": "base", "sft": "SFT"}


def _f(x: float, signed: bool = False) -> str:
    """Two decimals; two significant digits for small non-zero values (so 0.0004 is not 0.00)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    spec = ".2f" if x == 0 or abs(x) >= 0.01 else ".1e"
    return format(x, ("+" if signed else "") + spec)


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


def _from_layer_on(flags: np.ndarray, layers: np.ndarray) -> int | None:
    """First layer from which ``flags`` holds at every later layer, or None."""
    if not flags[-1]:
        return None
    start = len(flags) - 1
    while start > 0 and flags[start - 1]:
        start -= 1
    return int(layers[start])


def working_groups(data: RunData) -> tuple[dict | None, str]:
    """Layer groups used by the readings: this run's map, else the paper's scaled map."""
    g = data.groups
    if g.get("structure"):
        return g["groups"], "this run's layer map"
    return paper_groups(data.n_layers), f"the paper's map scaled to {data.n_layers} layers"


def groups_text(groups: dict) -> str:
    """'shared 1–4, transition 5–8, refinement 9–12' (groups that exist, single layers bare)."""
    return ", ".join(
        f"{name} {lo}" if lo == hi else f"{name} {lo}–{hi}"
        for name, span in groups.items()
        if span
        for lo, hi in [span]
    )


def _span(groups: dict | None, *names: str) -> np.ndarray:
    """Layers covered by the named groups (inclusive ranges), as an index array."""
    out: list[int] = []
    for name in names:
        span = (groups or {}).get(name)
        if span:
            out.extend(range(span[0], span[1] + 1))
    return np.array(sorted(out), dtype=int)


def _after_shared(groups: dict | None) -> np.ndarray:
    return _span(groups, "transition", "refinement")


def _median(data: RunData, model: str, mask: np.ndarray, column: str = "cka") -> np.ndarray:
    values = data.cka[(model, column)][mask]
    return np.nanmedian(values, axis=0) if len(values) else np.full(data.n_layers + 1, np.nan)


def _diff(data: RunData, mask: np.ndarray, column: str = "cka") -> np.ndarray:
    """SFT minus base per task and layer, [T_mask, L+1]."""
    return data.cka[("sft", column)][mask] - data.cka[("base", column)][mask]


def read_layer_map(data: RunData) -> list[str]:
    g = data.groups
    out = []
    n_tasks = g.get("n_tasks", 0)
    if not g.get("structure"):
        out.append(f"No layer structure on this run ({n_tasks} seen tasks): {g.get('reason')}.")
    else:
        kind = (
            f"a curve with two bends beat a straight line (p = {g['p_value']:.3f}) and one with "
            f"a single bend (p = {g['p_value_knots']:.3f})"
            if g["model"] == "two_knots"
            else f"a single bend beat a straight line (p = {g['p_value']:.3f}) and a second one "
            f"did not help (p = {g['p_value_knots']:.3f}), so there are two groups only"
        )
        out.append(
            f"Layer groups of {data.n_layers}: {groups_text(g['groups'])}, from "
            f"{_n(n_tasks, 'seen task')}; {kind}."
        )
        slopes = ", ".join(f"{name} {_f(v, True)}" for name, v in g["slopes"].items())
        out.append(
            f"Over the transition layers the mean SFT−base CKA difference rises by "
            f"{_f(g['rise'], True)}; fitted slopes per layer: {slopes}."
        )
        conf = "; ".join(
            f"{name.replace('_', ' ')} at layer {g['boundaries'][name]} in {share:.0%} of fits"
            for name, share in g["confidence"].items()
        )
        out.append(f"Task bootstrap ({g['n_bootstrap']} refits), boundary within ±1 layer: {conf}.")
    biased = g.get("biased", {})
    if biased:
        if biased.get("structure"):
            out.append(
                "The same fit on biased CKA (the paper's estimator) gives "
                f"{groups_text(biased['groups'])}."
            )
        else:
            out.append("The same fit on biased CKA (the paper's estimator) finds no structure.")
    if g.get("excluded_tasks"):
        out.append(f"Left out (undefined CKA at some layer): {', '.join(g['excluded_tasks'])}.")
    return out


def read_cka_layers(data: RunData) -> list[str]:
    mask = data.seen_mask
    if not mask.any():
        return ["No seen tasks on this run."]
    layers = data.layers[1:]
    base, sft = _median(data, "base", mask)[1:], _median(data, "sft", mask)[1:]
    mean_diff = np.nanmean(_diff(data, mask), axis=0)[1:]
    above = _from_layer_on(sft > base, layers)
    out = []
    if above is not None:
        out.append(f"Median SFT CKA is above base from layer {above} on.")
    else:
        higher = layers[sft > base].tolist()
        out.append(f"Median SFT CKA is above base at {_ranges(higher)}.")
    hi, lo = int(np.nanargmax(mean_diff)), int(np.nanargmin(mean_diff))
    out.append(
        f"Mean SFT−base difference: largest {_f(mean_diff[hi], True)} at layer {layers[hi]}, "
        f"smallest {_f(mean_diff[lo], True)} at layer {layers[lo]}."
    )
    out.append(
        f"Median base CKA goes from {_f(base[0])} at layer 1 to {_f(base[-1])} at layer "
        f"{layers[-1]}; SFT from {_f(sft[0])} to {_f(sft[-1])}."
    )
    shares = []
    for model in ("base", "sft"):
        cka = data.cka[(model, "cka")][mask][:, 1:]
        null = data.cka[(model, "null_p95")][mask][:, 1:]
        shares.append(f"{np.mean(cka > null):.0%} of {LABELS[model]}'s")
    out.append(
        f"{shares[0]} and {shares[1]} (task, layer) values lie above their permutation-null 95th "
        "percentile."
    )
    gap = np.nanmean(data.cka[("sft", "cka_biased")][mask] - data.cka[("sft", "cka")][mask])
    gap_base = np.nanmean(data.cka[("base", "cka_biased")][mask] - data.cka[("base", "cka")][mask])
    out.append(
        f"Biased CKA reads higher than debiased by {_f(gap_base)} (base) and {_f(gap)} (SFT) "
        "on average: the bias the paper's estimator carries at this n and d."
    )
    return out


def read_cka_clusters(data: RunData) -> list[str]:
    groups, source = working_groups(data)
    upper = _after_shared(groups)
    if upper.size == 0:
        upper = data.layers[1 + data.n_layers // 2 :]
    clusters = data.clusters(seen=True)
    if not clusters:
        return ["No seen tasks on this run."]
    gain, base_level = {}, {}
    for cluster in clusters:
        mask = np.array([data.seen[t] and data.cluster[t] == cluster for t in data.tasks])
        gain[cluster] = float(np.nanmean(_diff(data, mask)[:, upper]))
        base_level[cluster] = float(np.nanmean(data.cka[("base", "cka")][mask][:, upper]))
    order = sorted(clusters, key=gain.get)
    out = [
        f"Over {_ranges(upper.tolist())} ({source}), SFT gains most over base on "
        f"{cluster_name(order[-1])} ({_f(gain[order[-1]], True)}) and least on "
        f"{cluster_name(order[0])} ({_f(gain[order[0]], True)})."
    ]
    by_base = sorted(clusters, key=base_level.get)
    out.append(
        f"Base is closest to the controls there on {cluster_name(by_base[-1])} "
        f"({_f(base_level[by_base[-1]])}) and furthest on {cluster_name(by_base[0])} "
        f"({_f(base_level[by_base[0]])})."
    )
    return out


def read_clustering(data: RunData) -> list[str]:
    if "base" not in data.clustering or "sft" not in data.clustering:
        return ["Clustering was not computed (no seen tasks)."]
    ari_b, sil_b = data.clustering["base"]
    ari_s, sil_s = data.clustering["sft"]
    layers = data.layers
    out = []
    better = _from_layer_on((ari_s - ari_b)[1:] > 0.1, layers[1:])
    if better is not None:
        out.append(
            "k-means recovers the clusters clearly better for SFT than base (ARI +0.1 or more) "
            f"from layer {better} on."
        )
    else:
        out.append(
            "SFT's k-means ARI exceeds base's by 0.1 or more at "
            f"{_ranges(layers[1:][(ari_s - ari_b)[1:] > 0.1].tolist())}."
        )
    top = int(np.nanargmax(ari_s))
    out.append(
        f"Highest SFT ARI {_f(ari_s[top])} at layer {top} (base there: {_f(ari_b[top])}); "
        "silhouette of the cluster labels at the last layer: "
        f"SFT {_f(sil_s[-1])}, base {_f(sil_b[-1])}."
    )
    return out


def read_tsne(data: RunData) -> list[str]:
    layers = sorted({r["layer"] for r in data.tsne})
    if not layers or "sft" not in data.clustering:
        return ["No t-SNE maps on this run."]
    ari_b, _ = data.clustering["base"]
    ari_s, _ = data.clustering["sft"]
    pairs = ", ".join(f"layer {layer}: {_f(ari_b[layer])} / {_f(ari_s[layer])}" for layer in layers)
    n_points = sum(1 for r in data.tsne if r["model"] == "sft" and r["layer"] == layers[0])
    return [
        f"Maps of {n_points} states of the seen tasks. k-means ARI against the clusters at the "
        f"mapped layers (base / SFT): {pairs}."
    ]


def read_pca(data: RunData) -> list[str]:
    if "base" not in data.pca or "sft" not in data.pca:
        return ["PCA dimensions were not computed."]
    mask = data.seen_mask
    diff = np.nanmean(data.pca["sft"][mask] - data.pca["base"][mask], axis=0)
    groups, source = working_groups(data)
    out = []
    for name in ("shared", "transition", "refinement"):
        span = _span(groups, name)
        if span.size:
            out.append(f"{name} ({_ranges(span.tolist())}) {_f(float(diff[span].mean()), True)}")
    top = int(np.nanargmax(diff[1:])) + 1
    return [
        f"Mean components for {data.cfg.analysis.pca_variance:.0%} of the variance, SFT minus "
        f"base ({source}): " + "; ".join(out) + ".",
        f"The largest SFT excess is {_f(float(diff[top]), True)} components at layer {top}.",
    ]


def _correlation_sentence(data: RunData, model: str, measure: str) -> str:
    r, p = data.correlations.get((model, measure), (None, None))
    if r is None or not np.isfinite(r).any():
        return f"{LABELS[model]}: undefined (a constant measure or fewer than 3 tasks)"
    sig = np.isfinite(p) & (p < 0.05)
    pos = sig & (r > 0)
    best = int(np.nanargmax(r))
    start = _from_layer_on(pos[1:], data.layers[1:])
    where = (
        f"from layer {start} on"
        if start is not None
        else f"at {_ranges(data.layers[pos].tolist())}"
    )
    return (
        f"{LABELS[model]}: highest r = {_f(r[best], True)} at layer {best}; positive with "
        f"p < 0.05 {where}"
    )


def read_readability(data: RunData) -> list[str]:
    n_seen = int(data.seen_mask.sum())
    return [
        f"Pearson r over {n_seen} seen tasks between debiased CKA and {label}: "
        + "; ".join(_correlation_sentence(data, m, measure) for m in ("sft", "base"))
        + "."
        for measure, label in (
            ("flesch_kincaid", "Flesch-Kincaid"),
            ("coleman_liau", "Coleman-Liau"),
        )
    ]


def read_data_size(data: RunData) -> list[str]:
    if not any(
        np.isfinite(data.correlations.get((m, "data_size"), ([np.nan], None))[0]).any()
        for m in ("base", "sft")
    ):
        return [
            "Undefined: the seen tasks' training-set sizes do not vary (or there are fewer "
            "than 3 seen tasks)."
        ]
    out = []
    for model in ("base", "sft"):
        r, p = data.correlations[(model, "data_size")]
        sig = data.layers[np.isfinite(p) & (p < 0.05)].tolist()
        bonf = data.layers[np.isfinite(p) & (p < 0.05 / (2 * data.n_layers))].tolist()
        out.append(
            f"{LABELS[model]}: |r| at most {_f(float(np.nanmax(np.abs(r))))}; p < 0.05 at "
            f"{_ranges(sig)} ({_ranges(bonf)} after Bonferroni over both models' "
            f"{2 * data.n_layers} layer tests)"
        )
    return ["Correlation with training-set size: " + "; ".join(out) + "."]


def read_unseen(data: RunData) -> list[str]:
    mask = ~data.seen_mask
    if not mask.any():
        return ["This run has no unseen tasks."]
    d = np.nanmedian(_diff(data, mask), axis=0)[1:]
    layers = data.layers[1:]
    half = data.n_layers // 2
    return [
        f"On {_n(int(mask.sum()), 'unseen task')} the median SFT−base difference is below 0 at "
        f"{_ranges(layers[d < 0].tolist())} and above 0 at {_ranges(layers[d > 0].tolist())}; "
        f"mean over layers 1–{half}: {_f(float(d[:half].mean()), True)}, over "
        f"{half + 1}–{data.n_layers}: {_f(float(d[half:].mean()), True)}."
    ]


def read_cross_layer(data: RunData) -> list[str]:
    if "sft" not in data.cross or "base" not in data.cross:
        return ["No cross-layer matrices."]
    out = []
    diag = {m: np.diag(data.cross[m])[1:] for m in ("base", "sft")}
    for model in ("base", "sft"):
        best = np.nanargmax(data.cross[model][1:, 1:], axis=1)
        near = int(np.sum(np.abs(best - np.arange(data.n_layers)) <= 1))
        out.append(
            f"{LABELS[model]}: mean CKA on the diagonal {_f(float(np.nanmean(diag[model])))}; for "
            f"{near} of {data.n_layers} layers the most similar control layer is the same one (±1)"
        )
    higher = data.layers[1:][diag["sft"] > diag["base"]].tolist()
    return ["; ".join(out) + f". The SFT diagonal is above base's at {_ranges(higher)}."]


READINGS = {
    "layer_map": read_layer_map,
    "cka_layers": read_cka_layers,
    "cka_clusters": read_cka_clusters,
    "tsne": read_tsne,
    "clustering": read_clustering,
    "pca_dims": read_pca,
    "readability": read_readability,
    "unseen": read_unseen,
    "data_size": read_data_size,
    "cross_layer": read_cross_layer,
}


def paper_comparison(data: RunData) -> list[dict]:
    """The paper's findings, each with what this run shows and a verdict."""
    groups, source = working_groups(data)
    mask = data.seen_mask
    rows = []

    # 1. The three groups and where they lie.
    paper = paper_groups(data.n_layers)
    g = data.groups
    tol = max(1, round(data.n_layers / 16))
    if not g.get("structure"):
        here, verdict = f"no layer structure ({g.get('reason')})", FAILS
    else:
        here = groups_text(g["groups"])
        if g["model"] != "two_knots" or paper is None:
            verdict = PARTLY
        else:
            close = all(
                abs(g["groups"][k][0] - paper[k][0]) <= tol for k in ("transition", "refinement")
            )
            verdict = HOLDS if close else PARTLY
    scaled = groups_text(paper) if paper else "n/a"
    rows.append(
        {
            "finding": "Three functional groups: shared 1–9, transition 10–15, refinement 16–32",
            "paper": f"Llama 2 7B, 32 layers; scaled to {data.n_layers}: {scaled}",
            "here": here
            + (
                f" (boundaries within ±{tol} of the paper's count as the same place)"
                if g.get("structure")
                else ""
            ),
            "verdict": verdict,
        }
    )

    # 2. Base similarity falls with depth.
    base_med = _median(data, "base", mask)[1:]
    if mask.sum() and np.isfinite(base_med).sum() >= 3:
        rho, p = spearmanr(np.arange(1, data.n_layers + 1), base_med, nan_policy="omit")
        drop = float(base_med[0] - base_med[-1])
        verdict = HOLDS if rho < 0 and p < 0.05 and drop > NEGLIGIBLE_CKA else FAILS
        here = (
            f"Spearman ρ of median base CKA with layer = {_f(float(rho), True)} (p = {p:.3f}); "
            f"from layer 1 to {data.n_layers} it changes by {_f(-drop, True)}"
        )
    else:
        verdict, here = UNTESTABLE, "too few layers or tasks"
    rows.append(
        {
            "finding": "Base CKA with the controls falls through higher layers (§4.1)",
            "paper": "generally decreasing",
            "here": here,
            "verdict": verdict,
        }
    )

    # 3. SFT below base in the shared layers.
    shared = _span(groups, "shared")
    if shared.size and mask.any():
        d = _diff(data, mask)[:, shared]
        share_below = float(np.mean(d.mean(axis=1) < 0))
        verdict = HOLDS if d.mean() < -NEGLIGIBLE_CKA and share_below >= 0.5 else FAILS
        here = (
            f"mean SFT−base over the shared {_ranges(shared.tolist())} ({source}) = "
            f"{_f(float(d.mean()), True)}; below 0 for {share_below:.0%} of tasks"
        )
    else:
        verdict, here = UNTESTABLE, "no shared layers"
    rows.append(
        {
            "finding": "SFT is below base in the shared layers (§4.2)",
            "paper": "lower for many tasks in layers 1–9",
            "here": here,
            "verdict": verdict,
        }
    )

    # 4. SFT close to every control from the transition on, with low task variance.
    upper = _after_shared(groups)
    if upper.size and mask.any():
        d = float(_diff(data, mask)[:, upper].mean())
        iqr = {
            m: float(
                np.nanmean(
                    np.subtract(
                        *np.nanpercentile(data.cka[(m, "cka")][mask][:, upper], [75, 25], axis=0)
                    )
                )
            )
            for m in ("base", "sft")
        }
        ok = [d > NEGLIGIBLE_CKA, iqr["sft"] < iqr["base"]]
        verdict = HOLDS if all(ok) else PARTLY if any(ok) else FAILS
        here = (
            f"mean SFT−base over {_ranges(upper.tolist())} = {_f(d, True)}; task spread "
            f"(IQR) SFT {_f(iqr['sft'])} vs base {_f(iqr['base'])}"
        )
    else:
        verdict, here = UNTESTABLE, "no layers after the shared ones"
    rows.append(
        {
            "finding": "From the transition layers on SFT is close to all controls, with low "
            "variance across tasks (§4.2)",
            "paper": "high CKA, low variance in 10–32",
            "here": here,
            "verdict": verdict,
        }
    )

    # 5. PCA dims rise in the transition layers for SFT.
    transition = _span(groups, "transition")
    if transition.size and shared.size and "sft" in data.pca:
        diff = np.nanmean(data.pca["sft"][mask] - data.pca["base"][mask], axis=0)
        t_d, s_d = float(diff[transition].mean()), float(diff[shared].mean())
        verdict = HOLDS if t_d > NEGLIGIBLE_DIMS and t_d > s_d else FAILS
        here = f"SFT−base components: transition {_f(t_d, True)}, shared {_f(s_d, True)}"
    else:
        verdict, here = UNTESTABLE, "no transition layers to compare"
    rows.append(
        {
            "finding": "SFT needs more dimensions for 99% variance in the transition layers (§4.3)",
            "paper": "similar in shared, more for SFT from the transition on",
            "here": here,
            "verdict": verdict,
        }
    )

    # 6. t-SNE / clustering: SFT forms more distinct clusters from the transition on.
    if upper.size and "sft" in data.clustering:
        gain = float(
            np.nanmean(data.clustering["sft"][0][upper] - data.clustering["base"][0][upper])
        )
        verdict = HOLDS if gain > 0.05 else FAILS
        here = f"mean ARI SFT−base over {_ranges(upper.tolist())} = {_f(gain, True)}"
    else:
        verdict, here = UNTESTABLE, "no clustering or no layers after the shared ones"
    rows.append(
        {
            "finding": "SFT forms more distinct task clusters than base from the transition on "
            "(§4.3)",
            "paper": "t-SNE, by eye",
            "here": here,
            "verdict": verdict,
        }
    )

    # 7. Readability correlation from the transition on, for SFT, weaker for base.
    for measure, label in (("flesch_kincaid", "Flesch-Kincaid"), ("coleman_liau", "Coleman-Liau")):
        r_s, p_s = data.correlations.get(("sft", measure), (None, None))
        r_b, _ = data.correlations.get(("base", measure), (None, None))
        if r_s is None or not upper.size or not np.isfinite(r_s[upper]).any():
            verdict, here = UNTESTABLE, "undefined correlation"
        else:
            ms, mb = float(np.nanmean(r_s[upper])), float(np.nanmean(r_b[upper]))
            n_sig = int(np.sum((p_s[upper] < 0.05) & (r_s[upper] > 0)))
            ok = [ms > 0 and ms > mb, n_sig > 0]
            verdict = HOLDS if all(ok) else PARTLY if ok[0] else FAILS
            here = (
                f"mean r over {_ranges(upper.tolist())}: SFT {_f(ms, True)}, base "
                f"{_f(mb, True)}; SFT positive with p < 0.05 at {n_sig} of {upper.size} layers"
            )
        rows.append(
            {
                "finding": f"CKA of SFT correlates positively with {label} from the transition "
                "on, more than base (§4.4)",
                "paper": "rises in 10–15, then saturates",
                "here": here,
                "verdict": verdict,
            }
        )

    # 8. No data-size correlation.
    p_all = [data.correlations.get((m, "data_size"), (None, None))[1] for m in ("base", "sft")]
    if any(p is None or not np.isfinite(p).any() for p in p_all):
        verdict, here = UNTESTABLE, "training-set sizes do not vary (or too few tasks)"
    else:
        bonf = sum(int(np.sum(p[1:] < 0.05 / (2 * data.n_layers))) for p in p_all)
        raw = sum(int(np.sum(p[1:] < 0.05)) for p in p_all)
        verdict = HOLDS if bonf == 0 else FAILS
        here = (
            f"{raw} of {2 * data.n_layers} (model, layer) correlations with p < 0.05, {bonf} "
            "after Bonferroni"
        )
    rows.append(
        {
            "finding": "No correlation between CKA and data size (§4.4)",
            "paper": "no clear correlation",
            "here": here,
            "verdict": verdict,
        }
    )

    # 9. Unseen tasks: SFT below base low, above high.
    unseen = ~mask
    if unseen.any():
        d = np.nanmean(_diff(data, unseen), axis=0)[1:]
        half = data.n_layers // 2
        low, high = float(d[:half].mean()), float(d[half:].mean())
        ok = [low < -NEGLIGIBLE_CKA, high > NEGLIGIBLE_CKA]
        verdict = HOLDS if all(ok) else PARTLY if any(ok) else FAILS
        here = (
            f"{_n(int(unseen.sum()), 'unseen task')}; mean SFT−base layers 1–{half}: "
            f"{_f(low, True)}, {half + 1}–{data.n_layers}: {_f(high, True)}"
        )
    else:
        verdict, here = UNTESTABLE, "no unseen tasks in this run"
    rows.append(
        {
            "finding": "Unseen tasks: SFT below base in lower layers, above in higher ones (§4.5)",
            "paper": "below up to layer 12, then matching and above",
            "here": here,
            "verdict": verdict,
        }
    )
    return rows
