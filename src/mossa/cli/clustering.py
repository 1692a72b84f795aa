"""`mossa clustering`: train a small GPT-2 on synthetic regex tasks and track task clustering."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def clustering(
    profile: Annotated[
        str | None, typer.Option(help="Bundled clustering profile: regex (default), regex-smoke.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default: runs/<name>).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override: key=value or section.key=value (repeatable)."),
    ] = None,
    study: Annotated[
        bool,
        typer.Option(
            "--study",
            help="Run the study instead: M = 1, 2, 3, 5 distributions per task x seeds "
            "seed, seed+1, every position (default out: runs/<name>-study).",
        ),
    ] = False,
) -> None:
    """ARI of k-means task clusters per layer and training step (Wu & Varshney 2025)."""
    from mossa.clustering.config import load_clustering_config

    cfg = load_clustering_config(profile=profile, file=config, overrides=list(set_ or []))
    if study:
        from mossa.clustering.study import run_study

        out_dir = out or Path("runs") / f"{cfg.name}-study"
        rows = run_study(cfg, out_dir)
        typer.echo((out_dir / "study.md").read_text(encoding="utf-8"), nl=False)
        typer.echo(f"study: {out_dir / 'study.csv'} ({len(rows)} rows)")
        return
    from mossa.clustering.experiment import run_clustering

    summary = run_clustering(cfg, out or Path("runs") / cfg.name)
    for split, values in summary["final_ari"].items():
        typer.echo(f"final {split} ARI per layer: " + " ".join(f"{v:.3f}" for v in values))
    accuracy = summary["final_accuracy"]
    typer.echo(
        f"final accuracy: train {accuracy['train']:.3f}, validation {accuracy['validation']:.3f}"
    )
    typer.echo(summary["finding"]["sentence"])
    typer.echo(f"report: {summary['report']} ({summary['wall_time_s']} s)")


def register(app: typer.Typer) -> None:
    """Add the ``clustering`` command."""
    app.command("clustering")(clustering)
