"""`mossa analyze`: every table of RUN/tables from the activation store, in one pass.

Each task's base, sft and control states (and the other controls, control seeds and SFT
snapshots extracted on its prompts) are loaded once; CKA statistics are batched over
layers; the states of the tasks clustered (competent seen tasks, and per snapshot every
task) are kept for clustering and t-SNE. Last come the layer maps (layer_groups.json, per
measure and per snapshot) and the findings the report states (findings.json). Only
competent tasks (tables/task_metrics.csv) enter the layer map and the verdicts.
"""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from mossa.analysis import (
    cka_tables,
    correlations,
    data_size,
    embeddings,
    evidence,
    kmeans,
    measure_tables,
    over_training,
    pca,
)
from mossa.analysis.competence import competent_tasks, read_task_metrics
from mossa.analysis.findings import compute_findings
from mossa.analysis.layer_map import LayerMap, layer_map_from_rows
from mossa.analysis.tables import quiet_nan_aggregates, read_arrays, write_json, write_table
from mossa.config import RunConfig
from mossa.io import CHECKSUM_FILE, atomic_write_bytes, remove_temp_files, write_checksums
from mossa.pipeline.extract import run_plan
from mossa.pipeline.runner import read_manifest
from mossa.run_dir import CONTROL_DIR_PREFIX, RunDir, control_adapter, snapshot_adapter
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
    store: ActivationStore,
    task: dict,
    cfg: RunConfig,
    run: RunDir,
    extra: dict[str, list[str]],
    snapshots: list[int],
) -> tuple[dict[str, np.ndarray], list[dict], list[dict], dict[str, list[dict]]]:
    """One task: its states (base, sft, control and each snapshot), cka.csv and
    pca_dims.csv rows, and its rows of the further tables (evidence, data size, measures,
    CKA over training); writes its cross-layer matrices.

    ``extra`` lists the store models of other tasks' controls (``others``) and further
    control seeds (``seeds``) extracted on this task's prompts; ``snapshots`` the SFT
    snapshot steps.
    """
    name = task["name"]
    snapshot_models = [snapshot_adapter(step) for step in snapshots]
    loaded = _load_aligned(store, name, (*extra["others"], *extra["seeds"], *snapshot_models))
    acfg = cfg.analysis
    found = evidence.task_evidence(
        loaded,
        task,
        others=extra["others"],
        seeds=extra["seeds"],
        analysis=cfg.analysis,
        seed=cka_tables.pair_seed(cfg.seed, "paired", name),
    )
    found["cka_over_training"] = [
        row
        for step, model in zip(snapshots, snapshot_models, strict=True)
        for row in over_training.cka_over_training_rows(
            step,
            {
                "base": loaded["base"],
                "snapshot": loaded[model],
                "control": loaded[CONTROL],
                **{o: loaded[o] for o in extra["others"]},
            },
            task,
            others=extra["others"],
            analysis=acfg,
            seed=cka_tables.pair_seed(cfg.seed, model, name),
        )
    ]
    states = {m: loaded[m] for m in (*cka_tables.MODELS, CONTROL, *snapshot_models)}
    del loaded
    core = {m: states[m] for m in (*cka_tables.MODELS, CONTROL)}
    found["data_size"] = data_size.data_size_rows(core, name, acfg, cfg.seed)
    found["measures"] = measure_tables.measure_rows(
        task,
        core,
        measures=acfg.measures,
        analysis=acfg,
        seed=cka_tables.pair_seed(cfg.seed, "measures", name),
    )
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
        for model, hidden in core.items()
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
    remove_temp_files(out)  # left by a killed earlier analysis
    extra = evidence_models(run, tasks, cfg)
    snapshots = snapshot_steps(run, tasks, cfg)
    metric_rows = read_task_metrics(run, cfg)
    competent = competent_tasks(metric_rows)  # None: not checked, every task counts
    mapped = [t for t in tasks if competent is None or t["name"] in competent]
    mapped_set = {t["name"] for t in mapped}
    cka_rows, pca_rows, degenerate = [], [], []
    more: dict[str, list[dict]] = {
        "cka_diff": [],
        "specificity": [],
        "ceiling": [],
        "data_size": [],
        "measures": [],
        "cka_over_training": [],
    }
    kept = _Kept(snapshots)
    n_layers = None
    for task in tqdm(tasks, desc="analyze", unit="task", disable=None):
        with _collect_degenerate(degenerate, task["name"]):
            states, task_cka, task_pca, found = _analyze_task(
                store, task, cfg, run, extra[task["name"]], snapshots
            )
        cka_rows.extend(task_cka)
        for table, rows in found.items():
            more[table].extend(rows)
        pca_rows.extend(task_pca)
        depth = states[CONTROL].shape[0] - 1
        if n_layers is not None and depth != n_layers:
            raise ValueError(f"task {task['name']!r} has {depth} layers, earlier tasks {n_layers}")
        n_layers = depth
        kept.add(task, states, clustered=task["seen"] and task["name"] in mapped_set)
        del states
    if degenerate:
        warnings.warn(
            f"{len(degenerate)} degenerate-input warning(s) from the similarity core (NaN or "
            f"dropped values in the tables), first: {degenerate[0]}",
            DegenerateInputWarning,
            stacklevel=2,
        )

    write_table(out / "cka.csv", "cka", cka_rows)
    for table, rows in more.items():
        if table in ("measures", "cka_over_training") and not rows:
            continue  # written only when asked for (analysis.measures, snapshot_every)
        write_table(out / f"{table}.csv", table, rows)
    write_table(out / "pca_dims.csv", "pca_dims", pca_rows)
    write_table(out / "readability.csv", "readability", correlations.readability_rows(tasks))
    write_table(
        out / "correlations.csv",
        "correlations",
        correlations.correlation_rows(cka_rows, tasks, keep=competent),
    )
    write_table(out / "task_metrics.csv", "task_metrics", metric_rows)
    mapped_names = [t["name"] for t in mapped if t["seen"]]
    the_map = layer_map(cka_rows, mapped_names, acfg.group_bootstrap, cfg.seed)
    write_json(out / "layer_groups.json", the_map.to_json())
    if more["measures"]:
        write_json(
            out / "layer_groups_by_measure.json",
            maps_by_measure(the_map, more["measures"], mapped_names, n_layers, acfg, cfg.seed),
        )

    layers = embeddings.default_layers(n_layers, acfg.tsne_layers) if kept.clustered else []
    # scikit-learn's OpenMP threads spin-wait; next to numpy's and torch's thread pools on a
    # busy machine that made k-means and t-SNE 20-100x slower. One OpenMP thread is fast.
    with threadpool_limits(limits=1, user_api="openmp"):
        stacked = kept.stacked()
        ari = kmeans.clustering_rows(stacked, kept.labels(), seed=cfg.seed)
        tsne = embeddings.tsne_rows(
            stacked,
            kept.row_tasks,
            kept.labels(),
            layers,
            perplexity=acfg.tsne_perplexity,
            seed=cfg.seed,
        )
        del stacked
        clustering_steps = kept.over_training_rows(cfg.seed)
    write_table(out / "clustering.csv", "clustering", ari)
    write_table(out / "tsne.csv", "tsne", tsne)
    if snapshots:
        write_table(
            out / "clustering_over_training.csv", "clustering_over_training", clustering_steps
        )
        write_json(
            out / "layer_map_over_training.json",
            maps_over_training(cka_rows, more["cka_over_training"], mapped_names, acfg, cfg.seed),
        )
    # The findings read the tables back: every number in them is one a reader of the files gets.
    with quiet_nan_aggregates():
        findings = compute_findings(read_arrays(run), the_map, tables_dir=out)
    write_json(out / "findings.json", findings)
    # last: a checksum of every table, so the report never reads a damaged or stale one
    tables = sorted(str(p.relative_to(out)) for p in out.rglob("*") if _is_table(p))
    write_checksums(out, tables)


