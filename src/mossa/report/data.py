"""Everything the report shows, read once from RUN/tables and the run's config.

The report never recomputes a statistic: the arrays come from the tables, the layer map
from layer_groups.json, and every number and verdict its text states from findings.json.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mossa.analysis.findings import check_findings
from mossa.analysis.layer_map import LayerMap
from mossa.analysis.over_training import MAJORITY
from mossa.analysis.tables import (
    SCHEMAS,
    STAGE,
    TableArrays,
    read_arrays,
    read_table,
    read_table_json,
)
from mossa.config import RunConfig
from mossa.io import verify_checksums
from mossa.run_dir import RunDir


def cluster_name(cluster: str) -> str:
    """Display name of a cluster id (the paper's names), or the id itself."""
    from mossa.tasks import CLUSTER_NAMES

    return CLUSTER_NAMES.get(cluster, cluster)


def _grids(
    rows: list[dict], tasks: list[str], n_layers: int, columns: tuple[str, ...], key
) -> dict:
    """``key(row, column)`` -> array [task, layer 0..L] of the rows' ``columns`` (NaN elsewhere;
    rows of tasks not in ``tasks`` are skipped)."""
    index = {t: i for i, t in enumerate(tasks)}
    out: dict = {}
    for r in rows:
        if r["task"] not in index:
            continue
        for c in columns:
            grid = out.setdefault(key(r, c), np.full((len(tasks), n_layers + 1), np.nan))
            grid[index[r["task"]], r["layer"]] = np.nan if r[c] is None else r[c]
    return out


@dataclass
class Evidence:
    """cka_diff.csv, specificity.csv and ceiling.csv as arrays [task, layer 0..L] (tasks in
    cka.csv order; NaN where a table has no row, e.g. no ceiling without control seeds, or
    everywhere when the run predates these tables).

    ``diff``, ``ceiling``: column -> array; ``specificity``: (model, column) -> array.
    """

    diff: dict[str, np.ndarray]
    specificity: dict[tuple[str, str], np.ndarray]
    ceiling: dict[str, np.ndarray]
    k: int | None  # other tasks' controls per task in specificity.csv (None: no rows)
    n_seeds: int | None  # control seeds behind ceiling.csv (None: no rows)

    @property
    def has_diff(self) -> bool:
        return bool(np.isfinite(self.diff["diff"]).any())

    @property
    def has_specificity(self) -> bool:
        return any(np.isfinite(v).any() for v in self.specificity.values())

    @property
    def has_ceiling(self) -> bool:
        return bool(np.isfinite(self.ceiling["ceiling"]).any())


def _rows(run: RunDir, name: str) -> list[dict]:
    """Rows of table ``name`` (a schema of :mod:`mossa.analysis.tables`); [] when the run has
    no such file (an older run, or a section its config did not ask for)."""
    path = run.table(f"{name}.csv")
    return read_table(path, name) if path.is_file() else []


def read_evidence(run: RunDir, tasks: list[str], n_layers: int) -> Evidence:
    """The evidence tables of ``run`` (see :mod:`mossa.analysis.evidence`) as arrays."""
    empty = np.full((len(tasks), n_layers + 1), np.nan)
    diff_cols = ("diff", "ci_low", "ci_high", "p_value", "diff_biased")
    spec_cols = ("specificity", "ci_low", "ci_high", "p_value")
    ceil_cols = ("ceiling", "ci_low", "ci_high", "sft_cka", "sft_relative")
    ceil_cols += ("sft_relative_ci_low", "sft_relative_ci_high")
    spec_rows, ceil_rows = _rows(run, "specificity"), _rows(run, "ceiling")
    diff = _grids(_rows(run, "cka_diff"), tasks, n_layers, diff_cols, lambda r, c: c)
    spec = _grids(spec_rows, tasks, n_layers, spec_cols, lambda r, c: (r["model"], c))
    ceiling = _grids(ceil_rows, tasks, n_layers, ceil_cols, lambda r, c: c)
    return Evidence(
        diff={c: diff.get(c, empty) for c in diff_cols},
        specificity={(m, c): spec.get((m, c), empty) for m in ("base", "sft") for c in spec_cols},
        ceiling={c: ceiling.get(c, empty) for c in ceil_cols},
        k=max((r["k"] for r in spec_rows), default=None),
        n_seeds=max((r["n_seeds"] for r in ceil_rows), default=None),
    )


def _json_with(*keys: str):
    """A parser for :func:`read_table_json` that requires the top-level ``keys``."""

    def parse(data: dict) -> dict:
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"lacks the fields {missing}")
        return data

    return parse


def _optional_json(run: RunDir, name: str, *keys: str) -> dict | None:
    """JSON table ``name`` with the top-level ``keys``; None when the run has no such file."""
    path = run.table(name)
    return read_table_json(path, _json_with(*keys)) if path.is_file() else None


