"""`mossa train` and `mossa evaluate`: the training and evaluation stages on a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer


def _run_config(run_dir: Path, executor: str | None, workers: int | None, address: str | None):
    """The run's resolved config, with executor overrides from the command line."""
    from mossa.config import executor_overrides, load_config

    path = run_dir / "config.resolved.yaml"
    if not path.is_file():
        raise ValueError(f"{path} not found: RUN_DIR must be a run directory made by `mossa run`")
    return load_config(file=path, overrides=executor_overrides(executor, workers, address))


def train(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding config.resolved.yaml.")],
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
) -> None:
    """Train the run's LoRA adapters (SFT and controls); finished adapters are skipped."""
    cfg = _run_config(run_dir, executor, workers, ray_address)  # bad input fails fast
    from mossa.run_lock import hold_run_lock
    from mossa.task_stage import load_run_tasks
    from mossa.training.stage import run_training

    with hold_run_lock(run_dir):
        records = run_training(run_dir, cfg, load_run_tasks(cfg), only=only, raise_on_failure=False)
    failed = 0
    for rec in records:
        summary = rec["summary"] or {}
        detail = ""
        if rec["status"] == "trained":
            val = summary.get("best_val_loss")
            detail = f"{summary['steps']} steps" + (f", best val loss {val:.4f}" if val else "")
        elif rec["status"] == "failed":
            failed += 1
            detail = rec["error"].strip().splitlines()[-1]
        typer.echo(f"{rec['name']}: {rec['status']} {detail}".rstrip())
    if failed:
        typer.secho(f"{failed} job(s) failed", err=True, fg="red")
        raise typer.Exit(1)


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory with trained adapters.")],
) -> None:
    """Score base, SFT and controls on each task's test split (RUN/eval/task_metrics.json)."""
    cfg = _run_config(run_dir, None, None, None)
    from mossa.evaluation import run_evaluation
    from mossa.run_lock import hold_run_lock
    from mossa.task_stage import load_run_tasks

    with hold_run_lock(run_dir):
        run_evaluation(run_dir, cfg, load_run_tasks(cfg))
    typer.echo(f"wrote {run_dir / 'eval' / 'task_metrics.json'}")


def register(app: typer.Typer) -> None:
    """Add `train` and `evaluate` to the mossa command."""
    app.command()(train)
    app.command()(evaluate)
