"""What a run's tables say: every statistic, threshold and verdict the report states.

The analyze stage computes the findings from the tables it has just written (read back, so
every number is the one a reader of the files gets) and the layer map, and writes them as
``RUN/tables/findings.json``; the report only puts them into words
(:mod:`mossa.report.readings`). Layers are numbered 0..L as in every table.

Layer ranges for "shared" and "after the shared layers" are this run's groups when its
layer map found them, else the paper's map scaled to this depth (``groups.source``).
The layout of the file is in docs/analysis.md.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from mossa.analysis.layer_map import GROUPS, LayerGroups, LayerMap
from mossa.analysis.paper import paper_groups
from mossa.analysis.tables import MODELS, TableArrays, json_ready

HOLDS, PARTLY, FAILS, UNTESTABLE = "holds", "partly", "does not hold", "not testable"
VERDICTS = (HOLDS, PARTLY, FAILS, UNTESTABLE)
THRESHOLDS = {
    "alpha": 0.05,  # level of every test and correlation the readings call significant
    "negligible_cka": 0.01,  # mean CKA differences below this count as no difference
    "negligible_dims": 0.5,  # likewise for mean differences in principal components
    "majority": 0.5,  # share of tasks that makes "for many tasks"
    "clear_ari": 0.1,  # SFT's k-means ARI this far above base's reads as clearly better
    "distinct_ari": 0.05,  # mean ARI gain of SFT over base that makes "more distinct clusters"
}
READABILITY = ("flesch_kincaid", "coleman_liau")
SECTIONS = (
    "thresholds",
    "groups",
    "cka_layers",
    "cka_clusters",
    "clustering",
    "tsne",
    "pca_dims",
    "readability",
    "data_size",
    "unseen",
    "cross_layer",
    "cka_medians",
    "paper",
)
_T = THRESHOLDS


def check_findings(data: dict) -> dict:
    """findings.json as read back: ValueError naming a section it lacks or a bad verdict."""
    missing = [name for name in SECTIONS if name not in data]
    if missing:
        raise ValueError(f"findings lack the sections {missing}")
    for row in data["paper"]:
        if row.get("verdict") not in VERDICTS:
            raise ValueError(f"finding {row.get('finding')!r} has no verdict among {VERDICTS}")
    return data


def compute_findings(t: TableArrays, layer_map: LayerMap) -> dict:
    """Every finding of the run, JSON-ready (NaN as None): the content of findings.json."""
    groups, source = working_groups(t.n_layers, layer_map)
    paper = paper_groups(t.n_layers)
    return json_ready(
        {
            "thresholds": THRESHOLDS,
            "groups": {
                "source": source,
                "used": groups.to_json() if groups else None,
                "paper": paper.to_json() if paper else None,
            },
            "cka_layers": cka_layers(t),
            "cka_clusters": cka_clusters(t, groups),
            "clustering": clustering(t),
            "tsne": tsne(t),
            "pca_dims": pca_dims(t, groups),
            "readability": readability(t),
            "data_size": data_size(t),
            "unseen": unseen(t),
            "cross_layer": cross_layer(t),
            "cka_medians": cka_medians(t),
            "paper": paper_comparison(t, layer_map, groups),
        }
    )


def working_groups(n_layers: int, layer_map: LayerMap) -> tuple[LayerGroups | None, str]:
    """The groups the findings use and their source: this run's map ("run"), else "paper"."""
    if layer_map.groups:
        return layer_map.groups, "run"
    return paper_groups(n_layers), "paper"


def _span(groups: LayerGroups | None, *names: str) -> np.ndarray:
    """Layers of the named groups, as an index array (empty without groups)."""
    return np.array(groups.layers(*names) if groups else [], dtype=int)


def _from_layer_on(flags: np.ndarray, layers: np.ndarray) -> int | None:
    """First layer from which ``flags`` holds at every later layer, or None."""
    if not flags[-1]:
        return None
    start = len(flags) - 1
    while start > 0 and flags[start - 1]:
        start -= 1
    return int(layers[start])


