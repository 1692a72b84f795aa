"""Load the Flan 2021 mixture from local files into clustered mossa tasks.

Accepted: a JSONL file, a parquet file, or a directory written by
``datasets.Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, each with the columns
``inputs`` (the prompt, with Flan's instruction template already applied), ``targets``
and ``task`` (e.g. ``anli_r1`` or ``anli_r1_10templates``). Task names are mapped to the
paper's clusters with Table 1 (:mod:`mossa.tasks.clusters`); tasks outside Table 1 are
skipped with a warning. Because Flan's rendered inputs already carry one of its ten
templates per dataset, a Flan task has one pass-through template, ``{inputs}``.

Refused, naming the file, the line (JSONL) or row (counted from 0) and the field: a text
longer than :data:`~mossa.tasks.types.MAX_FIELD_CHARS`, and a task name that maps to
Table 1 but cannot name files (:func:`~mossa.tasks.types.task_name_problem`).
"""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

from mossa.tasks.clusters import CLUSTERS, Table1Dataset, match_flan_task
from mossa.tasks.splits import holdout_counts, water_fill
from mossa.tasks.types import Example, Task, Template, task_name_problem, text_size_problem

COLUMNS = ("inputs", "targets", "task")
PASS_THROUGH = Template("{inputs}", "{target}")


def _check_columns(path: Path, present: list[str]) -> None:
    missing = [c for c in COLUMNS if c not in present]
    if missing:
        raise ValueError(
            f"{path}: Flan data needs columns {', '.join(COLUMNS)}; missing "
            f"{', '.join(missing)} (has: {', '.join(present) or 'none'})"
        )


def _row_problem(values: tuple, names: set[str]) -> str | None:
    """Why the row ``(inputs, targets, task)`` is refused, or None.

    ``names`` collects the task names already checked, so each is checked once.
    """
    for column, value in zip(COLUMNS, values, strict=True):
        problem = text_size_problem(value) if isinstance(value, str) else None
        if problem:
            return f"field {column!r}: {problem}"
    task = values[-1]
    if isinstance(task, str) and task not in names:
        names.add(task)
        problem = task_name_problem(task)
        if problem and match_flan_task(task) is not None:
            return f"field 'task': {problem}"
    return None


def _check_rows(path: Path, columns: dict[str, list], part: str = "") -> None:
    """Refuse the first row :func:`_row_problem` refuses, naming ``part`` and its row."""
    names: set[str] = set()
    for i, values in enumerate(zip(*(columns[c] for c in COLUMNS), strict=True)):
        problem = _row_problem(values, names)
        if problem:
            raise ValueError(f"{path}: {part}row {i}: {problem}")


def _read_jsonl(path: Path) -> dict[str, list]:
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    names: set[str] = set()
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid UTF-8 ({exc.reason})") from None
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object per line")
            for column in COLUMNS:
                if column not in row:
                    raise ValueError(f"{path}:{number}: field {column!r} is missing")
            problem = _row_problem(tuple(row[c] for c in COLUMNS), names)
            if problem:
                raise ValueError(f"{path}:{number}: {problem}")
            for column in COLUMNS:
                columns[column].append(row[column])
    return columns


def _read_parquet(path: Path) -> dict[str, list]:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    _check_columns(path, names)
    table = pq.read_table(path, columns=list(COLUMNS))
    columns = {c: table.column(c).to_pylist() for c in COLUMNS}
    _check_rows(path, columns)
    return columns


def _read_saved_dataset(path: Path) -> dict[str, list]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    parts = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [("", loaded)]
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    for split, part in parts:
        _check_columns(path, list(part.column_names))
        rows = {c: list(part[c]) for c in COLUMNS}
        _check_rows(path, rows, f"split {split!r} " if split else "")
        for c in COLUMNS:
            columns[c].extend(rows[c])
    return columns


