"""`mossa analyze RUN_DIR` and `mossa report RUN_DIR`: re-run the last two stages alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunDir = Annotated[
    Path, typer.Argument(help="Run directory made by `mossa run` (holds config.resolved.yaml).")
]


def _run_config(run_dir: Path):
    from mossa.config import load_config

    config = run_dir / "config.resolved.yaml"
    if not config.is_file():
        raise ValueError(f"{config} not found: RUN_DIR must be a run directory made by `mossa run`")
    return load_config(file=config)


def analyze(run_dir: RunDir) -> None:
    """Compute every table of RUN/tables from the activation store (CKA, calibration, layer map)."""
    from mossa.analysis.tables import read_table_json
    from mossa.pipeline import run_pipeline

    run_pipeline(run_dir, _run_config(run_dir), only="analyze")
    groups = read_table_json(run_dir / "tables" / "layer_groups.json")
    if groups["structure"]:
        spans = ", ".join(f"{k} {v[0]}-{v[1]}" for k, v in groups["groups"].items() if v)
        conf = ", ".join(f"{k} {v:.0%}" for k, v in groups["confidence"].items())
        typer.echo(f"layer map: {spans} (confidence within ±1 layer: {conf})")
    else:
        typer.echo(f"layer map: no structure ({groups['reason']})")
    typer.echo(f"tables: {run_dir / 'tables'}")


def report(run_dir: RunDir) -> None:
    """Draw the figures and write the self-contained RUN/report.html from RUN/tables."""
    from mossa.pipeline import run_pipeline

    run_pipeline(run_dir, _run_config(run_dir), only="report")
    typer.echo(f"report: {run_dir / 'report.html'}")


def register(app: typer.Typer) -> None:
    """Add `analyze` and `report` to the mossa command."""
    app.command()(analyze)
    app.command()(report)