@dataclass
class OverTraining:
    """The SFT snapshots over training (tables/*_over_training.*, issue 16).

    ``cka``: column of cka_over_training.csv -> array [step, task, layer 0..L] (steps
    ascending, NaN where a row is missing); ``clustering``: the rows of
    clustering_over_training.csv; ``maps``: layer_map_over_training.json or None.
    """

    steps: list[int]
    tasks: list[str]
    seen: np.ndarray  # [task] bool
    cka: dict[str, np.ndarray]
    clustering: list[dict]
    maps: dict | None

    @property
    def mean_diff(self) -> np.ndarray:
        """[step, layer]: mean over seen tasks of the paired SFT-snapshot-minus-base difference."""
        return np.nanmean(self.cka["diff"][:, self.seen], axis=1)

    @property
    def share_above(self) -> np.ndarray:
        """[step, layer]: share of seen tasks whose paired interval lies above 0."""
        return (self.cka["diff_ci_low"][:, self.seen] > 0).mean(axis=1)

    @property
    def present(self) -> np.ndarray:
        """[step, layer]: at least half of the seen tasks' paired intervals above 0 (the
        analysis' definition of task-specific similarity being present, MAJORITY); never at
        layer 0, the embeddings every model shares."""
        present = self.share_above >= MAJORITY
        present[:, 0] = False
        return present


def read_over_training(run: RunDir, n_layers: int) -> OverTraining:
    """The over-training tables of ``run``; each part empty (or None) when its file is missing."""
    rows = _rows(run, "cka_over_training")
    steps = sorted({r["step"] for r in rows})
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    seen = {r["task"]: r["seen"] for r in rows}
    columns = SCHEMAS["cka_over_training"][5:]
    cka = {c: np.full((len(steps), len(tasks), n_layers + 1), np.nan) for c in columns}
    step_index = {s: i for i, s in enumerate(steps)}
    task_index = {t: i for i, t in enumerate(tasks)}
    for r in rows:
        for c in columns:
            value = np.nan if r[c] is None else r[c]
            cka[c][step_index[r["step"]], task_index[r["task"]], r["layer"]] = value
    return OverTraining(
        steps=steps,
        tasks=tasks,
        seen=np.array([seen[t] for t in tasks], dtype=bool),
        cka=cka,
        clustering=_rows(run, "clustering_over_training"),
        maps=_optional_json(
            run,
            "layer_map_over_training.json",
            "steps",
            "maps",
            "first_structure_step",
            "first_holds_step",
            "emergence",
        ),
    )


@dataclass
class Measures:
    """measures.csv as arrays [task, layer 0..L] (tasks in cka.csv order) and the layer maps
    of every measure (layer_groups_by_measure.json or None; issue 18).

    ``values``: (measure, model, column) -> array, column one of value, null_p95.
    """

    names: list[str]  # the measures in measures.csv, in order of appearance
    values: dict[tuple[str, str, str], np.ndarray]
    maps: dict | None


def read_measures(run: RunDir, tasks: list[str], n_layers: int) -> Measures:
    """The per-measure tables of ``run``; empty (None) when its files are missing."""
    rows = _rows(run, "measures")
    return Measures(
        names=list(dict.fromkeys(r["measure"] for r in rows)),
        values=_grids(
            rows, tasks, n_layers, ("value", "null_p95"), lambda r, c: (r["measure"], r["model"], c)
        ),
        maps=_optional_json(run, "layer_groups_by_measure.json", "measures", "agreement"),
    )


@dataclass
class RunData(TableArrays):
    """The run's tables as arrays, its layer map and findings, its directory and config."""

    run_dir: Path
    cfg: RunConfig
    layer_map: LayerMap
    findings: dict  # findings.json (mossa.analysis.findings)
    evidence: Evidence  # cka_diff.csv, specificity.csv, ceiling.csv
    over_training: OverTraining  # *_over_training.* (empty without SFT snapshots)
    measures: Measures  # measures.csv, layer_groups_by_measure.json (empty with CKA only)

    def measure_values(self) -> dict[str, dict[str, np.ndarray]]:
        """Per measure (CKA from cka.csv first, then measures.csv's): [seen task, layer] arrays
        ``base``, ``sft`` and ``null`` (the permutation-null p95, largest of the two models)."""
        mask = self.seen_mask
        out = {
            "cka": {
                "base": self.cka[("base", "cka")][mask],
                "sft": self.cka[("sft", "cka")][mask],
                "null": np.fmax(*(self.cka[(m, "null_p95")][mask] for m in ("base", "sft"))),
            }
        }
        empty = np.full((len(self.tasks), self.n_layers + 1), np.nan)
        values = self.measures.values
        for name in self.measures.names:
            grid = {
                (m, c): values.get((name, m, c), empty)[mask]
                for m in ("base", "sft")
                for c in ("value", "null_p95")
            }
            out[name] = {
                "base": grid[("base", "value")],
                "sft": grid[("sft", "value")],
                "null": np.fmax(grid[("base", "null_p95")], grid[("sft", "null_p95")]),
            }
        return out


def load_run_data(run_dir: Path, cfg: RunConfig | None = None) -> RunData:
    """Read RUN/tables (written by ``mossa analyze``) and RUN/config.resolved.yaml."""
    run = RunDir(run_dir)
    if cfg is None:
        cfg = run.read_config()
    verify_checksums(run.tables_dir, stage=STAGE, run_dir=run.root)
    arrays = read_arrays(run)
    return RunData(
        **{f.name: getattr(arrays, f.name) for f in fields(arrays)},
        run_dir=run.root,
        cfg=cfg,
        layer_map=read_table_json(run.table("layer_groups.json"), LayerMap.from_json),
        findings=read_table_json(run.table("findings.json"), check_findings),
        evidence=read_evidence(run, arrays.tasks, arrays.n_layers),
        over_training=read_over_training(run, arrays.n_layers),
        measures=read_measures(run, arrays.tasks, arrays.n_layers),
    )
