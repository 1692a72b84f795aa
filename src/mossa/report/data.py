"""Everything the report shows, read once from RUN/tables and the run's config.

The report never recomputes a statistic: the arrays come from the tables, the layer map
from layer_groups.json, and every number and verdict its text states from findings.json.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from mossa.analysis.findings import check_findings
from mossa.analysis.layer_map import LayerMap
from mossa.analysis.tables import STAGE, TableArrays, read_arrays, read_table_json
from mossa.config import RunConfig
from mossa.io import verify_checksums
from mossa.run_dir import RunDir


def cluster_name(cluster: str) -> str:
    """Display name of a cluster id (the paper's names), or the id itself."""
    from mossa.tasks import CLUSTER_NAMES

    return CLUSTER_NAMES.get(cluster, cluster)


@dataclass
class RunData(TableArrays):
    """The run's tables as arrays, its layer map and findings, its directory and config."""

    run_dir: Path
    cfg: RunConfig
    layer_map: LayerMap
    findings: dict  # findings.json (mossa.analysis.findings)


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
    )
