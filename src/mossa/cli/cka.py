"""`mossa cka A B`: CKA between two activation files, per layer."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer


def cka_command(
    a: Annotated[
        Path, typer.Argument(help="Activations x: .npy/.npz/.safetensors, [n, d] or [L, n, d].")
    ],
    b: Annotated[Path, typer.Argument(help="Activations y, same rows (inputs) in the same order.")],
    kernel: Annotated[str, typer.Option(help="linear or rbf.")] = "linear",
    threshold: Annotated[
        float, typer.Option(help="RBF bandwidth as a fraction of the median distance.")
    ] = 1.0,
    debiased: Annotated[
        bool,
        typer.Option(
            "--debiased/--biased",
            help="Unbiased HSIC of Song et al. 2012 (default) or the classic biased CKA.",
        ),
    ] = True,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Print CKA between A and B: one value for [n, d] files, one per layer for [L, n, d]."""
    from mossa.similarity.files import load_activations

    x, y = load_activations(a), load_activations(b)
    from mossa.similarity import cka  # torch: imported only once both files are valid

    try:
        values = cka(x, y, kernel=kernel, debiased=debiased, threshold=threshold)
    except ValueError as exc:
        raise ValueError(f"{a} (x) vs {b} (y): {exc}") from exc
    layers = [None] if x.ndim == 2 else list(range(x.shape[0]))
    column = [values] if x.ndim == 2 else [float(v) for v in values]
    if json_out:
        record = {
            "x": str(a),
            "y": str(b),
            "kernel": kernel,
            "debiased": debiased,
            "threshold": threshold,
            "n": int(x.shape[-2]),
            "cka": _json_number(values) if x.ndim == 2 else [_json_number(v) for v in column],
        }
        typer.echo(json.dumps(record, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    estimator = "debiased" if debiased else "biased"
    typer.echo(f"{kernel} CKA ({estimator}), n = {x.shape[-2]} rows; x = {a}, y = {b}")
    table = Table()
    table.add_column("layer", justify="right")
    table.add_column("cka", justify="right")
    for layer, value in zip(layers, column, strict=True):
        table.add_row("-" if layer is None else str(layer), f"{value:.6f}")
    Console().print(table)


def _json_number(value: float) -> float | None:
    """JSON has no nan: undefined CKA (constant layer) becomes null."""
    return None if math.isnan(value) else float(value)


def register(app: typer.Typer) -> None:
    app.command("cka")(cka_command)
