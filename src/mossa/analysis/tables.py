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

from mossa.store import atomic_write_text

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
        return text == "true"
    if text == "":
        return None
    return int(text) if column in INT_COLUMNS else float(text)


def read_table(path: Path, name: str) -> list[dict]:
    """Rows of a table written by :func:`write_table`, typed per column.

    Raises FileNotFoundError naming the file, ValueError when the header differs from
    the schema.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table {name} not found: {path} (run `mossa analyze` first)")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        if header != SCHEMAS[name]:
            raise ValueError(
                f"{path}: columns {header} differ from the {name} schema {SCHEMAS[name]}"
            )
        return [{c: _parse(c, v) for c, v in zip(header, line, strict=True)} for line in reader]


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
