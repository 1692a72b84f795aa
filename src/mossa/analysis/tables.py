"""Schemas of the analysis tables and their (atomic) CSV/JSON reading and writing.

One source of truth for column names: the analysis writes through these schemas, the
report and the tests read through them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from mossa.io import CorruptRunFile, atomic_write_text, corrupt, read_json, read_text

STAGE = "analyze"  # the pipeline stage that writes RUN/tables (named in rebuild hints)

SCHEMAS: dict[str, tuple[str, ...]] = {
    "cka": (
        "model",
        "task",
        "cluster",
        "seen",
        "layer",
        "n",
        "cka",
        "cka_biased",
        "null_p95",
        "ci_low",
        "ci_high",
    ),
    "pca_dims": ("model", "task", "layer", "dims99"),
    "readability": ("task", "flesch_kincaid", "coleman_liau", "n"),
    "correlations": ("model", "layer", "measure", "pearson_r", "p_value"),
    "task_metrics": ("task", "metric", "base", "sft", "control"),
    "clustering": ("model", "layer", "ari", "silhouette"),
    "tsne": ("model", "layer", "task", "cluster", "x", "y"),
}
INT_COLUMNS = {"layer", "n", "dims99"}
BOOL_COLUMNS = {"seen"}
TEXT_COLUMNS = {"model", "task", "cluster", "measure", "metric"}


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.10g}"
    return str(value)


def write_table(path: Path, name: str, rows: list[dict]) -> Path:
    """Write ``rows`` as the CSV table ``name`` (columns from :data:`SCHEMAS`), atomically."""
    columns = SCHEMAS[name]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise ValueError(f"table {name}: row {row} lacks columns {missing}")
        writer.writerow([_cell(row[c]) for c in columns])
    atomic_write_text(path, buf.getvalue())
    return path


def _parse(column: str, text: str):
    if column in TEXT_COLUMNS:
        return text
    if column in BOOL_COLUMNS:
        if text not in ("true", "false"):
            raise ValueError(f"expected true or false, found {text!r}")
        return text == "true"
    if text == "":
        return None
    return int(text) if column in INT_COLUMNS else float(text)


def read_table(path: Path, name: str) -> list[dict]:
    """Rows of a table written by :func:`write_table`, typed per column.

    Raises FileNotFoundError naming the file; CorruptRunFile (a ValueError) naming the
    file, the line and the command that rebuilds it when the file is not UTF-8, its
    header differs from the schema, or a row has the wrong width or an unreadable cell.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {name} not found: {path} (run `mossa analyze` first)")
    run_dir = path.parent.parent
    lines = read_text(path, stage=STAGE, run_dir=run_dir).splitlines()
    try:
        reader = csv.reader(lines, strict=True)
        header = tuple(next(reader, ()))
        if header != SCHEMAS[name]:
            raise corrupt(path, f"columns {header} differ from the {name} schema", STAGE, run_dir)
        rows = []
        for line in reader:
            if len(line) != len(header):
                raise ValueError(f"{len(line)} cells, expected {len(header)}")
            rows.append({c: _parse(c, v) for c, v in zip(header, line, strict=True)})
    except (ValueError, csv.Error) as exc:
        if isinstance(exc, CorruptRunFile):
            raise
        raise corrupt(path, f"line {reader.line_num}: {exc}", STAGE, run_dir) from None
    return rows


def read_table_json(path: Path) -> dict:
    """A JSON object written by :func:`write_json` into RUN/tables (errors as read_table)."""
    path = Path(path)
    return read_json(path, dict, stage=STAGE, run_dir=path.parent.parent)


def write_json(path: Path, data: dict) -> Path:
    """Write ``data`` as indented JSON, atomically (NaN becomes null)."""

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    atomic_write_text(path, json.dumps(clean(data), indent=1) + "\n")
    return path
