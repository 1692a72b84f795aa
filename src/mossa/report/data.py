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
from mossa.analysis.tables import STAGE, TableArrays, read_arrays, read_table, read_table_json
from mossa.config import RunConfig
from mossa.io import verify_checksums
from mossa.run_dir import RunDir


def cluster_name(cluster: str) -> str:
    """Display name of a cluster id (the paper's names), or the id itself."""
    from mossa.tasks import CLUSTER_NAMES

    return CLUSTER_NAMES.get(cluster, cluster)


@dataclass
class Evidence:
    """cka_diff.csv, specificity.csv and ceiling.csv as arrays [task, layer 0..L] (tasks in
    cka.csv order; NaN where a table has no row, e.g. no ceiling without control seeds).

    ``diff``, ``ceiling``: column -> array; ``specificity``: (model, column) -> array.
    """

    diff: dict[str, np.ndarray]
    specificity: dict[tuple[str, str], np.ndarray]
    ceiling: dict[str, np.ndarray]

    @property
    def has_specificity(self) -> bool:
        return any(np.isfinite(v).any() for v in self.specificity.values())

    @property
    def has_ceiling(self) -> bool:
        return bool(np.isfinite(self.ceiling["ceiling"]).any())


def read_evidence(run: RunDir, tasks: list[str], n_layers: int) -> Evidence:
    """The evidence tables of ``run`` (see :mod:`mossa.analysis.evidence`) as arrays."""
    index = {t: i for i, t in enumerate(tasks)}

    def grids(name: str, columns: tuple[str, ...], key=lambda r, c: c) -> dict:
        out: dict = {}
        for r in read_table(run.table(f"{name}.csv"), name):
            if r["task"] not in index:
                continue
            for c in columns:
                grid = out.setdefault(key(r, c), np.full((len(tasks), n_layers + 1), np.nan))
                grid[index[r["task"]], r["layer"]] = np.nan if r[c] is None else r[c]
        return out

    empty = np.full((len(tasks), n_layers + 1), np.nan)
    diff_cols = ("diff", "ci_low", "ci_high", "p_value", "diff_biased")
    spec_cols = ("specificity", "ci_low", "ci_high", "p_value")
    ceil_cols = ("ceiling", "ci_low", "ci_high", "sft_cka", "sft_relative")
    ceil_cols += ("sft_relative_ci_low", "sft_relative_ci_high")
    diff = grids("cka_diff", diff_cols)
    spec = grids("specificity", spec_cols, key=lambda r, c: (r["model"], c))
    ceiling = grids("ceiling", ceil_cols)
    return Evidence(
        diff={c: diff.get(c, empty) for c in diff_cols},
        specificity={(m, c): spec.get((m, c), empty) for m in ("base", "sft") for c in spec_cols},
        ceiling={c: ceiling.get(c, empty) for c in ceil_cols},
    )


@dataclass
class RunData(TableArrays):
    """The run's tables as arrays, its layer map and findings, its directory and config."""

    run_dir: Path
    cfg: RunConfig
    layer_map: LayerMap
    findings: dict  # findings.json (mossa.analysis.findings)
    evidence: Evidence  # cka_diff.csv, specificity.csv, ceiling.csv


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
    )
