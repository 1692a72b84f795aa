"""`mossa config`: every key of the run, clustering or pretraining config, and what it means.

The same field descriptions render docs/config.md (:func:`render_markdown`), so the
reference cannot drift from the code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer

REGENERATE = (
    ".venv/bin/python -c 'from mossa.cli.config import render_markdown; "
    'print(render_markdown(), end="")\' > docs/config.md'
)


@dataclass(frozen=True)
class ConfigKind:
    """A config: the command that reads it, its model, loader, profiles and default profile."""

    command: str
    model: type
    load: Callable[..., object]
    profiles: list[str]
    default_profile: str | None


def _run() -> ConfigKind:
    from mossa import config

    return ConfigKind(
        "mossa run",
        config.RunConfig,
        config.load_config,
        config.profile_names(),
        config.DEFAULT_PROFILE,
    )


def _clustering() -> ConfigKind:
    from mossa.clustering import config

    return ConfigKind(
        "mossa clustering",
        config.ClusteringConfig,
        config.load_clustering_config,
        config.profile_names(),
        config.DEFAULT_PROFILE,
    )


def _pretrain() -> ConfigKind:
    from mossa.models import tiny  # imports torch: only when asked for

    return ConfigKind("mossa pretrain", tiny.TinyConfig, tiny.load_tiny_config, [], None)


#: The configs by the name `mossa config` takes.
CONFIG_KINDS: dict[str, Callable[[], ConfigKind]] = {
    "run": _run,
    "clustering": _clustering,
    "pretrain": _pretrain,
}


def config(
    kind: Annotated[
        str,
        typer.Argument(metavar="[run|clustering|pretrain]", help="Which config."),
    ] = "run",
    profile: Annotated[
        str | None, typer.Option(help="Also show this bundled profile's values.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every config key (the path --set takes) with its type, default and description.

    A default is what a key takes when the YAML file leaves it out.

    `mossa run` alone reads the demo profile: see `mossa config run --profile demo`.
    """
    from mossa.config import field_docs

    if kind not in CONFIG_KINDS:
        raise ValueError(f"unknown config {kind!r}; choose one of: {', '.join(CONFIG_KINDS)}")
    chosen = CONFIG_KINDS[kind]()
    docs = field_docs(chosen.model, chosen.load(profile=profile) if profile else None)
    if json_out:
        keys = [
            {"key": d.key, "type": d.type, "default": d.default, "description": d.description}
            | ({"value": d.value} if profile else {})
            for d in docs
        ]
        typer.echo(json.dumps({"config": kind, "profile": profile, "keys": keys}, indent=2))
        return
    header = ["key", "type", "default", *([profile] if profile else []), "description"]
    rows = [
        [d.key, d.type, _show(d.default), *([_show(d.value)] if profile else []), d.description]
        for d in docs
    ]
    _print_table(header, rows)


def _show(value: object) -> str:
    """A value as JSON (also valid YAML, so it can be pasted into --set)."""
    return json.dumps(value)


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal; tab-separated lines with a header line when piped."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not console.is_terminal:
        for row in [header, *rows]:
            typer.echo("\t".join(row))
        return
    table = Table(*header)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def render_markdown() -> str:
    """docs/config.md: every key of every config, from the field descriptions in the code."""
    lines = [
        "# Config reference",
        "",
        "<!-- Generated from the field descriptions in the code: do not edit. -->",
        "",
        "Every key of the three configs mossa reads, with its type, default and meaning. The",
        "same at run time: `mossa config [run|clustering|pretrain] [--profile NAME] [--json]`.",
        "",
        "All three load the same way: a YAML file (`--config`) or a bundled profile",
        "(`--profile`; the pretraining config has none), then `--set key=value` or",
        "`--set section.key=value` items, whose values are read as YAML (`3` an int, `[1, 2]` a",
        "list). A default is what a key takes when the file leaves it out. Unknown keys, `inf`",
        "and `nan` are errors that name the key and where the bad value came from (the `--set`",
        "item, else the file).",
        "",
        "This page is generated; after changing a field, regenerate it with",
        "",
        "```bash",
        REGENERATE,
        "```",
        "",
        "(`tests/test_config_docs.py` fails while it is out of date).",
    ]
    for name, make in CONFIG_KINDS.items():
        kind = make()
        lines += ["", f"## {name}: `{kind.command}`", "", _first_paragraph(kind.model), ""]
        if kind.profiles:
            profiles = ", ".join(f"`{p}`" for p in kind.profiles)
            lines += [
                f"Bundled profiles: {profiles}. Without `--profile` or `--config`, "
                f"`{kind.command}` reads `{kind.default_profile}`.",
                "",
            ]
        else:
            lines += [
                f"No bundled profiles: without `--config`, `{kind.command}` uses the defaults.",
                "",
            ]
        lines += _markdown_tables(kind.model)
    return "\n".join(lines) + "\n"


def _markdown_tables(model: type) -> list[str]:
    """The top-level keys' table, then a heading and a table per section."""
    from mossa.config import field_docs

    docs = field_docs(model)
    groups: dict[str, list] = {}
    for doc in docs:
        groups.setdefault(doc.key.rpartition(".")[0], []).append(doc)
    lines: list[str] = []
    for section, members in groups.items():
        if section:
            intro = _first_paragraph(model.model_fields[section].annotation)
            lines += [f"### `{section}`", "", intro, ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        lines += [
            f"| `{d.key}` | `{_cell(d.type)}` | `{_cell(_show(d.default))}` "
            f"| {_cell(d.description)} |"
            for d in members
        ]
        lines.append("")
    return lines[:-1]


def _first_paragraph(model: type) -> str:
    """The first paragraph of a model's docstring, on one line."""
    return " ".join(model.__doc__.split("\n\n")[0].split())


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a pipe would end the cell)."""
    return text.replace("|", "\\|")


def register(app: typer.Typer) -> None:
    """Add the ``config`` command."""
    app.command("config")(config)
