"""Load Flan data from local files into clustered mossa tasks.

Accepted: a JSONL file, a parquet file, or a directory written by
``datasets.Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, in one of three column
layouts (:data:`LAYOUTS`):

* ``collection``: the Flan Collection as it ships (Longpre et al. 2023; the JSONL
  sub-mixtures linked from google-research/FLAN ``flan/v2``): ``inputs``, ``targets``,
  ``task_source`` (``Flan2021``, ``T0``, ``NIv2``, ``CoT``, ``Dialog``), ``task_name``
  (a TFDS name such as ``anli/r1:0.1.0`` or ``glue/sst2:2.0.0``) and ``template_type``
  (``zs_opt``, ``zs_noopt``, ``fs_opt``, ``fs_noopt``);
* ``prompt_completion``: the same with ``prompt`` / ``completion`` for the text columns
  (``task_name`` required, ``task_source`` and ``template_type`` kept when present);
* ``mossa``: ``inputs``, ``targets`` and ``task`` (e.g. ``anli_r1_10templates``).

A ``split`` column, or the splits of a saved ``DatasetDict``, are kept as shipped (see
:func:`load_flan`). Task names are mapped to the paper's clusters with Table 1
(:mod:`mossa.tasks.clusters`) after dropping a ``:version`` suffix; tasks outside Table 1
are skipped with a warning. Collection task names become file-safe mossa names
(``anli/r1:0.1.0`` -> ``anli_r1``). Because Flan's rendered inputs already carry one of
its templates, a Flan task has one pass-through template, ``{inputs}``.

Rows are de-duplicated by underlying example, not by rendered string: Flan renders one
example under several templates, so rows of a task with the same target that share a
line of content (not template text, see :func:`example_groups`) are one example, kept
once, and never split across train and test.

Refused, naming the file, the line (JSONL) or row (counted from 0) and the field: a text
longer than :data:`~mossa.tasks.types.MAX_FIELD_CHARS`, a task name of the ``mossa``
layout that maps to Table 1 but cannot name files
(:func:`~mossa.tasks.types.task_name_problem`), and a file with none of the layouts
(naming the columns it has and the layouts accepted).
"""

from __future__ import annotations

import json
import random
import re
import warnings
from collections import Counter
from pathlib import Path

from mossa.tasks.clusters import CLUSTERS, Table1Dataset, match_flan_task
from mossa.tasks.splits import holdout_counts, water_fill
from mossa.tasks.types import Example, Task, Template, task_name_problem, text_size_problem

COLUMNS = ("inputs", "targets", "task")
"""The columns every layout provides, under these canonical names."""
OPTIONAL = ("task_source", "template_type", "split")
LAYOUTS: dict[str, dict[str, str]] = {
    "collection": {
        "inputs": "inputs", "targets": "targets", "task_source": "task_source",
        "task": "task_name", "template_type": "template_type",
    },
    "prompt_completion": {"inputs": "prompt", "targets": "completion", "task": "task_name"},
    "mossa": {"inputs": "inputs", "targets": "targets", "task": "task"},
}  # fmt: skip
"""Canonical column -> column of the file, per accepted layout (tried in this order)."""
PASS_THROUGH = Template("{inputs}", "{target}")
SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation",
               "dev": "validation", "test": "test"}  # fmt: skip


def _layouts_text() -> str:
    return "; ".join(f"{name} ({', '.join(cols.values())})" for name, cols in LAYOUTS.items())


def detect_layout(path: Path, present: list[str]) -> dict[str, str]:
    """Canonical column -> file column for the first layout whose columns ``present`` has.

    Optional columns (``task_source``, ``template_type``, ``split``) are mapped when there.
    Raises ValueError naming the columns found and the layouts accepted.
    """
    for name, columns in LAYOUTS.items():
        if all(c in present for c in columns.values()):
            mapping = dict(columns)
            mapping["layout"] = name
            for extra in OPTIONAL:
                if extra not in mapping and extra in present:
                    mapping[extra] = extra
            return mapping
    raise ValueError(
        f"{path}: columns {', '.join(present) or 'none'} match no Flan layout; accepted "
        f"layouts: {_layouts_text()}"
    )


def flan_task_name(name: str, layout: str) -> str:
    """The mossa task name of a Flan task: collection names lose ``:version`` and ``/``."""
    if layout == "mossa":
        return name
    base = re.sub(r":[\w.]+$", "", name.strip())
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_.-") or name


def _row_problem(values: tuple, names: set[str], layout: str) -> str | None:
    """Why the row ``(inputs, targets, task)`` is refused, or None.

    ``names`` collects the task names already checked, so each is checked once.
    """
    for column, value in zip(COLUMNS, values, strict=True):
        problem = text_size_problem(value) if isinstance(value, str) else None
        if problem:
            return f"field {column!r}: {problem}"
    task = values[-1]
    if layout == "mossa" and isinstance(task, str) and task not in names:
        names.add(task)
        problem = task_name_problem(task)
        if problem and match_flan_task(task) is not None:
            return f"field 'task': {problem}"
    return None


