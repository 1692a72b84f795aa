"""The ``mossa`` command.

Each area of mossa keeps its own commands in a ``cli_<area>`` module exposing
``register(app)``; this module only assembles them and turns bad input (ValueError)
into a one-line message and exit code 2, the way users expect from a CLI.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="mossa",
    help="Map where (layers) and when (training steps) a language model holds task information.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = [
    "mossa.cli_analysis",
    "mossa.cli_cka",
    "mossa.cli_clustering",
    "mossa.cli_extract",
    "mossa.cli_models",
    "mossa.cli_run",
    "mossa.cli_tasks",
    "mossa.cli_train",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console entry point: run the app, reporting input errors in one line (exit 2)."""
    try:
        app()
    except (ValueError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2)


if __name__ == "__main__":
    main()
