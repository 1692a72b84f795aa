"""`mossa extract RUN_DIR`: the hidden-state extraction stage alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def extract(
    run_dir: Annotated[
        Path, typer.Argument(help="Run directory with config.resolved.yaml, tasks and adapters.")
    ],
    force: Annotated[
        bool,
        typer.Option(
            help="Recompute stored states whose manifest does not match this run "
            "(other prompts, base, adapters, pooling, dtype) instead of refusing them."
        ),
    ] = False,
) -> None:
    """Store hidden states of every task's analysis prompts for base, SFT and controls.

    Finished files are skipped, so an interrupted extraction resumes where it stopped.
    """
    from mossa.config import load_config
    from mossa.extraction import run_extraction
    from mossa.run_lock import hold_run_lock
    from mossa.store import ActivationStore

    config = run_dir / "config.resolved.yaml"
    if not config.is_file():
        raise ValueError(f"{config} not found: RUN_DIR must be a run directory made by `mossa run`")
    with hold_run_lock(run_dir):
        run_extraction(run_dir, load_config(file=config), force=force)
    store = ActivationStore(run_dir / "activations")
    for model in store.models():
        typer.echo(f"{model}: {len(store.tasks(model))} task(s)")
    typer.echo(f"activations: {store.root}")


def register(app: typer.Typer) -> None:
    """Add `extract` to the mossa command."""
    app.command()(extract)