def _empty_columns(mapping: dict[str, str]) -> dict[str, list]:
    return {c: [] for c in (*COLUMNS, *OPTIONAL) if c in mapping}


def _check_rows(path: Path, columns: dict[str, list], layout: str, part: str = "") -> None:
    """Refuse the first row :func:`_row_problem` refuses, naming ``part`` and its row."""
    names: set[str] = set()
    for i, values in enumerate(zip(*(columns[c] for c in COLUMNS), strict=True)):
        problem = _row_problem(values, names, layout)
        if problem:
            raise ValueError(f"{path}: {part}row {i}: {problem}")


def _read_jsonl(path: Path) -> dict[str, list]:
    mapping: dict[str, str] | None = None
    columns: dict[str, list] = {}
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
            if mapping is None:
                mapping = detect_layout(Path(f"{path}:{number}"), list(row))
                columns = _empty_columns(mapping)
            for column in columns:
                if mapping[column] not in row:
                    raise ValueError(f"{path}:{number}: field {mapping[column]!r} is missing")
            problem = _row_problem(
                tuple(row[mapping[c]] for c in COLUMNS), names, mapping["layout"]
            )
            if problem:
                raise ValueError(f"{path}:{number}: {problem}")
            for column in columns:
                columns[column].append(row[mapping[column]])
    if mapping is None:
        return {c: [] for c in COLUMNS}
    return _canonical(columns, mapping["layout"])


def _canonical(columns: dict[str, list], layout: str) -> dict[str, list]:
    """Keep the shipped task names as ``flan_task`` and give ``task`` the mossa names."""
    columns["flan_task"] = list(columns["task"])
    columns["task"] = [
        flan_task_name(t, layout) if isinstance(t, str) else t for t in columns["task"]
    ]
    return columns


def _read_parquet(path: Path) -> dict[str, list]:
    import pyarrow.parquet as pq

    mapping = detect_layout(path, pq.read_schema(path).names)
    wanted = _empty_columns(mapping)
    table = pq.read_table(path, columns=[mapping[c] for c in wanted])
    columns = {c: table.column(mapping[c]).to_pylist() for c in wanted}
    _check_rows(path, columns, mapping["layout"])
    return _canonical(columns, mapping["layout"])


def _read_saved_dataset(path: Path) -> dict[str, list]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    is_dict = isinstance(loaded, datasets.DatasetDict)
    parts = loaded.items() if is_dict else [("", loaded)]
    columns: dict[str, list] = {}
    layout = "mossa"
    for split, part in parts:
        mapping = detect_layout(path, list(part.column_names))
        layout = mapping["layout"]
        wanted = _empty_columns(mapping)
        rows = {c: list(part[mapping[c]]) for c in wanted}
        _check_rows(path, rows, layout, f"split {split!r} " if split else "")
        if is_dict and "split" not in rows:
            rows["split"] = [split] * len(part)
        for c, values in rows.items():
            columns.setdefault(c, []).extend(values)
    return _canonical(columns, layout) if columns else {c: [] for c in COLUMNS}


def read_flan_columns(path: Path) -> dict[str, list]:
    """The canonical columns (``inputs``, ``targets``, ``task``, ``flan_task``, and
    ``task_source`` / ``template_type`` / ``split`` when shipped) of a Flan file."""
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


_LABEL = re.compile(r"^[A-Za-z][A-Za-z ]{0,24}:\s*")
MIN_CONTENT_CHARS = 12
"""Shorter lines (``OPTIONS:``, ``- yes``) never identify an example."""


def _lines(text: str) -> set[str]:
    """The normalised lines of a rendered prompt: no ``Label:`` prefix, quotes or case."""
    out = set()
    for line in text.splitlines():
        line = " ".join(_LABEL.sub("", line.strip()).strip("\"'“”").lower().split())
        if len(line) >= MIN_CONTENT_CHARS:
            out.add(line)
    return out


