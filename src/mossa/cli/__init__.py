"""The ``mossa`` command.

Each area of mossa keeps its own commands in a ``mossa.cli.<area>`` module exposing
``register(app)``; this module only assembles them and turns bad input (ValueError) and
unwritable or full disks into a one-line message and exit code 2, the way users expect
from a CLI.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

import typer

# Progress bars are for terminals: mossa's own pass disable=None to tqdm (off when stderr is
# not a TTY); transformers' and huggingface_hub's follow this variable (read when they are
# first imported, here and in worker processes, which inherit it).
if not sys.stderr.isatty():
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

app = typer.Typer(
    name="mossa",
    help="Map where (layers) and when (training steps) a language model holds task information.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = [
    "mossa.cli.cka",
    "mossa.cli.clustering",
    "mossa.cli.config",
    "mossa.cli.layermap",
    "mossa.cli.models",
    "mossa.cli.run",
    "mossa.cli.stages",
    "mossa.cli.tasks",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


#: OSError codes that mean "this path cannot be written here" rather than a bug.
DISK_ERRORS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def main() -> None:
    """Console entry point: report input and disk errors in one line (exit 2).

    Any other exception keeps its traceback.
    """
    try:
        app()
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
        _fail(f"{paths}: {exc.strerror}" if paths else str(exc))


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg="red")
    sys.exit(2)


if __name__ == "__main__":
    main()
