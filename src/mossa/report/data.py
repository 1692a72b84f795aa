"""The analysis tables of a run, read once into arrays for the figures and the readings.

The report never recomputes a statistic: everything here comes from RUN/tables (and the
run's config), reshaped into [tasks, layers] arrays.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mossa.analysis.tables import STAGE, read_table, read_table_json
from mossa.config import RunConfig
from mossa.io import corrupt, verify_checksums
from mossa.run_dir import RunDir

CKA_COLUMNS = ("cka", "cka_biased", "null_p95", "ci_low", "ci_high")
MODELS = ("base", "sft")


def cluster_name(cluster: str) -> str:
    """Display name of a cluster id (the paper's names), or the id itself."""
    from mossa.tasks import CLUSTER_NAMES

    return CLUSTER_NAMES.get(cluster, cluster)


@dataclass
class RunData:
    """Everything the report shows, as arrays indexed [task, layer] (tasks in cka.csv order)."""

    run_dir: Path
    cfg: RunConfig
    tasks: list[str]
    cluster: dict[str, str]
    seen: dict[str, bool]
    n: dict[str, int]
    n_layers: int
    cka: dict[tuple[str, str], np.ndarray]  # (model, column) -> [T, L+1]
    pca: dict[str, np.ndarray]  # model -> [T, L+1]
    correlations: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]  # (model, measure) -> r, p
    clustering: dict[str, tuple[np.ndarray, np.ndarray]]  # model -> ari [L+1], silhouette [L+1]
    tsne: list[dict]
    readability: list[dict]
    metrics: list[dict]
    groups: dict
    cross: dict[str, np.ndarray]  # model -> mean over seen tasks [L+1, L+1]

    @property
    def seen_mask(self) -> np.ndarray:
        return np.array([self.seen[t] for t in self.tasks])

    @property
    def layers(self) -> np.ndarray:
        return np.arange(self.n_layers + 1)

    def clusters(self, seen: bool = True) -> list[str]:
        """Cluster ids of the (seen or unseen) tasks, in order of first appearance."""
        return list(dict.fromkeys(self.cluster[t] for t in self.tasks if self.seen[t] == seen))


def _grid(rows: list[dict], key: str, tasks: list[str], n_layers: int, models) -> dict:
    index = {t: i for i, t in enumerate(tasks)}
    out = {m: np.full((len(tasks), n_layers + 1), np.nan) for m in models}
    for r in rows:
        if r["model"] in out:
            out[r["model"]][index[r["task"]], r["layer"]] = r[key]
    return out


def load_run_data(run_dir: Path, cfg: RunConfig | None = None) -> RunData:
    """Read RUN/tables (written by ``mossa analyze``) and RUN/config.resolved.yaml."""
    run = RunDir(run_dir)
    run_dir = run.root
    if cfg is None:
        cfg = run.read_config()
    verify_checksums(run.tables_dir, stage=STAGE, run_dir=run_dir)
    cka_rows = read_table(run.table("cka.csv"), "cka")
    if not cka_rows:
        raise ValueError(f"{run.table('cka.csv')} has no rows")
    tasks = list(dict.fromkeys(r["task"] for r in cka_rows))
    n_layers = max(r["layer"] for r in cka_rows)
    cka = {}
    for column in CKA_COLUMNS:
        for model, grid in _grid(cka_rows, column, tasks, n_layers, MODELS).items():
            cka[(model, column)] = grid
    pca_rows = read_table(run.table("pca_dims.csv"), "pca_dims")
    pca_models = list(dict.fromkeys(r["model"] for r in pca_rows))
    pca = _grid(pca_rows, "dims99", tasks, n_layers, pca_models)
    correlations: dict = {}
    for r in read_table(run.table("correlations.csv"), "correlations"):
        r_arr, p_arr = correlations.setdefault(
            (r["model"], r["measure"]),
            (np.full(n_layers + 1, np.nan), np.full(n_layers + 1, np.nan)),
        )
        r_arr[r["layer"]], p_arr[r["layer"]] = r["pearson_r"], r["p_value"]
    clustering: dict = {}
    for r in read_table(run.table("clustering.csv"), "clustering"):
        ari, sil = clustering.setdefault(
            r["model"], (np.full(n_layers + 1, np.nan), np.full(n_layers + 1, np.nan))
        )
        ari[r["layer"]], sil[r["layer"]] = r["ari"], r["silhouette"]
    first = {r["task"]: r for r in cka_rows if r["layer"] == 0}
    seen = {t: bool(first[t]["seen"]) for t in tasks}
    return RunData(
        run_dir=run_dir,
        cfg=cfg,
        tasks=tasks,
        cluster={t: first[t]["cluster"] for t in tasks},
        seen=seen,
        n={t: int(first[t]["n"]) for t in tasks},
        n_layers=n_layers,
        cka=cka,
        pca=pca,
        correlations=correlations,
        clustering=clustering,
        tsne=read_table(run.table("tsne.csv"), "tsne") if run.table("tsne.csv").exists() else [],
        readability=read_table(run.table("readability.csv"), "readability"),
        metrics=read_table(run.table("task_metrics.csv"), "task_metrics"),
        groups=read_table_json(run.table("layer_groups.json")),
        cross=_mean_cross(run, [t for t in tasks if seen[t]]),
    )


def _mean_cross(run: RunDir, tasks: list[str]) -> dict[str, np.ndarray]:
    """Mean cross-layer CKA over ``tasks`` per model (NaN entries ignored)."""
    stacks: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}
    for task in tasks:
        path = run.cross_layer(task)
        if not path.is_file():
            raise FileNotFoundError(f"cross-layer CKA of task {task!r} missing: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                for model in MODELS:
                    stacks[model].append(data[model])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            problem = f"not a readable cross-layer CKA archive ({exc!r})"
            raise corrupt(path, problem, STAGE, run.root) from None
    return {m: np.nanmean(np.stack(v), axis=0) for m, v in stacks.items() if v}