def _median(t: TableArrays, model: str, mask: np.ndarray, column: str = "cka") -> np.ndarray:
    values = t.cka[(model, column)][mask]
    return np.nanmedian(values, axis=0) if len(values) else np.full(t.n_layers + 1, np.nan)


def _diff(t: TableArrays, mask: np.ndarray, column: str = "cka") -> np.ndarray:
    """SFT minus base per task and layer, [T_mask, L+1]."""
    return t.cka[("sft", column)][mask] - t.cka[("base", column)][mask]


def _at(layer, value) -> dict:
    return {"layer": int(layer), "value": float(value)}


def cka_layers(t: TableArrays) -> dict | None:
    """Median and mean CKA with the control per layer, seen tasks (None without any)."""
    mask = t.seen_mask
    if not mask.any():
        return None
    layers = t.layers[1:]
    base, sft = _median(t, "base", mask)[1:], _median(t, "sft", mask)[1:]
    mean_diff = np.nanmean(_diff(t, mask), axis=0)[1:]
    hi, lo = int(np.nanargmax(mean_diff)), int(np.nanargmin(mean_diff))
    return {
        "sft_above_base_from": _from_layer_on(sft > base, layers),
        "sft_above_base_at": layers[sft > base].tolist(),
        "largest_difference": _at(layers[hi], mean_diff[hi]),
        "smallest_difference": _at(layers[lo], mean_diff[lo]),
        "median_first": {"base": float(base[0]), "sft": float(sft[0])},
        "median_last": {"base": float(base[-1]), "sft": float(sft[-1])},
        "above_null": {
            m: float(np.mean(t.cka[(m, "cka")][mask][:, 1:] > t.cka[(m, "null_p95")][mask][:, 1:]))
            for m in MODELS
        },
        "biased_excess": {
            m: float(np.nanmean(t.cka[(m, "cka_biased")][mask] - t.cka[(m, "cka")][mask]))
            for m in MODELS
        },
    }


