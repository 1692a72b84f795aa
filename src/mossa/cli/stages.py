"""One stage of a run at a time: `mossa train | evaluate | extract | analyze | report RUN_DIR`.

Each command goes through the same runner as `mossa run` (:mod:`mossa.pipeline.runner`):
it takes the run directory's lock, checks the config against the manifest, refuses the
outputs of an earlier stage that failed, and records the stage as done or failed.
``--force`` means what it means for `mossa run`: accept a run directory whose finished
stages were made with another config, and recompute what no longer matches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

RunDirArg = Annotated[
    Path, typer.Argument(help="Run directory made by `mossa run` (holds config.resolved.yaml).")
]
ForceOption = Annotated[
    bool,
    typer.Option(
        help="Accept a run directory made with another config; recompute what no longer matches it."
    ),
]


def run_stage(
    run_dir: Path, stage: str, *, overrides: list[str] = (), force: bool = False, **options
) -> None:
    """Run ``stage`` alone on ``run_dir`` with its resolved config (plus ``overrides``)."""
    from mossa.config import load_config
    from mossa.pipeline.runner import run_pipeline
    from mossa.run_dir import RunDir

    run = RunDir(run_dir)
    run.read_config()  # a clear error when this is not a run directory
    cfg = load_config(file=run.config, overrides=list(overrides))
    run_pipeline(run.root, cfg, only=stage, force=force, options=options or None)


def train(
    run_dir: RunDirArg,
    only: Annotated[
        list[str] | None,
        typer.Option(help="Train only this job: sft or control:TASK (repeatable)."),
    ] = None,
    executor: Annotated[
        Literal["local", "ray"] | None, typer.Option(help="local or ray (overrides config).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Jobs at once: local processes or Ray workers.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster (default: start a local one).")
    ] = None,
    force: ForceOption = False,
) -> None:
    """Train the run's LoRA adapters (SFT and controls); finished adapters are skipped."""
    from mossa.config import executor_overrides

    overrides = executor_overrides(executor, workers, ray_address)
    run_stage(run_dir, "train", overrides=overrides, force=force, jobs=only, on_records=_show)


def _show(records: list[dict]) -> None:
    """One line per training job: trained (steps, best validation loss), skipped or failed."""
    for rec in records:
        summary = rec["summary"] or {}
        detail = ""
        if rec["status"] == "trained":
            val = summary.get("best_val_loss")
            detail = f"{summary['steps']} steps" + (f", best val loss {val:.4f}" if val else "")
        elif rec["status"] == "failed":
            detail = rec["error"].strip().splitlines()[-1]
        typer.echo(f"{rec['name']}: {rec['status']} {detail}".rstrip())


def evaluate(run_dir: RunDirArg, force: ForceOption = False) -> None:
    """Score base, SFT and controls on each task's test split (RUN/eval/task_metrics.json)."""
    from mossa.run_dir import RunDir

    run_stage(run_dir, "evaluate", force=force)
    typer.echo(f"wrote {RunDir(run_dir).task_metrics}")


def extract(run_dir: RunDirArg, force: ForceOption = False) -> None:
    """Store hidden states of every task's analysis prompts for base, SFT and controls.

    Finished files are skipped, so an interrupted extraction resumes where it stopped.
    """
    from mossa.run_dir import RunDir

    run_stage(run_dir, "extract", force=force, recompute=force)
    store = RunDir(run_dir).store()
    for model in store.models():
        typer.echo(f"{model}: {len(store.tasks(model))} task(s)")
    typer.echo(f"activations: {store.root}")


def analyze(run_dir: RunDirArg, force: ForceOption = False) -> None:
    """Compute every table of RUN/tables from the activation store (CKA, calibration, layer map)."""
    from mossa.analysis.layer_map import LayerMap
    from mossa.analysis.tables import read_table_json
    from mossa.cli.layermap import groups_line
    from mossa.run_dir import RunDir

    run_stage(run_dir, "analyze", force=force)
    run = RunDir(run_dir)
    the_map = read_table_json(run.table("layer_groups.json"), LayerMap.from_json)
    typer.echo(f"layer map: {groups_line(the_map.fit)}")
    if the_map.paper_map:
        typer.echo(f"paper map: {the_map.paper_map.verdict} ({the_map.paper_map.reason})")
    typer.echo(f"tables: {run.tables_dir}")


def report(run_dir: RunDirArg, force: ForceOption = False) -> None:
    """Draw the figures and write the self-contained RUN/report.html from RUN/tables."""
    from mossa.run_dir import RunDir

    run_stage(run_dir, "report", force=force)
    typer.echo(f"report: {RunDir(run_dir).report}")


def register(app: typer.Typer) -> None:
    """Add the five stage commands to the mossa command."""
    for command in (train, evaluate, extract, analyze, report):
        app.command()(command)
