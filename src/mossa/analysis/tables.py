"""Schemas of the analysis tables, their (atomic) CSV/JSON reading and writing, and the
tables of a run read back into arrays.

One source of truth for column names: the analysis writes through these schemas, the
findings, the report and the tests read through them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from mossa.io import CorruptRunFile, atomic_write_text, corrupt, read_json, read_text
from mossa.run_dir import RunDir

T = TypeVar("T")
STAGE = "analyze"  # the pipeline stage that writes RUN/tables (named in rebuild hints)

SCHEMAS: dict[str, tuple[str, ...]] = {
    "cka": (
        "model",
        "task",
        "cluster",
        "seen",
        "layer",
        "n",
        "cka",
        "cka_biased",
        "null_p95",
        "ci_low",
        "ci_high",
    ),
    "pca_dims": ("model", "task", "layer", "dims99", "capped"),
    "readability": ("task", "flesch_kincaid", "coleman_liau", "n"),
    "correlations": ("model", "layer", "measure", "n_tasks", "pearson_r", "p_value", "p_adjusted"),
    "data_size": ("model", "task", "layer", "n_prompts", "draws", "cka"),
    "task_metrics": (
        "task",
        "metric",
        "n",
        "base",
        "base_low",
        "base_high",
        "sft",
        "sft_low",
        "sft_high",
        "control",
        "control_low",
        "control_high",
        "chance",
        "diff",
        "diff_low",
        "diff_high",
        "p_value",
        "test",
        "competent",
        "reason",
    ),
    "clustering": ("model", "layer", "ari", "silhouette"),
    "tsne": ("model", "layer", "task", "cluster", "x", "y"),
    "cka_diff": (
        "task",
        "cluster",
        "seen",
        "layer",
        "n",
        "diff",
        "ci_low",
        "ci_high",
        "p_value",
        "diff_biased",
        "biased_ci_low",
        "biased_ci_high",
    ),
    "specificity": (
        "model",
        "task",
        "cluster",
        "seen",
        "layer",
        "k",
        "specificity",
        "ci_low",
        "ci_high",
        "p_value",
    ),
    "ceiling": (
        "task",
        "cluster",
        "seen",
        "layer",
        "n_seeds",
        "ceiling",
        "ci_low",
        "ci_high",
        "sft_cka",
        "sft_relative",
        "sft_relative_ci_low",
        "sft_relative_ci_high",
    ),
    "cka_over_training": (
        "step",
        "task",
        "cluster",
        "seen",
        "layer",
        "cka",
        "diff",
        "diff_ci_low",
        "diff_ci_high",
        "diff_p_value",
        "specificity",
        "specificity_ci_low",
        "specificity_ci_high",
    ),
    "clustering_over_training": ("step", "split", "layer", "labels", "ari", "silhouette"),
    "measures": (
        "measure",
        "model",
        "task",
        "cluster",
        "seen",
        "layer",
        "n",
        "value",
        "null_p95",
        "ci_low",
        "ci_high",
    ),
}
INT_COLUMNS = {"layer", "n", "dims99", "n_tasks", "n_prompts", "draws", "k", "n_seeds", "step"}
BOOL_COLUMNS = {"seen", "competent", "capped"}
TEXT_COLUMNS = {
    "model",
    "task",
    "cluster",
    "measure",
    "metric",
    "test",
    "reason",
    "split",
    "labels",
}


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def write_table(path: Path, name: str, rows: list[dict]) -> Path:
    """Write ``rows`` as the CSV table ``name`` (columns from :data:`SCHEMAS`), atomically."""
    columns = SCHEMAS[name]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise ValueError(f"table {name}: row {row} lacks columns {missing}")
        writer.writerow([_cell(row[c]) for c in columns])
    atomic_write_text(path, buf.getvalue())
    return path


def _parse(column: str, text: str):
    if column in TEXT_COLUMNS:
        return text
    if column in BOOL_COLUMNS:
        if text not in ("true", "false"):
            raise ValueError(f"expected true or false, found {text!r}")
        return text == "true"
    if text == "":
        return None
    return int(text) if column in INT_COLUMNS else float(text)


def read_table(path: Path, name: str) -> list[dict]:
    """Rows of a table written by :func:`write_table`, typed per column.

    Raises FileNotFoundError naming the file; CorruptRunFile (a ValueError) naming the
    file, the line and the command that rebuilds it when the file is not UTF-8, its
    header differs from the schema, or a row has the wrong width or an unreadable cell.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {name} not found: {path} (run `mossa analyze` first)")
    run_dir = path.parent.parent
    lines = read_text(path, stage=STAGE, run_dir=run_dir).splitlines()
    try:
        reader = csv.reader(lines, strict=True)
        header = tuple(next(reader, ()))
        if header != SCHEMAS[name]:
            raise corrupt(path, f"columns {header} differ from the {name} schema", STAGE, run_dir)
        rows = []
        for line in reader:
            if len(line) != len(header):
                raise ValueError(f"{len(line)} cells, expected {len(header)}")
            rows.append({c: _parse(c, v) for c, v in zip(header, line, strict=True)})
    except (ValueError, csv.Error) as exc:
        if isinstance(exc, CorruptRunFile):
            raise
        raise corrupt(path, f"line {reader.line_num}: {exc}", STAGE, run_dir) from None
    return rows


def read_table_json(path: Path, parse: Callable[[dict], T]) -> T:
    """A JSON object written by :func:`write_json` into RUN/tables, as ``parse`` reads it.

    Errors as :func:`read_table`; a ValueError from ``parse`` (a missing or bad field)
    becomes a CorruptRunFile naming the file and the command that rebuilds it.
    """
    path = Path(path)
    run_dir = path.parent.parent
    data = read_json(path, dict, stage=STAGE, run_dir=run_dir)
    try:
        return parse(data)
    except ValueError as exc:
        raise corrupt(path, str(exc), STAGE, run_dir) from None


def json_ready(x):
    """``x`` with tuples as lists and non-finite floats as None, as :func:`write_json` writes it."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_ready(v) for v in x]
    return x


def write_json(path: Path, data: dict) -> Path:
    """Write ``data`` as indented JSON, atomically (NaN becomes null)."""
    atomic_write_text(path, json.dumps(json_ready(data), indent=1) + "\n")
    return path


CKA_COLUMNS = ("cka", "cka_biased", "null_p95", "ci_low", "ci_high")
MODELS = ("base", "sft")


@dataclass
class TableArrays:
    """The tables of a run as arrays indexed [task, layer 0..L] (tasks in cka.csv order).

    What the findings are computed from and the report's figures draw.
    """

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
    metrics: list[dict]
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


def read_arrays(run: RunDir) -> TableArrays:
    """RUN/tables (CSV tables and cross-layer matrices) as :class:`TableArrays`."""
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
    return TableArrays(
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
        metrics=read_table(run.table("task_metrics.csv"), "task_metrics"),
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


@contextmanager
def quiet_nan_aggregates() -> Iterator[None]:
    """Silence numpy's warnings about aggregates over NaN only.

    An undefined CKA (a layer whose states do not vary, typically the embedding of a shared
    last token) is NaN in the tables; medians and means over it are NaN and reported as
    such. numpy's all-NaN warnings would only repeat that.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        yield
