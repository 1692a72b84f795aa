"""`mossa analyze`: every table of RUN/tables from the activation store, in one pass.

Each task's base, sft and control states (and the other controls and control seeds
extracted on its prompts) are loaded once; CKA statistics are batched over layers; seen
tasks' base and SFT states are kept (float32) for clustering and t-SNE. Last
come the layer map (layer_groups.json) and the findings the report states (findings.json).
"""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from mossa.analysis import cka_tables, correlations, embeddings, evidence, kmeans, pca
from mossa.analysis.competence import read_task_metrics
from mossa.analysis.findings import compute_findings
from mossa.analysis.layer_map import LayerMap, find_layer_groups
from mossa.analysis.tables import quiet_nan_aggregates, read_arrays, write_json, write_table
from mossa.config import RunConfig
from mossa.io import CHECKSUM_FILE, atomic_write_bytes, write_checksums
from mossa.pipeline.extract import run_plan
from mossa.pipeline.runner import read_manifest
from mossa.run_dir import CONTROL_DIR_PREFIX, RunDir, control_adapter
from mossa.similarity import DegenerateInputWarning
from mossa.store import ActivationStore

CONTROL = "control"


def _load_aligned(
    store: ActivationStore, task: str, extra: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """base, sft, control and ``extra`` states of ``task``, each file read once, rows
    checked aligned."""
    loaded = {m: store.load(m, task) for m in (*cka_tables.MODELS, CONTROL, *extra)}
    reference = loaded[CONTROL][1]
    for model in (*cka_tables.MODELS, *extra):
        manifest = loaded[model][1]
        for field, what in (("prompt_hashes", "prompts in the same order"), ("pooling", "pooling")):
            if manifest.get(field) != reference.get(field):
                raise ValueError(
                    f"{store.manifest_path(model, task)} and {store.manifest_path(CONTROL, task)} "
                    f"do not hold the same {what}"
                )
        if loaded[model][0].shape[0] != loaded[CONTROL][0].shape[0]:
            raise ValueError(
                f"task {task!r}: {model} has {loaded[model][0].shape[0]} layers, control has "
                f"{loaded[CONTROL][0].shape[0]}"
            )
    return {m: hidden for m, (hidden, _) in loaded.items()}


def _analyze_task(
    store: ActivationStore, task: dict, cfg: RunConfig, run: RunDir, extra: dict[str, list[str]]
) -> tuple[dict[str, np.ndarray], list[dict], list[dict], dict[str, list[dict]]]:
    """One task: its states, cka.csv and pca_dims.csv rows, and its rows of the evidence
    tables (:mod:`mossa.analysis.evidence`); writes its cross-layer matrices.

    ``extra`` lists the store models of other tasks' controls (``others``) and further
    control seeds (``seeds``) extracted on this task's prompts.
    """
    name = task["name"]
    loaded = _load_aligned(store, name, (*extra["others"], *extra["seeds"]))
    found = evidence.task_evidence(
        loaded,
        task,
        others=extra["others"],
        seeds=extra["seeds"],
        analysis=cfg.analysis,
        seed=cka_tables.pair_seed(cfg.seed, "paired", name),
    )
    states = {m: loaded[m] for m in (*cka_tables.MODELS, CONTROL)}
    del loaded
    n = states[CONTROL].shape[1]
    cka_rows, cross = [], {}
    for model in cka_tables.MODELS:
        seed = cka_tables.pair_seed(cfg.seed, model, name)
        result = cka_tables.compare_to_control(
            states[model], states[CONTROL], analysis=cfg.analysis, seed=seed
        )
        cka_rows.extend(cka_tables.cka_rows(model, task, result, n))
        cross[model] = result["cross_layer"]
    _save_npz(run.cross_layer(name), cross)
    pca_rows = [
        row
        for model, hidden in states.items()
        for row in pca.pca_rows(model, name, hidden, cfg.analysis.pca_variance)
    ]
    return states, cka_rows, pca_rows, found


def evidence_models(run: RunDir, tasks: list[dict], cfg: RunConfig) -> dict[str, dict]:
    """Per task, the store models of other tasks' controls and of further control seeds
    that the extract stage ran on its prompts (as :func:`mossa.pipeline.extract.run_plan`
    plans them), each checked present.

    A run directory assembled without the extract stage (no extract stage in its
    manifest, e.g. a synthetic one) whose store holds no such model gives none, with a
    warning when the config asks for them: the specificity and ceiling tables are then
    empty.
    """
    none = {t["name"]: {"others": [], "seeds": []} for t in tasks}
    store = run.store()
    extracted = "extract" in read_manifest(run.root)["stages"]
    if not extracted and not any(m.startswith(CONTROL_DIR_PREFIX) for m in store.models()):
        a, tr = cfg.analysis, cfg.training
        if a.cross_task_controls or cfg.extraction.cross_task or tr.control_seeds > 1:
            warnings.warn(
                f"{run.activations_dir} holds no other tasks' controls or control seeds: "
                "tables/specificity.csv and tables/ceiling.csv stay empty (extract them with "
                f"`mossa extract {run.root}`)",
                UserWarning,
                stacklevel=2,
            )
        return none
    for _, model, task in run_plan(tasks, cfg):
        if not model.startswith(CONTROL_DIR_PREFIX):
            continue
        if not store.has(model, task):
            raise FileNotFoundError(
                f"{store.path(model, task)} is missing (the config asks for it: "
                "analysis.cross_task_controls, extraction.cross_task or "
                f"training.control_seeds); extract it with `mossa extract {run.root}`"
            )
        seeds = {control_adapter(task, i) for i in range(1, cfg.training.control_seeds)}
        none[task]["seeds" if model in seeds else "others"].append(model)
    return none


@contextmanager
def _collect_degenerate(found: list[str], task: str):
    """Collect similarity's DegenerateInputWarnings (summarised once at the end), pass others."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, DegenerateInputWarning):
            found.append(f"task {task}: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def run_analysis(run_dir: Path, cfg: RunConfig) -> None:
    """Write every table of RUN/tables (see docs/analysis.md) for the run in ``run_dir``."""
    run = RunDir(run_dir)
    acfg = cfg.analysis
    tasks = run.read_tasks()
    store = run.store()
    out = run.tables_dir
    extra = evidence_models(run, tasks, cfg)
    cka_rows, pca_rows, degenerate = [], [], []
    evidence_rows: dict[str, list[dict]] = {"cka_diff": [], "specificity": [], "ceiling": []}
    kept: dict[str, list[np.ndarray]] = {m: [] for m in cka_tables.MODELS}
    labels: list[str] = []
    row_tasks: list[str] = []
    n_layers = None
    for task in tqdm(tasks, desc="analyze", unit="task"):
        with _collect_degenerate(degenerate, task["name"]):
            states, task_cka, task_pca, found = _analyze_task(
                store, task, cfg, run, extra[task["name"]]
            )
        cka_rows.extend(task_cka)
        for table, rows in found.items():
            evidence_rows[table].extend(rows)
        pca_rows.extend(task_pca)
        depth = states[CONTROL].shape[0] - 1
        if n_layers is not None and depth != n_layers:
            raise ValueError(f"task {task['name']!r} has {depth} layers, earlier tasks {n_layers}")
        n_layers = depth
        if task["seen"]:
            for model in cka_tables.MODELS:
                kept[model].append(states[model])
            labels.extend([task["cluster"]] * states[CONTROL].shape[1])
            row_tasks.extend([task["name"]] * states[CONTROL].shape[1])
    if degenerate:
        warnings.warn(
            f"{len(degenerate)} degenerate-input warning(s) from the similarity core (NaN or "
            f"dropped values in the tables), first: {degenerate[0]}",
            DegenerateInputWarning,
            stacklevel=2,
        )

    write_table(out / "cka.csv", "cka", cka_rows)
    for table, rows in evidence_rows.items():
        write_table(out / f"{table}.csv", table, rows)
    write_table(out / "pca_dims.csv", "pca_dims", pca_rows)
    write_table(out / "readability.csv", "readability", correlations.readability_rows(tasks))
    write_table(
        out / "correlations.csv", "correlations", correlations.correlation_rows(cka_rows, tasks)
    )
    write_table(out / "task_metrics.csv", "task_metrics", read_task_metrics(run, cfg))
    the_map = layer_map(cka_rows, tasks, n_layers, acfg.group_bootstrap, cfg.seed)
    write_json(out / "layer_groups.json", the_map.to_json())

    stacked = {m: np.concatenate(v, axis=1) for m, v in kept.items() if v}
    kept.clear()
    layers = embeddings.default_layers(n_layers, acfg.tsne_layers) if stacked else []
    # scikit-learn's OpenMP threads spin-wait; next to numpy's and torch's thread pools on a
    # busy machine that made k-means and t-SNE 20-100x slower. One OpenMP thread is fast.
    with threadpool_limits(limits=1, user_api="openmp"):
        ari = kmeans.clustering_rows(stacked, np.array(labels), seed=cfg.seed)
        tsne = embeddings.tsne_rows(
            stacked, row_tasks, labels, layers, perplexity=acfg.tsne_perplexity, seed=cfg.seed
        )
    write_table(out / "clustering.csv", "clustering", ari)
    write_table(out / "tsne.csv", "tsne", tsne)
    # The findings read the tables back: every number in them is one a reader of the files gets.
    with quiet_nan_aggregates():
        findings = compute_findings(read_arrays(run), the_map)
    write_json(out / "findings.json", findings)
    # last: a checksum of every table, so the report never reads a damaged or stale one
    tables = sorted(str(p.relative_to(out)) for p in out.rglob("*") if _is_table(p))
    write_checksums(out, tables)


def _is_table(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name != CHECKSUM_FILE


def layer_map(
    cka_rows: list[dict], tasks: list[dict], n_layers: int, n_boot: int, seed: int
) -> LayerMap:
    """layer_groups.json: the map from debiased CKA, plus the same fit on biased CKA."""
    seen = [t["name"] for t in tasks if t["seen"]]
    diffs = {
        c: cka_tables.difference_matrix(cka_rows, seen, n_layers, c) for c in ("cka", "cka_biased")
    }
    # A task with an undefined CKA (a layer whose states do not vary) cannot enter the map.
    usable = np.isfinite(diffs["cka"]).all(axis=1) & np.isfinite(diffs["cka_biased"]).all(axis=1)
    fits = {c: find_layer_groups(d[usable], n_boot=n_boot, seed=seed) for c, d in diffs.items()}
    return LayerMap(
        measure="debiased CKA, SFT minus base, each against the task's control",
        tasks=tuple(t for t, ok in zip(seen, usable, strict=True) if ok),
        excluded_tasks=tuple(t for t, ok in zip(seen, usable, strict=True) if not ok),
        fit=fits["cka"],
        biased=fits["cka_biased"],
    )


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def run(run_dir: Path, cfg: RunConfig) -> None:
    """The analyze stage."""
    run_analysis(run_dir, cfg)