def read_flan_columns(path: Path) -> dict[str, list]:
    """The ``inputs``, ``targets`` and ``task`` columns of a Flan file or saved dataset."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Flan data not found: {path}")
    if path.is_dir():
        return _read_saved_dataset(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise ValueError(
        f"{path}: Flan data must be .jsonl, .parquet or a datasets.save_to_disk directory"
    )


def _group_rows(columns: dict[str, list]) -> tuple[dict[str, list[int]], int]:
    """Row indices per task (first occurrence of each distinct input), and rows dropped."""
    rows: dict[str, list[int]] = {}
    seen: dict[str, set[str]] = {}
    dropped = 0
    for i, (inputs, targets, task) in enumerate(
        zip(columns["inputs"], columns["targets"], columns["task"], strict=True)
    ):
        if not all(isinstance(v, str) for v in (inputs, targets, task)) or not (
            inputs.strip() and targets.strip() and task.strip()
        ):
            dropped += 1
            continue
        known = seen.setdefault(task, set())
        if inputs in known:
            dropped += 1
            continue
        known.add(inputs)
        rows.setdefault(task, []).append(i)
    return rows, dropped


def load_flan(
    path: str | Path,
    *,
    seed: int = 0,
    n_validation: int = 40,
    n_test: int = 80,
    max_per_cluster: int = 50_000,
) -> list[Task]:
    """Flan 2021 tasks from ``path``, mapped to the paper's clusters, with seeded splits.

    Per task, rows with an empty field and repeated inputs are dropped, the rest shuffled
    with ``seed``; validation and test take ``n_validation`` and ``n_test`` examples (at
    most a tenth and a fifth of the task), training the remainder. Training examples are
    capped at ``max_per_cluster`` per cluster, trimming the largest tasks first.
    """
    path = Path(path)
    columns = read_flan_columns(path)
    rows, dropped = _group_rows(columns)
    mapped: dict[str, Table1Dataset] = {}
    unknown, too_small = [], []
    for name in sorted(rows):
        dataset = match_flan_task(name)
        if dataset is None:
            unknown.append(name)
        elif len(rows[name]) < 3:
            too_small.append(name)
        else:
            mapped[name] = dataset
    if not mapped:
        raise ValueError(
            f"{path}: no Flan task maps to a cluster of the paper's Table 1 (found: "
            f"{', '.join(sorted(rows)[:20]) or 'no rows'}); expected names like anli_r1, "
            "glue_mrpc, wmt16_translate_deen"
        )
    if unknown:
        warnings.warn(
            f"{path}: skipped {len(unknown)} Flan tasks not in the paper's Table 1: "
            f"{', '.join(unknown)}",
            stacklevel=2,
        )
    if too_small:
        warnings.warn(
            f"{path}: skipped tasks with fewer than 3 usable examples: {', '.join(too_small)}",
            stacklevel=2,
        )
    if dropped:
        warnings.warn(
            f"{path}: dropped {dropped} rows with an empty field or repeated inputs",
            stacklevel=2,
        )
    order = {
        name: random.Random(f"mossa-flan:{seed}:{name}").sample(rows[name], len(rows[name]))
        for name in mapped
    }
    counts = {name: holdout_counts(len(order[name]), n_validation, n_test) for name in mapped}
    train_sizes: dict[str, int] = {}
    for cluster in CLUSTERS:
        names = [n for n in mapped if mapped[n].cluster == cluster]
        caps = water_fill([counts[n][0] for n in names], max_per_cluster)
        train_sizes.update(zip(names, caps, strict=True))

    def examples(indices: list[int]) -> tuple[Example, ...]:
        return tuple(
            Example({"inputs": columns["inputs"][i]}, columns["targets"][i]) for i in indices
        )

    tasks = []
    for name, dataset in mapped.items():
        _, n_val, n_tst = counts[name]
        shuffled = order[name]
        tasks.append(
            Task(
                name=name,
                cluster=dataset.cluster,
                seen=dataset.seen,
                templates=(PASS_THROUGH,),
                train=examples(shuffled[n_tst + n_val : n_tst + n_val + train_sizes[name]]),
                validation=examples(shuffled[n_tst : n_tst + n_val]),
                test=examples(shuffled[:n_tst]),
                metric=dataset.metric,
                source=f"flan:{dataset.name}",
            )
        )
    return tasks
