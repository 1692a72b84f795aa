"""`mossa layermap TABLE.csv`: the layer map of any table in the cka.csv schema."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Annotated

import typer

REQUIRED = ("model", "task", "layer", "cka")
MODELS = ("base", "sft")
BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def read_cka_table(path: Path) -> list[dict]:
    """The rows of ``path`` the map uses: models base and sft, layers >= 1, not ``seen=false``.

    Columns ``model, task, layer, cka`` are required, ``cka_biased`` and ``seen`` optional,
    others ignored. ValueError naming the file (and line and column) for a missing column,
    an unreadable or non-finite value, a missing model or fewer than 3 tasks.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})"
        )
    reader.fieldnames = header
    numbers = ["cka", *(["cka_biased"] if "cka_biased" in header else [])]
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}

        def bad(column: str, problem: str, line=line, row=row) -> ValueError:
            return ValueError(f"{path}, line {line}, column {column}: {problem} {row[column]!r}")

        if row["model"] not in MODELS:
            continue
        try:
            layer = int(row["layer"])
        except ValueError:
            raise bad("layer", "not an integer:") from None
        if "seen" in row:
            if row["seen"].lower() not in BOOLS:
                raise bad("seen", "not true or false:")
            if not BOOLS[row["seen"].lower()]:
                continue
        if layer < 1:
            continue
        if not row["task"]:
            raise bad("task", "empty task name:")
        values = {}
        for column in numbers:
            try:
                values[column] = float(row[column])
            except ValueError:
                raise bad(column, "not a number:") from None
            if not math.isfinite(values[column]):
                raise bad(column, "not a finite number:")
        rows.append({"model": row["model"], "task": row["task"], "layer": layer, **values})
    found = {r["model"] for r in rows}
    for model in MODELS:
        if model not in found:
            others = ", ".join(sorted(found)) or "none"
            raise ValueError(
                f"{path}: no rows of model {model!r} (models found: {others}); "
                "the map compares base and sft"
            )
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    if len(tasks) < 3:
        raise ValueError(
            f"{path}: {len(tasks)} task(s) ({', '.join(tasks)}); the layer map needs at least 3"
        )
    return rows


def select_tasks(rows: list[dict], tasks: list[str] | None, path: Path) -> list[dict]:
    """The rows of ``tasks`` (all when None); ValueError naming an unknown task, or fewer
    than 3 tasks left."""
    if not tasks:
        return rows
    known = list(dict.fromkeys(r["task"] for r in rows))
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(
            f"--task {unknown[0]!r}: no such task in {path} (its seen tasks: {', '.join(known)})"
        )
    if len(set(tasks)) < 3:
        raise ValueError(f"--task: {len(set(tasks))} task(s) given; the layer map needs at least 3")
    return [r for r in rows if r["task"] in tasks]


def layermap_command(
    table: Annotated[
        Path, typer.Argument(help="CSV with columns model (base/sft), task, layer, cka.")
    ],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the map as layer_groups.json holds it.")
    ] = False,
    n_boot: Annotated[
        int, typer.Option("--n-boot", min=1, help="Bootstrap draws (p-values down to 1/(B+1)).")
    ] = 999,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            help="Map only this task (repeatable), e.g. the competent ones of a run's "
            "task_metrics.csv, as the run's own map does.",
        ),
    ] = None,
) -> None:
    """Map shared, transition and refinement layers of a CKA table and test them against
    the paper (docs/layermap.md)."""
    from mossa.analysis.layer_map import layer_map_from_rows

    rows = select_tasks(read_cka_table(table), task, table)
    try:
        the_map = layer_map_from_rows(rows, n_boot=n_boot, seed=seed)
    except ValueError as exc:
        raise ValueError(f"{table}: {exc}") from None
    if json_out:
        typer.echo(json.dumps(the_map.to_json(), indent=2, allow_nan=False))
        return
    for line in summary(the_map, table):
        typer.echo(line)


def _num(value) -> str:
    return "-" if value is None else f"{value:+.3f}"


def groups_line(fit) -> str:
    """The fitted groups with their test and confidence, or "none" and why (one line)."""
    from mossa.analysis.layer_map import p_text

    if not fit.structure:
        return f"none ({fit.reason})"
    spans = ", ".join(
        f"{name} {span.first}-{span.last}" for name, span in fit.structure.groups.items() if span
    )
    conf = ", ".join(f"{k} {v:.0%}" for k, v in fit.structure.confidence.items())
    return (
        f"{spans} ({p_text(fit.p_value, fit.n_bootstrap)} against a straight line; "
        f"boundaries within ±1 layer in refits: {conf})"
    )


def summary(the_map, table: Path) -> list[str]:
    """A few lines: the groups, the paper verdict with each group's checks, the last layer."""
    from mossa.analysis.layer_map import p_text

    fit, paper, final = the_map.fit, the_map.paper_map, the_map.final_norm
    out = [
        f"layer map of {table}: {fit.n_tasks} tasks, layers 1..{fit.n_layers}"
        + (
            f" (fitted 1..{fit.fit_layers}; layer {final.layer} set aside)"
            if final.set_aside
            else ""
        )
    ]
    if the_map.excluded_tasks:
        out.append(f"left out (non-finite CKA): {', '.join(the_map.excluded_tasks)}")
    out.append(f"groups: {groups_line(fit)}")
    out.append(f"paper map: {paper.verdict} ({paper.reason})")
    for test in paper.tests:
        where = f" {test.layers.first}-{test.layers.last}" if test.layers else " (absent)"
        out.append(f"  {test.group}{where}: {'pass' if test.passed else 'fail'}")
        for c in test.checks:
            ci = f" [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]" if c.ci else ""
            p = f", {p_text(c.p_value, paper.n_bootstrap)}" if c.p_value is not None else ""
            mark = "pass" if c.passed else "FAIL"
            out.append(f"    {mark} {c.name} = {_num(c.value)}{ci}{p}: {c.claim}")
    if final.set_aside and final.depends is not None:
        with_it = final.groups_with_it
        spans = (
            ", ".join(f"{n} {s.first}-{s.last}" for n, s in with_it.items() if s)
            if with_it
            else "no structure"
        )
        word = "differ" if final.depends else "agree within one layer"
        out.append(f"with layer {final.layer} fitted too: {spans} ({word})")
    return out


def register(app: typer.Typer) -> None:
    app.command("layermap")(layermap_command)