class _Kept:
    """States kept across tasks for clustering: the clustered (seen, competent) tasks'
    base and SFT states with their labels, and per snapshot every task's states by split
    (step 0 is the base model). Clustering over training describes how SFT's states
    organise, which needs no control: every task enters it, competent or not."""

    def __init__(self, snapshots: list[int]):
        self.snapshots = snapshots
        self.models: dict[str, list[np.ndarray]] = {m: [] for m in cka_tables.MODELS}
        self.clusters: list[str] = []
        self.row_tasks: list[str] = []
        self.by_step: dict[tuple[int, str], list[tuple[np.ndarray, str, str]]] = {}

    @property
    def clustered(self) -> bool:
        return bool(self.clusters)

    def add(self, task: dict, states: dict[str, np.ndarray], *, clustered: bool) -> None:
        n = states[CONTROL].shape[1]
        if clustered:
            for model in cka_tables.MODELS:
                self.models[model].append(states[model])
            self.clusters.extend([task["cluster"]] * n)
            self.row_tasks.extend([task["name"]] * n)
        if not self.snapshots:
            return
        split = "seen" if task["seen"] else "unseen"
        for step in (0, *self.snapshots):
            hidden = states["base" if step == 0 else snapshot_adapter(step)]
            self.by_step.setdefault((step, split), []).append(
                (hidden, task["name"], task["cluster"])
            )

    def labels(self) -> np.ndarray:
        return np.array(self.clusters)

    def stacked(self) -> dict[str, np.ndarray]:
        return {m: np.concatenate(v, axis=1) for m, v in self.models.items() if v}

    def over_training_rows(self, seed: int) -> list[dict]:
        """Rows of clustering_over_training.csv (k-means ARI per step, split, layer)."""
        rows = []
        for step in (0, *self.snapshots) if self.snapshots else ():
            splits = {}
            for split in ("seen", "unseen"):
                items = self.by_step.get((step, split), [])
                if not items:
                    continue
                names = np.concatenate([[t] * h.shape[1] for h, t, _ in items])
                clusters = np.concatenate([[c] * h.shape[1] for h, _, c in items])
                hidden = np.concatenate([h for h, _, _ in items], axis=1)
                splits[split] = (hidden, names, clusters)
            rows += over_training.clustering_over_training_rows(step, splits, seed=seed)
        return rows


