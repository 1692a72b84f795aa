"""What a run's tables say: every statistic, threshold and verdict the report states.

The analyze stage computes the findings from the tables it has just written (read back, so
every number is the one a reader of the files gets) and the layer map, and writes them as
``RUN/tables/findings.json``; the report only puts them into words
(:mod:`mossa.report.readings`). Layers are numbered 0..L as in every table.

Layer ranges for "shared" and "after the shared layers" are this run's groups when its
layer map found them, else the paper's map scaled to this depth (``groups.source``).
The layout of the file is in docs/analysis.md.

Verdicts are drawn on the competent tasks only (:mod:`mossa.analysis.competence`: the
control learned its task); with fewer than ``MIN_COMPETENT`` competent seen tasks every
verdict is "not testable". Means over tasks carry a t-interval over tasks, correlations
over layers and measures are corrected by Benjamini-Hochberg, and a claim with too few
tasks (fewer than 3 unseen tasks; one task per cluster for a per-cluster claim) is "not
testable", with its reason.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import PermutationMethod, pearsonr, rankdata, ttest_1samp
from scipy.stats import t as student_t

from mossa.analysis.competence import MIN_COMPETENT, competent_tasks
from mossa.analysis.correlations import adjust
from mossa.analysis.layer_map import GROUPS, LayerGroups, LayerMap
from mossa.analysis.paper import paper_groups
from mossa.analysis.tables import MODELS, TableArrays, json_ready, read_table

HOLDS, PARTLY, FAILS, UNTESTABLE = "holds", "partly", "does not hold", "not testable"
VERDICTS = (HOLDS, PARTLY, FAILS, UNTESTABLE)
THRESHOLDS = {
    "alpha": 0.05,  # level of every test and correlation the readings call significant
    "negligible_cka": 0.01,  # mean CKA differences below this count as no difference
    "negligible_dims": 0.5,  # likewise for mean differences in principal components
    "majority": 0.5,  # share of tasks that makes "for many tasks"
    "min_unseen": 3,  # fewer unseen tasks: the unseen-task claim is not testable
    "capped_share": 0.5,  # more PCA counts than this at n - 1: the dims claim is not testable
    "clear_ari": 0.1,  # SFT's k-means ARI this far above base's reads as clearly better
    "distinct_ari": 0.05,  # mean ARI gain of SFT over base that makes "more distinct clusters"
}
READABILITY = ("flesch_kincaid", "coleman_liau")
SECTIONS = (
    "thresholds",
    "competence",
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


def compute_findings(t: TableArrays, layer_map: LayerMap, tables_dir: Path | None = None) -> dict:
    """Every finding of the run, JSON-ready (NaN as None): the content of findings.json.

    ``tables_dir`` (RUN/tables) is where data_size.csv and pca_dims.csv are read back from;
    without it the data-size claim is not testable and PCA caps are not counted.
    """
    groups, source = working_groups(t.n_layers, layer_map)
    paper = paper_groups(t.n_layers)
    comp = competence(t)
    kept = _subset(t, set(comp["competent"]))
    sizes = _read_optional(tables_dir, "data_size")
    pca_rows = _read_optional(tables_dir, "pca_dims")
    return json_ready(
        {
            "thresholds": THRESHOLDS,
            "competence": comp,
            "groups": {
                "source": source,
                "used": groups.to_json() if groups else None,
                "paper": paper.to_json() if paper else None,
            },
            "cka_layers": cka_layers(t),
            "cka_clusters": cka_clusters(t, groups),
            "clustering": clustering(t),
            "tsne": tsne(t),
            "pca_dims": pca_dims(t, groups, pca_rows),
            "readability": readability(kept),  # correlations.csv holds the competent tasks
            "data_size": data_size(t, prompt_size_test(kept, sizes)),
            "unseen": unseen(t),
            "cross_layer": cross_layer(t),
            "cka_medians": cka_medians(t),
            "paper": paper_comparison(kept, layer_map, groups, comp, sizes, pca_rows),
        }
    )


def _read_optional(tables_dir: Path | None, name: str) -> list[dict] | None:
    path = None if tables_dir is None else Path(tables_dir) / f"{name}.csv"
    return read_table(path, name) if path is not None and path.is_file() else None


def competence(t: TableArrays) -> dict:
    """Which tasks the verdicts use: the competent ones, and why the others are left out.

    ``checked`` is false when the evaluation kept no per-example scores (or did not run):
    then no task is left out and the verdicts say nothing about what the controls learned.
    """
    keep = competent_tasks(t.metrics)
    why = {r["task"]: r["reason"] for r in t.metrics}
    if keep is None:
        competent, excluded = list(t.tasks), []
    else:
        competent = [x for x in t.tasks if x in keep]
        excluded = [
            {"task": x, "seen": t.seen[x], "reason": why.get(x, "not evaluated")}
            for x in t.tasks
            if x not in keep
        ]
    n_seen = sum(t.seen[x] for x in competent)
    testable = n_seen >= MIN_COMPETENT
    return {
        "checked": keep is not None,
        "minimum": MIN_COMPETENT,
        "competent": competent,
        "n_competent_seen": n_seen,
        "excluded": excluded,
        "testable": testable,
        "reason": None
        if testable
        else f"{n_seen} competent seen task(s); the verdicts need at least {MIN_COMPETENT}",
    }


def _subset(t: TableArrays, tasks: set[str]) -> TableArrays:
    """``t`` restricted to ``tasks`` (per-task arrays only; whole-run tables are kept)."""
    rows = [i for i, x in enumerate(t.tasks) if x in tasks]
    return replace(
        t,
        tasks=[t.tasks[i] for i in rows],
        cka={k: v[rows] for k, v in t.cka.items()},
        pca={m: v[rows] for m, v in t.pca.items()},
    )


def mean_interval(values, confidence: float = 1 - THRESHOLDS["alpha"]) -> dict:
    """Mean over tasks with its t-interval (NaN bounds with fewer than 2 finite values)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0}
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "ci_low": np.nan, "ci_high": np.nan, "n": 1}
    half = float(student_t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(len(x))}


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

    per_cluster = {c: sum(t.seen[x] and t.cluster[x] == c for x in t.tasks) for c in clusters}
    return {
        "layers": upper.tolist(),
        "tasks_per_cluster": per_cluster,
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


def capped_share(pca_rows: list[dict] | None, tasks, layers, models=MODELS) -> float | None:
    """Share of PCA counts at n - 1 (a lower bound only) among ``tasks`` x ``layers``."""
    if pca_rows is None:
        return None
    tasks, layers = set(tasks), {int(x) for x in layers}
    flags = [
        r["capped"]
        for r in pca_rows
        if r["model"] in models and r["task"] in tasks and r["layer"] in layers
    ]
    return float(np.mean(flags)) if flags else None


def pca_dims(
    t: TableArrays, groups: LayerGroups | None, pca_rows: list[dict] | None
) -> dict | None:
    """Mean SFT-minus-base principal components per group (t-interval over seen tasks),
    where SFT exceeds most, and the share of counts capped at n - 1."""
    mask = t.seen_mask
    if "base" not in t.pca or "sft" not in t.pca or not mask.any():
        return None
    per_task = t.pca["sft"][mask] - t.pca["base"][mask]
    diff = np.nanmean(per_task, axis=0)
    seen = [x for x in t.tasks if t.seen[x]]
    per_group = []
    for name in GROUPS:
        span = _span(groups, name)
        if span.size:
            per_group.append(
                {
                    "group": name,
                    "layers": span.tolist(),
                    "value": float(diff[span].mean()),
                    **_bounds(mean_interval(per_task[:, span].mean(axis=1))),
                    "capped": capped_share(pca_rows, seen, span),
                }
            )
    top = t.layers[1:][np.nanargmax(diff[1:])]
    return {
        "groups": per_group,
        "largest": _at(top, diff[top]),
        "capped": capped_share(pca_rows, seen, t.layers[1:], (*MODELS, "control")),
    }


def _bounds(ci: dict) -> dict:
    return {"ci_low": ci["ci_low"], "ci_high": ci["ci_high"]}


def adjusted_correlations(t: TableArrays) -> dict[tuple[str, str], np.ndarray]:
    """Benjamini-Hochberg p-values over every (model, measure, layer) of correlations.csv,
    the same family and values as its ``p_adjusted`` column."""
    keys = sorted(t.correlations)
    flat = adjust(np.concatenate([t.correlations[k][1] for k in keys])) if keys else []
    size = t.n_layers + 1
    return {k: flat[i * size : (i + 1) * size] for i, k in enumerate(keys)}


def _correlation(t: TableArrays, q: dict, model: str, measure: str) -> dict | None:
    """Highest r and where r is positive with BH-adjusted p < alpha (None when undefined)."""
    r, _ = t.correlations.get((model, measure), (None, None))
    if r is None or not np.isfinite(r).any():
        return None
    p = q[(model, measure)]
    positive = np.isfinite(p) & (p < _T["alpha"]) & (r > 0)
    best = int(np.nanargmax(r))
    return {
        "highest": _at(best, r[best]),
        "positive_from": _from_layer_on(positive[1:], t.layers[1:]),
        "positive_at": t.layers[positive].tolist(),
    }


def readability(t: TableArrays) -> dict:
    """Per readability measure and model, the correlation of CKA with it over seen tasks."""
    q = adjusted_correlations(t)
    return {
        "n_seen": int(t.seen_mask.sum()),
        "correction": "Benjamini-Hochberg over every model, measure and layer",
        **{
            m: {model: _correlation(t, q, model, m) for model in ("sft", "base")}
            for m in READABILITY
        },
    }


def prompt_size_test(t: TableArrays, rows: list[dict] | None) -> dict:
    """Does CKA change with the number of prompts it is computed on (the paper's data size)?

    Per competent seen task, model and layer: the least-squares slope of CKA (mean over
    the subsets of data_size.csv) on log2(prompts), i.e. the change per doubling; across
    tasks a one-sample t-test of slope = 0; p-values Benjamini-Hochberg adjusted over both
    models' layers. ``testable`` is false without the table, with fewer than 3 tasks or
    fewer than 2 sizes.
    """
    seen = [x for x in t.tasks if t.seen[x]]
    out: dict = {"testable": False, "n_tasks": len(seen)}
    if rows is None:
        return {**out, "reason": "no data_size.csv (the analysis did not subsample prompts)"}
    rows = [r for r in rows if r["task"] in set(seen) and r["layer"] >= 1]
    sizes = sorted({r["n_prompts"] for r in rows})
    out["sizes"] = sizes
    if len(seen) < MIN_COMPETENT or len(sizes) < 2:
        return {**out, "reason": f"{len(seen)} tasks and {len(sizes)} prompt counts"}
    grid = {(r["model"], r["task"], r["layer"], r["n_prompts"]): r["cka"] for r in rows}
    log_n = np.log2(sizes)
    layers = t.layers[1:]
    slopes = {
        m: np.array(
            [
                [np.polyfit(log_n, [grid[(m, x, layer, n)] for n in sizes], 1)[0] for x in seen]
                for layer in layers
            ]
        )
        for m in MODELS
    }  # [L, T] per model
    p = {m: ttest_1samp(slopes[m], 0.0, axis=1, nan_policy="omit").pvalue for m in MODELS}
    q = adjust(np.concatenate([p[m] for m in MODELS]))
    q = {m: q[i * len(layers) : (i + 1) * len(layers)] for i, m in enumerate(MODELS)}
    per_model = {}
    for m in MODELS:
        mean = np.nanmean(slopes[m], axis=1)
        top = int(np.nanargmax(np.abs(mean)))
        per_model[m] = {
            "largest_slope": _at(layers[top], mean[top]),
            "significant_at": layers[p[m] < _T["alpha"]].tolist(),
            "adjusted_at": layers[q[m] < _T["alpha"]].tolist(),
        }
    return {
        **out,
        "testable": True,
        "n_tests": 2 * len(layers),
        "significant": int(sum(np.sum(p[m] < _T["alpha"]) for m in MODELS)),
        "adjusted": int(sum(np.sum(q[m] < _T["alpha"]) for m in MODELS)),
        **per_model,
    }


def data_size(t: TableArrays, prompts: dict) -> dict:
    """Data size two ways: prompts used for CKA (the paper's; :func:`prompt_size_test`) and
    the correlation of CKA with training-set size over seen tasks (BH-adjusted)."""
    out: dict = {"prompts": prompts, "n_train": None}
    if not any(
        np.isfinite(t.correlations.get((m, "data_size"), ([np.nan], None))[0]).any() for m in MODELS
    ):
        return out
    q = adjusted_correlations(t)
    out["n_train"] = {
        model: {
            "max_abs_r": float(np.nanmax(np.abs(t.correlations[(model, "data_size")][0]))),
            "significant_at": t.layers[
                np.isfinite(t.correlations[(model, "data_size")][1])
                & (t.correlations[(model, "data_size")][1] < _T["alpha"])
            ].tolist(),
            "adjusted_at": t.layers[
                np.isfinite(q[(model, "data_size")]) & (q[(model, "data_size")] < _T["alpha"])
            ].tolist(),
        }
        for model in MODELS
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


def spearman_test(x, y, n_resamples: int = 9999) -> tuple[float, float]:
    """Spearman rho and its two-sided permutation p-value over the finite pairs.

    Exact when every ordering fits in ``n_resamples`` (up to 7 layers), else from that many
    random orderings (seeded): the t approximation spearmanr uses gives p = 0 for a perfect
    rank order of 4 layers, whose exact p is 1/12.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    res = pearsonr(
        rankdata(x[keep]),
        rankdata(y[keep]),
        method=PermutationMethod(n_resamples=n_resamples, rng=0),
    )
    return float(res.statistic), float(res.pvalue)


PAPER_FINDINGS = (
    "three_groups",
    "base_falls",
    "sft_below_in_shared",
    "sft_close_after_shared",
    "more_dims_in_transition",
    "distinct_clusters",
    *(f"readability_{m}" for m in READABILITY),
    "no_data_size_correlation",
    "unseen_below_then_above",
)


def paper_comparison(
    t: TableArrays,
    layer_map: LayerMap,
    groups: LayerGroups | None,
    comp: dict,
    sizes: list[dict] | None = None,
    pca_rows: list[dict] | None = None,
) -> list:
    """The paper's findings, each with its verdict on this run and the numbers behind it.

    ``t`` holds the competent tasks only. Each row has ``finding`` (an id of
    :data:`PAPER_FINDINGS`), ``verdict`` and the numbers of its test; a row that is not
    testable has ``reason`` instead. Means over tasks come with a t-interval over tasks
    (``ci_low``, ``ci_high``) and count as a difference only beyond it.
    """
    if not comp["testable"]:
        return [
            {"finding": f, "verdict": UNTESTABLE, "reason": comp["reason"]} for f in PAPER_FINDINGS
        ]
    mask = t.seen_mask
    seen = [x for x in t.tasks if t.seen[x]]
    shared = _span(groups, "shared")
    transition = _span(groups, "transition")
    upper = _span(groups, "transition", "refinement")
    negligible = _T["negligible_cka"]
    rows: list[dict] = []

    def row(finding: str, verdict: str, **numbers) -> None:
        rows.append({"finding": finding, "verdict": verdict, **numbers})

    def untestable(finding: str, reason: str) -> None:
        row(finding, UNTESTABLE, reason=reason)

    # The three groups: what they are (the layer map's paper_map) and where they lie.
    paper = paper_groups(t.n_layers)
    found = layer_map.fit.structure
    tolerance = max(1, round(t.n_layers / 16))
    close = (
        found is not None
        and found.model == "two_knots"
        and paper is not None
        and all(
            abs(getattr(found.groups, k).first - getattr(paper, k).first) <= tolerance
            for k in ("transition", "refinement")
        )
    )
    tested = layer_map.paper_map
    if tested is None:
        untestable("three_groups", "the layer map was not tested against the paper's definitions")
    elif tested.verdict == UNTESTABLE:
        untestable("three_groups", tested.reason)
    else:
        # the groups must be the paper's kind of groups; "holds" also needs them in its place
        verdict = PARTLY if tested.verdict == HOLDS and not close else tested.verdict
        row(
            "three_groups",
            verdict,
            tolerance=tolerance,
            where_paper_puts_them=close,
            paper_map=tested.to_json(),
        )

    # Base similarity falls with depth.
    base_med = _median(t, "base", mask)[1:]
    if np.isfinite(base_med).sum() >= 3:
        rho, p = spearman_test(t.layers[1:], base_med)
        drop = float(base_med[0] - base_med[-1])
        falls = rho < 0 and p < _T["alpha"] and drop > negligible
        row("base_falls", HOLDS if falls else FAILS, rho=float(rho), p_value=float(p), change=-drop)
    else:
        untestable("base_falls", "fewer than 3 layers with a defined median base CKA")

    # SFT below base in the shared layers.
    if shared.size:
        d = _diff(t, mask)[:, shared].mean(axis=1)
        ci = mean_interval(d)
        share_below = float(np.mean(d < 0))
        direction = ci["mean"] < -negligible and share_below >= _T["majority"]
        verdict = (HOLDS if ci["ci_high"] < 0 else PARTLY) if direction else FAILS
        row("sft_below_in_shared", verdict, layers=shared.tolist(), share_below=share_below, **ci)
    else:
        untestable("sft_below_in_shared", "no shared layers")

    # SFT close to every control from the transition on, with low task variance.
    if upper.size:
        ci = mean_interval(_diff(t, mask)[:, upper].mean(axis=1))
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
        above = ci["mean"] > negligible and ci["ci_low"] > 0
        verdict = _verdict([above, iqr["sft"] < iqr["base"]])
        row("sft_close_after_shared", verdict, layers=upper.tolist(), iqr=iqr, **ci)
    else:
        untestable("sft_close_after_shared", "no layers after the shared ones")

    # PCA dims rise in the transition layers for SFT.
    capped = capped_share(pca_rows, seen, np.concatenate([shared, transition]))
    if not (transition.size and shared.size and "sft" in t.pca):
        untestable("more_dims_in_transition", "no transition and shared layers to compare")
    elif capped is not None and capped > _T["capped_share"]:
        untestable(
            "more_dims_in_transition",
            f"{capped:.0%} of the component counts are at n - 1 (capped by the prompts)",
        )
    else:
        diff = t.pca["sft"][mask] - t.pca["base"][mask]
        t_d, s_d = diff[:, transition].mean(axis=1), diff[:, shared].mean(axis=1)
        ci_t, ci_delta = mean_interval(t_d), mean_interval(t_d - s_d)
        checks = [
            ci_t["mean"] > _T["negligible_dims"] and ci_t["ci_low"] > 0,
            ci_delta["ci_low"] > 0,
        ]
        row(
            "more_dims_in_transition",
            _verdict(checks),
            transition=ci_t,
            shared=mean_interval(s_d),
            transition_minus_shared=ci_delta,
            capped=capped,
        )

    # t-SNE / clustering: SFT forms more distinct clusters from the transition on.
    per_cluster = [sum(t.seen[x] and t.cluster[x] == c for x in t.tasks) for c in t.clusters()]
    if not (upper.size and "sft" in t.clustering):
        untestable("distinct_clusters", "no clustering or no layers after the shared ones")
    elif max(per_cluster, default=0) < 2:
        untestable("distinct_clusters", "one task per cluster: clusters cannot be told from tasks")
    else:
        gain = float(np.nanmean(t.clustering["sft"][0][upper] - t.clustering["base"][0][upper]))
        distinct = gain > _T["distinct_ari"]
        row("distinct_clusters", HOLDS if distinct else FAILS, layers=upper.tolist(), gain=gain)

    # Readability correlation from the transition on, for SFT, weaker for base.
    q = adjusted_correlations(t)
    for measure in READABILITY:
        r_s, _ = t.correlations.get(("sft", measure), (None, None))
        r_b, _ = t.correlations.get(("base", measure), (None, None))
        finding = f"readability_{measure}"
        if r_s is None or not upper.size or not np.isfinite(r_s[upper]).any():
            untestable(finding, "undefined correlation (a constant measure or fewer than 3 tasks)")
            continue
        ms, mb = float(np.nanmean(r_s[upper])), float(np.nanmean(r_b[upper]))
        q_s = q[("sft", measure)][upper]
        n_sig = int(np.sum((q_s < _T["alpha"]) & (r_s[upper] > 0)))
        ok = [ms > 0 and ms > mb, n_sig > 0]
        verdict = HOLDS if all(ok) else PARTLY if ok[0] else FAILS
        row(finding, verdict, layers=upper.tolist(), sft=ms, base=mb, n_significant=n_sig)

    # No data-size correlation (the paper's data size: prompts used for CKA).
    test = prompt_size_test(t, sizes)
    if not test["testable"]:
        untestable("no_data_size_correlation", test["reason"])
    else:
        row(
            "no_data_size_correlation",
            HOLDS if test["adjusted"] == 0 else FAILS,
            **{k: test[k] for k in ("n_tasks", "sizes", "n_tests", "significant", "adjusted")},
            largest_slope={m: test[m]["largest_slope"] for m in MODELS},
        )

    # Unseen tasks: SFT below base low, above high.
    unseen_mask = ~mask
    n_unseen = int(unseen_mask.sum())
    if n_unseen < _T["min_unseen"]:
        untestable(
            "unseen_below_then_above",
            f"{n_unseen} competent unseen task(s); the claim needs at least {_T['min_unseen']}",
        )
    else:
        d = _diff(t, unseen_mask)[:, 1:]
        half = t.n_layers // 2
        low, high = mean_interval(d[:, :half].mean(axis=1)), mean_interval(d[:, half:].mean(axis=1))
        checks = [
            low["mean"] < -negligible and low["ci_high"] < 0,
            high["mean"] > negligible and high["ci_low"] > 0,
        ]
        row(
            "unseen_below_then_above",
            _verdict(checks),
            n_tasks=n_unseen,
            half=half,
            lower=low,
            upper=high,
        )
    return rows