def example_groups(inputs: list[str], targets: list[str]) -> list[int]:
    """For the rows of one task, the index of the first row of the same underlying example.

    Flan renders one example under several templates: the template's wording changes, the
    example's text (premise, article, question) stays, mostly as lines of its own. A line
    is template text when it occurs with two different targets or in many rows; the other
    lines are content, and rows with the same target that share a content line are one
    example. A row without content lines is grouped with rows of identical text.
    """
    lines = [_lines(text) for text in inputs]
    seen_with: dict[str, set[str]] = {}
    counts: Counter = Counter()
    for row_lines, target in zip(lines, targets, strict=True):
        for line in row_lines:
            seen_with.setdefault(line, set()).add(target)
            counts[line] += 1
    frequent = max(20, len(inputs) // 50)
    parent = list(range(len(inputs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    for i, (row_lines, target) in enumerate(zip(lines, targets, strict=True)):
        content = [
            line for line in row_lines if len(seen_with[line]) == 1 and counts[line] <= frequent
        ]
        keys = [(target, line) for line in content] or [(target, "\x1f" + inputs[i].strip())]
        for key in keys:
            if key in owner:
                a, b = root(owner[key]), root(i)
                parent[max(a, b)] = min(a, b)
            else:
                owner[key] = i
    return [root(i) for i in range(len(inputs))]


def _group_rows(columns: dict[str, list]) -> tuple[dict[str, list[int]], int]:
    """Row indices per task (first row of each underlying example), and rows dropped."""
    valid: dict[str, list[int]] = {}
    dropped = 0
    for i, (inputs, targets, task) in enumerate(
        zip(columns["inputs"], columns["targets"], columns["task"], strict=True)
    ):
        if not all(isinstance(v, str) for v in (inputs, targets, task)) or not (
            inputs.strip() and targets.strip() and task.strip()
        ):
            dropped += 1
            continue
        valid.setdefault(task, []).append(i)
    rows: dict[str, list[int]] = {}
    for task, indices in valid.items():
        groups = example_groups(
            [columns["inputs"][i] for i in indices], [columns["targets"][i] for i in indices]
        )
        kept = [i for k, i in enumerate(indices) if groups[k] == k]
        dropped += len(indices) - len(kept)
        rows[task] = kept
    return rows, dropped


def load_flan(
    path: str | Path,
    *,
    seed: int = 0,
    n_validation: int = 40,
    n_test: int = 80,
    max_per_cluster: int = 50_000,
) -> list[Task]:
    """Flan tasks from ``path``, mapped to the paper's clusters, with seeded splits.

    Per task, rows with an empty field and repeats of an underlying example are dropped,
    the rest shuffled with ``seed``. Shipped splits are kept (:func:`_split_task`);
    otherwise validation and test take ``n_validation`` and ``n_test`` examples (at most a
    tenth and a fifth of the task), training the remainder. Training examples are capped
    at ``max_per_cluster`` per cluster, trimming the largest tasks first.
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
            f"{path}: dropped {dropped} rows with an empty field or a repeated example",
            stacklevel=2,
        )
    plans = {
        name: _split_task(columns, rows[name], random.Random(f"mossa-flan:{seed}:{name}"),
                          n_validation, n_test)
        for name in mapped
    }  # fmt: skip
    train_sizes: dict[str, int] = {}
    for cluster in CLUSTERS:
        names = [n for n in mapped if mapped[n].cluster == cluster]
        caps = water_fill([len(plans[n][0]) for n in names], max_per_cluster)
        train_sizes.update(zip(names, caps, strict=True))

    def examples(indices: list[int]) -> tuple[Example, ...]:
        return tuple(
            Example({"inputs": columns["inputs"][i]}, columns["targets"][i]) for i in indices
        )

    tasks = []
    for name, dataset in mapped.items():
        train, validation, test, how = plans[name]
        sources = (
            sorted({str(columns["task_source"][i]) for i in rows[name]})
            if ("task_source" in columns)
            else []
        )
        tasks.append(
            Task(
                name=name,
                cluster=dataset.cluster,
                seen=dataset.seen,
                templates=(PASS_THROUGH,),
                train=examples(train[: train_sizes[name]]),
                validation=examples(validation),
                test=examples(test),
                metric=dataset.metric,
                source=f"flan:{dataset.name}" + (f" ({', '.join(sources)})" if sources else ""),
                original_split=how,
                stands_in_for=dataset.name,
            )
        )
    return tasks


def _split_task(
    columns: dict[str, list], indices: list[int], rng: random.Random, n_validation: int, n_test: int
) -> tuple[list[int], list[int], list[int], str]:
    """``(train, validation, test, description)`` row indices of one task.

    Shipped splits are kept: the shipped test split is the test split (else the shipped
    validation split, as Flan evaluates on validation data), the shipped validation split
    the validation split (else a hold-out of the training rows). Without shipped splits,
    a seeded hold-out as for any data without splits (:func:`holdout_counts`).
    """
    shipped: dict[str, list[int]] = {}
    if "split" in columns:
        for i in indices:
            name = SPLIT_NAMES.get(str(columns["split"][i]).strip().lower(), "train")
            shipped.setdefault(name, []).append(i)
    if "test" in shipped or "validation" in shipped:
        pools = {k: rng.sample(v, len(v)) for k, v in shipped.items()}
        train = pools.get("train", [])
        if "test" in pools:
            test, how = pools["test"][:n_test], "shipped test"
            if "validation" in pools:
                validation, how = pools["validation"][:n_validation], how + ", validation"
            else:
                n_val = min(n_validation, max(1, len(train) // 10))
                validation, train = train[:n_val], train[n_val:]
        else:
            test, how = pools["validation"][:n_test], "shipped validation as test"
            n_val = min(n_validation, max(1, len(train) // 10))
            validation, train = train[:n_val], train[n_val:]
        return train, validation, test, how + " and train splits"
    order = rng.sample(indices, len(indices))
    _, n_val, n_tst = holdout_counts(len(order), n_validation, n_test)
    return (order[n_tst + n_val :], order[n_tst : n_tst + n_val], order[:n_tst],
            "single split; mossa holds out validation and test")  # fmt: skip