def snapshot_steps(run: RunDir, tasks: list[dict], cfg: RunConfig) -> list[int]:
    """The SFT snapshot steps to analyse (none without ``training.snapshot_every``), each
    checked extracted for every task."""
    if not cfg.training.snapshot_every:
        return []
    steps = run.snapshot_steps()
    store = run.store()
    for step in steps:
        for task in tasks:
            if not store.has(snapshot_adapter(step), task["name"]):
                raise FileNotFoundError(
                    f"{store.path(snapshot_adapter(step), task['name'])} is missing (the "
                    f"config asks for SFT snapshots: training.snapshot_every); extract it with "
                    f"`mossa extract {run.root}`"
                )
    return steps


def _is_table(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.name != CHECKSUM_FILE


def layer_map(cka_rows: list[dict], tasks: list[str], n_boot: int, seed: int) -> LayerMap:
    """layer_groups.json: the map of ``tasks`` (the competent seen ones) from debiased CKA,
    plus the same fit on biased CKA (see docs/layermap.md)."""
    return layer_map_from_rows(cka_rows, n_boot=n_boot, seed=seed, tasks=tasks)


def maps_by_measure(
    cka_map: LayerMap, rows: list[dict], tasks: list[str], n_layers: int, acfg, seed: int
) -> dict:
    """layer_groups_by_measure.json: the layer map under each measure and where they agree."""
    maps = {"cka": cka_map.to_json()}
    for measure in acfg.measures:
        if measure != "cka":
            maps[measure] = layer_map(
                measure_tables.as_cka_rows(rows, measure), tasks, acfg.group_bootstrap, seed
            ).to_json()
    return {"measures": maps, "agreement": measure_tables.agreement(maps, n_layers)}


def maps_over_training(
    cka_rows: list[dict], rows: list[dict], tasks: list[str], acfg, seed: int
) -> dict:
    """layer_map_over_training.json: the layer map at each SFT snapshot (base rows of
    cka.csv with the snapshot as SFT), when its groups first appear and first hold, and
    from which step task-specific similarity is present (:func:`over_training.emergence`)."""
    base = [r for r in cka_rows if r["model"] == "base"]
    steps = sorted({r["step"] for r in rows})
    maps = []
    for step in steps:
        the_map = layer_map(
            base + over_training.snapshot_cka_rows(rows, step), tasks, acfg.group_bootstrap, seed
        )
        data = the_map.to_json()
        maps.append(
            {
                "step": step,
                "structure": data["structure"],
                "groups": data.get("groups"),
                "paper_map": the_map.paper_map.verdict if the_map.paper_map else "not testable",
                "confidence": data.get("confidence", {}),
            }
        )
    found = over_training.emergence(rows, tasks)
    return {
        "steps": steps,
        "maps": maps,
        "first_structure_step": next((m["step"] for m in maps if m["structure"]), None),
        "first_holds_step": next((m["step"] for m in maps if m["paper_map"] == "holds"), None),
        "emergence": {"step": found["step"], "layers": found["layers"]},
    }


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def run(run_dir: Path, cfg: RunConfig) -> None:
    """The analyze stage."""
    run_analysis(run_dir, cfg)