def cka_clusters(t: TableArrays, groups: LayerGroups | None) -> dict | None:
    """SFT's gain over base and base's CKA per cluster after the shared layers."""
    upper = _span(groups, "transition", "refinement")
    if upper.size == 0:
        upper = t.layers[1 + t.n_layers // 2 :]
    clusters = t.clusters(seen=True)
    if not clusters:
        return None
    gain, base_level = {}, {}
    for cluster in clusters:
        mask = np.array([t.seen[x] and t.cluster[x] == cluster for x in t.tasks])
        gain[cluster] = float(np.nanmean(_diff(t, mask)[:, upper]))
        base_level[cluster] = float(np.nanmean(t.cka[("base", "cka")][mask][:, upper]))
    order = sorted(clusters, key=gain.get)
    by_base = sorted(clusters, key=base_level.get)

    def pick(values: dict, cluster: str) -> dict:
        return {"cluster": cluster, "value": values[cluster]}

    return {
        "layers": upper.tolist(),
        "most_gain": pick(gain, order[-1]),
        "least_gain": pick(gain, order[0]),
        "base_closest": pick(base_level, by_base[-1]),
        "base_furthest": pick(base_level, by_base[0]),
    }


def clustering(t: TableArrays) -> dict | None:
    """Where SFT's k-means ARI clearly exceeds base's; the best SFT layer; silhouettes."""
    if "base" not in t.clustering or "sft" not in t.clustering:
        return None
    ari_b, sil_b = t.clustering["base"]
    ari_s, sil_s = t.clustering["sft"]
    clear = (ari_s - ari_b)[1:] > _T["clear_ari"]
    top = int(np.nanargmax(ari_s))
    return {
        "clearly_better_from": _from_layer_on(clear, t.layers[1:]),
        "clearly_better_at": t.layers[1:][clear].tolist(),
        "top_layer": top,
        "top_ari": {"sft": float(ari_s[top]), "base": float(ari_b[top])},
        "last_silhouette": {"sft": float(sil_s[-1]), "base": float(sil_b[-1])},
    }


def tsne(t: TableArrays) -> dict | None:
    """The t-SNE layers with base's and SFT's k-means ARI there (None without maps)."""
    layers = sorted({r["layer"] for r in t.tsne})
    if not layers or "sft" not in t.clustering:
        return None
    ari_b, _ = t.clustering["base"]
    ari_s, _ = t.clustering["sft"]
    return {
        "n_points": sum(1 for r in t.tsne if r["model"] == "sft" and r["layer"] == layers[0]),
        "ari": [
            {"layer": layer, "base": float(ari_b[layer]), "sft": float(ari_s[layer])}
            for layer in layers
        ],
    }


def pca_dims(t: TableArrays, groups: LayerGroups | None) -> dict | None:
    """Mean SFT-minus-base principal components per group, and where SFT exceeds most."""
    mask = t.seen_mask
    if "base" not in t.pca or "sft" not in t.pca or not mask.any():
        return None
    diff = np.nanmean(t.pca["sft"][mask] - t.pca["base"][mask], axis=0)
    per_group = []
    for name in GROUPS:
        span = _span(groups, name)
        if span.size:
            per_group.append(
                {"group": name, "layers": span.tolist(), "value": float(diff[span].mean())}
            )
    top = t.layers[1:][np.nanargmax(diff[1:])]
    return {"groups": per_group, "largest": _at(top, diff[top])}


def _correlation(t: TableArrays, model: str, measure: str) -> dict | None:
    """Highest r and where r is positive with p < alpha (None when undefined)."""
    r, p = t.correlations.get((model, measure), (None, None))
    if r is None or not np.isfinite(r).any():
        return None
    positive = np.isfinite(p) & (p < _T["alpha"]) & (r > 0)
    best = int(np.nanargmax(r))
    return {
        "highest": _at(best, r[best]),
        "positive_from": _from_layer_on(positive[1:], t.layers[1:]),
        "positive_at": t.layers[positive].tolist(),
    }


def readability(t: TableArrays) -> dict:
    """Per readability measure and model, the correlation of CKA with it over seen tasks."""
    return {
        "n_seen": int(t.seen_mask.sum()),
        **{m: {model: _correlation(t, model, m) for model in ("sft", "base")} for m in READABILITY},
    }


def data_size(t: TableArrays) -> dict | None:
    """Correlation of CKA with training-set size (None when the sizes do not vary)."""
    if not any(
        np.isfinite(t.correlations.get((m, "data_size"), ([np.nan], None))[0]).any() for m in MODELS
    ):
        return None
    n_tests = 2 * t.n_layers
    out: dict = {"n_tests": n_tests}
    for model in MODELS:
        r, p = t.correlations[(model, "data_size")]
        out[model] = {
            "max_abs_r": float(np.nanmax(np.abs(r))),
            "significant_at": t.layers[np.isfinite(p) & (p < _T["alpha"])].tolist(),
            "bonferroni_at": t.layers[np.isfinite(p) & (p < _T["alpha"] / n_tests)].tolist(),
        }
    return out


def unseen(t: TableArrays) -> dict | None:
    """Median SFT-minus-base on unseen tasks: where below and above 0, lower and upper half."""
    mask = ~t.seen_mask
    if not mask.any():
        return None
    d = np.nanmedian(_diff(t, mask), axis=0)[1:]
    layers = t.layers[1:]
    half = t.n_layers // 2
    return {
        "n_tasks": int(mask.sum()),
        "below_at": layers[d < 0].tolist(),
        "above_at": layers[d > 0].tolist(),
        "half": half,
        "lower_mean": float(d[:half].mean()),
        "upper_mean": float(d[half:].mean()),
    }


def cross_layer(t: TableArrays) -> dict | None:
    """Diagonal of the mean cross-layer CKA and how often the best control layer is the same."""
    if "sft" not in t.cross or "base" not in t.cross:
        return None
    diag = {m: np.diag(t.cross[m])[1:] for m in MODELS}
    out: dict = {}
    for model in MODELS:
        best = np.nanargmax(t.cross[model][1:, 1:], axis=1)
        out[model] = {
            "diagonal_mean": float(np.nanmean(diag[model])),
            "same_layer": int(np.sum(np.abs(best - np.arange(t.n_layers)) <= 1)),
        }
    out["sft_above_base_at"] = t.layers[1:][diag["sft"] > diag["base"]].tolist()
    return out


def cka_medians(t: TableArrays) -> list[dict]:
    """Per layer, the median over seen tasks of debiased and biased CKA and of the null p95."""
    mask = t.seen_mask
    if not mask.any():
        return []

    def med(model: str, column: str) -> np.ndarray:
        return np.nanmedian(t.cka[(model, column)][mask], axis=0)

    cols = {
        "base": med("base", "cka"),
        "base_biased": med("base", "cka_biased"),
        "sft": med("sft", "cka"),
        "sft_biased": med("sft", "cka_biased"),
        "null": np.nanmedian(np.vstack([t.cka[(m, "null_p95")][mask] for m in MODELS]), axis=0),
    }
    return [
        {"layer": int(layer), **{k: float(v[layer]) for k, v in cols.items()}} for layer in t.layers
    ]


def _verdict(checks: list[bool]) -> str:
    """Holds when every check passes, partly when some do, else does not hold."""
    return HOLDS if all(checks) else PARTLY if any(checks) else FAILS


def paper_comparison(t: TableArrays, layer_map: LayerMap, groups: LayerGroups | None) -> list:
    """The paper's findings, each with its verdict on this run and the numbers behind it.

    Each row has ``finding`` (an id), ``verdict`` and the finding's numbers; a row that is
    not testable has only the first two.
    """
    mask = t.seen_mask
    shared = _span(groups, "shared")
    transition = _span(groups, "transition")
    upper = _span(groups, "transition", "refinement")
    rows: list[dict] = []

    def row(finding: str, verdict: str, **numbers) -> None:
        rows.append({"finding": finding, "verdict": verdict, **numbers})

    # The three groups and where they lie.
    paper = paper_groups(t.n_layers)
    found = layer_map.fit.structure
    tolerance = max(1, round(t.n_layers / 16))
    if not found:
        verdict = FAILS
    elif found.model != "two_knots" or paper is None:
        verdict = PARTLY
    else:
        close = all(
            abs(getattr(found.groups, k).first - getattr(paper, k).first) <= tolerance
            for k in ("transition", "refinement")
        )
        verdict = HOLDS if close else PARTLY
    row("three_groups", verdict, tolerance=tolerance)

    # Base similarity falls with depth.
    base_med = _median(t, "base", mask)[1:]
    if mask.sum() and np.isfinite(base_med).sum() >= 3:
        rho, p = spearmanr(t.layers[1:], base_med, nan_policy="omit")
        drop = float(base_med[0] - base_med[-1])
        falls = rho < 0 and p < _T["alpha"] and drop > _T["negligible_cka"]
        row("base_falls", HOLDS if falls else FAILS, rho=float(rho), p_value=float(p), change=-drop)
    else:
        row("base_falls", UNTESTABLE)

    # SFT below base in the shared layers.
    if shared.size and mask.any():
        d = _diff(t, mask)[:, shared]
        share_below = float(np.mean(d.mean(axis=1) < 0))
        below = d.mean() < -_T["negligible_cka"] and share_below >= _T["majority"]
        row(
            "sft_below_in_shared",
            HOLDS if below else FAILS,
            layers=shared.tolist(),
            mean=float(d.mean()),
            share_below=share_below,
        )
    else:
        row("sft_below_in_shared", UNTESTABLE)

    # SFT close to every control from the transition on, with low task variance.
    if upper.size and mask.any():
        d = float(_diff(t, mask)[:, upper].mean())
        iqr = {
            m: float(
                np.nanmean(
                    np.subtract(
                        *np.nanpercentile(t.cka[(m, "cka")][mask][:, upper], [75, 25], axis=0)
                    )
                )
            )
            for m in MODELS
        }
        verdict = _verdict([d > _T["negligible_cka"], iqr["sft"] < iqr["base"]])
        row("sft_close_after_shared", verdict, layers=upper.tolist(), mean=d, iqr=iqr)
    else:
        row("sft_close_after_shared", UNTESTABLE)

    # PCA dims rise in the transition layers for SFT.
    if transition.size and shared.size and "sft" in t.pca:
        diff = np.nanmean(t.pca["sft"][mask] - t.pca["base"][mask], axis=0)
        t_d, s_d = float(diff[transition].mean()), float(diff[shared].mean())
        more = t_d > _T["negligible_dims"] and t_d > s_d
        row("more_dims_in_transition", HOLDS if more else FAILS, transition=t_d, shared=s_d)
    else:
        row("more_dims_in_transition", UNTESTABLE)

    # t-SNE / clustering: SFT forms more distinct clusters from the transition on.
    if upper.size and "sft" in t.clustering:
        gain = float(np.nanmean(t.clustering["sft"][0][upper] - t.clustering["base"][0][upper]))
        distinct = gain > _T["distinct_ari"]
        row("distinct_clusters", HOLDS if distinct else FAILS, layers=upper.tolist(), gain=gain)
    else:
        row("distinct_clusters", UNTESTABLE)

    # Readability correlation from the transition on, for SFT, weaker for base.
    for measure in READABILITY:
        r_s, p_s = t.correlations.get(("sft", measure), (None, None))
        r_b, _ = t.correlations.get(("base", measure), (None, None))
        finding = f"readability_{measure}"
        if r_s is None or not upper.size or not np.isfinite(r_s[upper]).any():
            row(finding, UNTESTABLE)
            continue
        ms, mb = float(np.nanmean(r_s[upper])), float(np.nanmean(r_b[upper]))
        n_sig = int(np.sum((p_s[upper] < _T["alpha"]) & (r_s[upper] > 0)))
        ok = [ms > 0 and ms > mb, n_sig > 0]
        verdict = HOLDS if all(ok) else PARTLY if ok[0] else FAILS
        row(finding, verdict, layers=upper.tolist(), sft=ms, base=mb, n_significant=n_sig)

    # No data-size correlation.
    p_all = [t.correlations.get((m, "data_size"), (None, None))[1] for m in MODELS]
    if any(p is None or not np.isfinite(p).any() for p in p_all):
        row("no_data_size_correlation", UNTESTABLE)
    else:
        n_tests = 2 * t.n_layers
        bonferroni = sum(int(np.sum(p[1:] < _T["alpha"] / n_tests)) for p in p_all)
        raw = sum(int(np.sum(p[1:] < _T["alpha"])) for p in p_all)
        row(
            "no_data_size_correlation",
            HOLDS if bonferroni == 0 else FAILS,
            significant=raw,
            bonferroni=bonferroni,
            n_tests=n_tests,
        )

    # Unseen tasks: SFT below base low, above high.
    unseen_mask = ~mask
    if unseen_mask.any():
        d = np.nanmean(_diff(t, unseen_mask), axis=0)[1:]
        half = t.n_layers // 2
        low, high = float(d[:half].mean()), float(d[half:].mean())
        row(
            "unseen_below_then_above",
            _verdict([low < -_T["negligible_cka"], high > _T["negligible_cka"]]),
            n_tasks=int(unseen_mask.sum()),
            half=half,
            lower_mean=low,
            upper_mean=high,
        )
    else:
        row("unseen_below_then_above", UNTESTABLE)
    return rows
