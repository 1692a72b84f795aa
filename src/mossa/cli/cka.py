"""`mossa cka A B`: CKA (or another similarity measure) between two activation files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

#: Table titles of the measures other than CKA (whose title names kernel and estimator).
TITLES = {
    "procrustes": "Procrustes similarity (nuclear norm, 1 - d²/2)",
    "mutual_knn": "mutual k-NN overlap (k = {k})",
    "rsa": "RSA (Spearman of correlation distances)",
}


def cka_command(
    a: Annotated[
        Path,
        typer.Argument(help="Activations x: .npy/.npz/.safetensors, \\[n, d] or [L, n, d]."),
    ],
    b: Annotated[Path, typer.Argument(help="Activations y, same rows (inputs) in the same order.")],
    measure: Annotated[
        str, typer.Option(help="cka, procrustes, mutual_knn or rsa (docs/similarity.md).")
    ] = "cka",
    kernel: Annotated[
        str | None, typer.Option(help="linear (default) or rbf; --measure cka only.")
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="RBF bandwidth as a fraction of the median distance (default 1.0); "
            "--measure cka only."
        ),
    ] = None,
    debiased: Annotated[
        bool,
        typer.Option(
            "--debiased/--biased",
            help="Unbiased HSIC of Song et al. 2012 (default) or the classic biased CKA; "
            "--measure cka only.",
        ),
    ] = True,
    k: Annotated[
        int | None,
        typer.Option("--k", help="Neighbours per row (default 10); --measure mutual_knn only."),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
) -> None:
    """Print a similarity measure between A and B: one value for \\[n, d] files, one per
    layer for [L, n, d] (default: debiased linear CKA)."""
    from mossa.similarity.files import load_activations
    from mossa.similarity.measures import MEASURES, check_measure

    given = {"kernel": kernel, "threshold": threshold, "debiased": None if debiased else False}
    options = {name: value for name, value in (given | {"k": k}).items() if value is not None}
    check_measure(measure, options)  # a bad name or an option of another measure: exit 2
    if measure == "cka":
        threshold = 1.0 if threshold is None else threshold
        options = {"kernel": kernel or "linear", "debiased": debiased, "threshold": threshold}
    elif measure == "mutual_knn":
        options.setdefault("k", 10)
    x, y = load_activations(a), load_activations(b)
    try:
        values = MEASURES[measure](x, y, **options)
    except ValueError as exc:
        raise ValueError(f"{a} (x) vs {b} (y): {exc}") from exc
    layers = [None] if x.ndim == 2 else list(range(x.shape[0]))
    column = [values] if x.ndim == 2 else [float(v) for v in values]
    if json_out:
        numbers = _json_number(values) if x.ndim == 2 else [_json_number(v) for v in column]
        record = {"x": str(a), "y": str(b), "measure": measure, **options, "n": int(x.shape[-2])}
        typer.echo(json.dumps({**record, measure: numbers}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    if measure == "cka":
        estimator = "debiased" if options["debiased"] else "biased"
        title = f"{options['kernel']} CKA ({estimator})"
    else:
        title = TITLES[measure].format(**options)
    typer.echo(f"{title}, n = {x.shape[-2]} rows; x = {a}, y = {b}")
    table = Table()
    table.add_column("layer", justify="right")
    table.add_column(measure, justify="right")
    for layer, value in zip(layers, column, strict=True):
        table.add_row("-" if layer is None else str(layer), f"{value:.6f}")
    Console().print(table)


def _json_number(value: float) -> float | None:
    """JSON has no nan: an undefined value (constant layer) becomes null."""
    return None if math.isnan(value) else float(value)


def register(app: typer.Typer) -> None:
    app.command("cka")(cka_command)
