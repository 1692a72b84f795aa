"""`mossa pretrain` (build the bundled tiny model) and `mossa models` (list bundled models)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pretrain(
    force: Annotated[bool, typer.Option(help="Rebuild even if a cached copy exists.")] = False,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Training steps (default: the bundled recipe's).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML mapping of tiny-model settings (see docs/models.md)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override: key=value (repeatable; keys: mossa config pretrain)."
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache root (default: $MOSSA_CACHE_DIR or ~/.cache/mossa).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Torch threads (default: every available core).")
    ] = None,
) -> None:
    """Build the bundled `tiny` base model once (tokenizer + pretraining) and cache it.

    Other --steps, --config or --set values make another cache entry; its path works as model.base.

    Every setting, its default and meaning: `mossa config pretrain`.
    """
    from mossa.models import build_tiny
    from mossa.models.tiny import load_tiny_config

    overrides = [*(set_ or []), *([f"steps={steps}"] if steps is not None else [])]
    tiny_config = load_tiny_config(file=config, overrides=overrides)
    result = build_tiny(tiny_config, cache_dir=cache_dir, force=force, threads=threads)
    info = result.info
    typer.echo(f"path: {result.path}")
    typer.echo("built now" if result.built else "already cached (use --force to rebuild)")
    typer.echo(
        f"params: {info['n_params']:,}  layers: {tiny_config.n_layers}  "
        f"hidden: {tiny_config.hidden_size}  vocab: {tiny_config.vocab_size}"
    )
    typer.echo(
        f"loss: train {info['final_train_loss']:.3f} (last 10% of steps), "
        f"val {info['initial_val_loss']:.3f} -> {info['final_val_loss']:.3f} "
        f"(ln vocab = {info['ln_vocab']:.3f})"
    )
    typer.echo(
        f"time: {info['build_seconds']:.1f} s (data {info['data_seconds']:.1f} s, "
        f"training {info['train_seconds']:.1f} s at {info['train_tokens_per_s']:.0f} tokens/s "
        f"on {info['torch_threads']} threads; {info['build_cpu_seconds']:.0f} CPU-s)"
    )


def models(
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache root (default: $MOSSA_CACHE_DIR or ~/.cache/mossa).")
    ] = None,
) -> None:
    """List the bundled base models and whether each is already built in the cache."""
    from mossa.models import bundled_models

    for model in bundled_models(cache_dir):
        status = "cached" if model.cached else "not built yet"
        where = f"  {model.path}" if model.cached else (f"  ({model.note})" if model.note else "")
        typer.echo(f"{model.spec:<20} {status:<14} {model.description}{where}")


def register(app: typer.Typer) -> None:
    """Add `pretrain` and `models` to the mossa command."""
    app.command()(pretrain)
    app.command()(models)
