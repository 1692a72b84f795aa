"""User task files: JSONL or YAML definitions of people's own tasks (format: docs/tasks.md).

Every refusal is one ValueError line naming the file, the line, and the field (for YAML
also its path, e.g. ``tasks[1].examples[0].target``), what arrived and what was
expected; nothing is loaded from a file with any error.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mossa.tasks.clusters import CLUSTERS, UNSEEN_CLUSTER, check_cluster
from mossa.tasks.splits import holdout_split
from mossa.tasks.types import (
    METRICS,
    SPLITS,
    TARGET_FIELD,
    Example,
    Task,
    Template,
    task_name_problem,
    text_size_problem,
)

RECOMMENDED_TEMPLATES = 10
TASK_KEYS = ("cluster", "seen", "metric", "templates")
EXAMPLE_KEYS = ("inputs", "input", "target", "split")
MAX_TASK_FILE_BYTES = 100_000_000
"""Largest task file read, in bytes; a larger one is refused before it is read."""
_JSON_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


@dataclass(frozen=True)
class Where:
    """A place in a task file: the file, a line, the path of the enclosing node (if nested).

    For YAML, ``lines`` maps every node path (``tasks[0].examples[2].target``) to its line.
    """

    file: Path
    line: int
    path: str = ""
    lines: dict[str, int] | None = None

    def _full(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, problem: str) -> ValueError:
        """A ValueError naming the file, the line and field ``name`` (below this place)."""
        full = self._full(name)
        if self.lines is None:
            return ValueError(f"{self.file}:{self.line}: field '{full}': {problem}")
        line = self.lines.get(full, self.line)
        return ValueError(f"{self.file}:{line}: field '{name}' at {full}: {problem}")

    def child(self, name: str) -> Where:
        """The place of a nested node."""
        full = self._full(name)
        line = self.lines.get(full, self.line) if self.lines is not None else self.line
        return Where(self.file, line, full, self.lines)


@dataclass
class _Draft:
    """A task as read from the file, before its examples are split and checked."""

    name: str
    cluster: str
    seen: bool
    metric: str
    templates: tuple[Template, ...]
    where: Where
    examples: list[tuple[Example, str | None, Where]] = field(default_factory=list)


def _kind(value: object) -> str:
    """How a value that arrived is named in messages."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def _string(record: dict, key: str, where: Where, *, required: bool = True) -> str | None:
    if key not in record:
        if required:
            raise where.error(key, "missing")
        return None
    value = record[key]
    if not isinstance(value, str):
        hint = " (YAML reads unquoted yes/no/true/false/numbers as non-strings: quote it)"
        raise where.error(key, f"expected a string, got {_kind(value)}{hint}")
    return _text(value, key, where)


def _text(value: str, name: str, where: Where) -> str:
    """``value``, unless it is longer than a text field may be."""
    problem = text_size_problem(value)
    if problem:
        raise where.error(name, problem)
    return value


def _check_keys(record: dict, allowed: tuple[str, ...], where: Where) -> None:
    for key in record:
        if key not in allowed:
            raise where.error(str(key), f"unknown field; expected one of {', '.join(allowed)}")


def _task_name(record: dict, key: str, where: Where) -> str:
    name = _string(record, key, where)
    problem = task_name_problem(name)
    if problem:
        raise where.error(key, problem)
    return name


def _templates(value: object, where: Where) -> tuple[Template, ...]:
    if not isinstance(value, list):
        raise where.error("templates", f"expected a list of templates, got {_kind(value)}")
    if not value:
        raise where.error("templates", "needs at least 1 template, got an empty list")
    templates = []
    for i, item in enumerate(value):
        name = f"templates[{i}]"
        if isinstance(item, dict):
            _check_keys(item, ("prompt", "target"), where.child(name))
            prompt = _string(item, "prompt", where.child(name))
            target = _string(item, "target", where.child(name), required=False) or "{target}"
        elif isinstance(item, str):
            prompt, target = _text(item, name, where), "{target}"
        else:
            raise where.error(name, f"expected a string or {{prompt, target}}, got {_kind(item)}")
        try:
            templates.append(Template(prompt, target))
        except ValueError as exc:
            raise where.error(name, str(exc)) from None
    return tuple(templates)


def _task(record: dict, name_key: str, where: Where) -> _Draft:
    name = _task_name(record, name_key, where)
    cluster = _string(record, "cluster", where)
    try:
        check_cluster(cluster, f"task {name!r}")
    except ValueError:
        raise where.error(
            "cluster", f"unknown cluster {cluster!r}; valid clusters: {', '.join(CLUSTERS)}"
        ) from None
    seen = record.get("seen", cluster != UNSEEN_CLUSTER)
    if not isinstance(seen, bool):
        raise where.error("seen", f"expected true or false, got {_kind(seen)}")
    if seen and cluster == UNSEEN_CLUSTER:
        raise where.error("seen", f"tasks of the {UNSEEN_CLUSTER!r} cluster cannot be seen")
    metric = record.get("metric", "accuracy")
    if metric not in METRICS:
        raise where.error(
            "metric", f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}"
        )
    if "templates" not in record:
        raise where.error("templates", "missing; a task needs at least 1 template")
    templates = _templates(record["templates"], where)
    return _Draft(name, cluster, seen, metric, templates, where)


def _example(record: dict, where: Where) -> tuple[Example, str | None]:
    if "inputs" in record and "input" in record:
        raise where.error(
            "input", "give either 'inputs' (an object) or 'input' (a string), not both"
        )
    if "input" in record:
        inputs = {"input": _string(record, "input", where)}
    elif "inputs" in record:
        raw = record["inputs"]
        if not isinstance(raw, dict) or not raw:
            raise where.error("inputs", f"expected a non-empty object of strings, got {_kind(raw)}")
        inputs = {}
        for key, value in raw.items():
            if not isinstance(key, str) or not key.isidentifier() or key == TARGET_FIELD:
                raise where.error(
                    f"inputs.{key}", "input names must be identifiers other than 'target'"
                )
            if not isinstance(value, str):
                raise where.error(f"inputs.{key}", f"expected a string, got {_kind(value)}")
            inputs[key] = _text(value, f"inputs.{key}", where)
    else:
        raise where.error("inputs", "missing; give 'inputs' (an object of strings) or 'input'")
    target = _string(record, "target", where)
    if not target.strip():
        raise where.error("target", "empty target")
    split = record.get("split")
    if split is not None and split not in SPLITS:
        raise where.error("split", f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return Example(inputs, target), split


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 text of the file, or an error naming the line (and JSON/YAML key) of a bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        before = data[line_start : exc.start].decode("utf-8", errors="replace")
        keys = _JSON_KEY.findall(before) or re.findall(r"([A-Za-z_]\w*)\s*:", before)
        name = keys[-1] if keys else "(start of line)"
        column = exc.start - line_start + 1
        raise ValueError(
            f"{path}:{line}: field '{name}': invalid UTF-8 (byte 0x{data[exc.start]:02x} at "
            f"column {column}); save the file as UTF-8"
        ) from None


def _read_jsonl(path: Path, text: str) -> list[_Draft]:
    tasks: dict[str, _Draft] = {}
    examples: list[tuple[dict, Where]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = Where(path, number)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            keys = _JSON_KEY.findall(line[: exc.pos])
            name = keys[-1] if keys else "(start of line)"
            raise where.error(
                name, f"invalid JSON after this field: {exc.msg} at column {exc.colno}"
            ) from None
        if not isinstance(record, dict):
            raise where.error("(line)", f"expected a JSON object, got {_kind(record)}")
        if "templates" in record:
            _check_keys(record, ("task", *TASK_KEYS), where)
            draft = _task(record, "task", where)
            if draft.name in tasks:
                first = tasks[draft.name].where.line
                raise where.error(
                    "task", f"duplicate task {draft.name!r} (first defined on line {first})"
                )
            tasks[draft.name] = draft
        else:
            _check_keys(record, ("task", "cluster", "seen", "metric", *EXAMPLE_KEYS), where)
            examples.append((record, where))
    for record, where in examples:
        name = _task_name(record, "task", where)
        if name not in tasks:
            raise where.error(
                "task",
                f"no task line defines {name!r} (task lines have 'task', 'cluster', 'templates')",
            )
        draft = tasks[name]
        for key in ("cluster", "seen", "metric"):
            if key in record and record[key] != getattr(draft, key):
                raise where.error(
                    key,
                    f"{record[key]!r} conflicts with {getattr(draft, key)!r} on the task line "
                    f"(line {draft.where.line})",
                )
        example, split = _example(record, where)
        draft.examples.append((example, split, where))
    return list(tasks.values())


def _node_lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            out[child] = key.start_mark.line + 1
            _node_lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _node_lines(item, f"{path}[{i}]", out)


def _read_yaml(path: Path, text: str) -> list[_Draft]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        keys = re.findall(r"([A-Za-z_]\w*)\s*:", "\n".join(text.split("\n")[:line]))
        name = keys[-1] if keys else "(start of file)"
        raise ValueError(
            f"{path}:{line}: field '{name}': invalid YAML at or after this field: {problem}"
        ) from None
    lines: dict[str, int] = {}
    if root is not None:
        _node_lines(root, "", lines)
    top = Where(path, 1, "", lines)
    if not isinstance(data, dict) or "tasks" not in data:
        raise top.error("tasks", "missing; a task file is a mapping with a 'tasks' list")
    _check_keys(data, ("tasks",), top)
    if not isinstance(data["tasks"], list) or not data["tasks"]:
        raise top.error("tasks", f"expected a non-empty list of tasks, got {_kind(data['tasks'])}")
    drafts: dict[str, _Draft] = {}
    for i, record in enumerate(data["tasks"]):
        where = top.child(f"tasks[{i}]")
        if not isinstance(record, dict):
            raise top.error(f"tasks[{i}]", f"expected a task mapping, got {_kind(record)}")
        _check_keys(record, ("name", *TASK_KEYS, "examples"), where)
        draft = _task(record, "name", where)
        if draft.name in drafts:
            first = drafts[draft.name].where.line
            raise where.error(
                "name", f"duplicate task name {draft.name!r} (first defined on line {first})"
            )
        examples = record.get("examples")
        if not isinstance(examples, list) or not examples:
            raise where.error(
                "examples", f"expected a non-empty list of examples, got {_kind(examples)}"
            )
        for j, item in enumerate(examples):
            place = where.child(f"examples[{j}]")
            if not isinstance(item, dict):
                raise where.error(
                    f"examples[{j}]", f"expected an example mapping, got {_kind(item)}"
                )
            _check_keys(item, EXAMPLE_KEYS, place)
            example, split = _example(item, place)
            draft.examples.append((example, split, place))
        drafts[draft.name] = draft
    return list(drafts.values())


def _check_templates(draft: _Draft) -> None:
    """Every template field must be an input of every example."""
    for i, template in enumerate(draft.templates):
        for name in template.input_fields:
            lacking = [w for ex, _, w in draft.examples if name not in ex.inputs]
            if not lacking:
                continue
            if len(lacking) == len(draft.examples):
                raise draft.where.error(
                    f"templates[{i}]",
                    f"uses {{{name}}}, which no example of task {draft.name!r} has in its inputs",
                )
            example = next(ex for ex, _, w in draft.examples if w is lacking[0])
            raise lacking[0].error(
                "inputs",
                f"template {i} of task {draft.name!r} uses {{{name}}}, which these inputs lack "
                f"(they have: {', '.join(example.inputs)})",
            )


def _splits(draft: _Draft, seed: int, n_validation: int, n_test: int) -> dict[str, list[Example]]:
    given = [split for _, split, _ in draft.examples]
    first_by_inputs: dict[tuple, tuple[str | None, Where]] = {}
    for example, split, where in draft.examples:
        key = tuple(sorted(example.inputs.items()))
        if key in first_by_inputs:
            other_split, other = first_by_inputs[key]
            if other_split != split or split is None:
                raise where.error(
                    "inputs",
                    f"same inputs as line {other.line} of task {draft.name!r}; a repeat could "
                    "put one example in both training and held-out splits",
                )
        else:
            first_by_inputs[key] = (split, where)
    if all(s is None for s in given):
        if len(draft.examples) < 3:
            raise draft.where.error(
                "examples", f"task {draft.name!r} has {len(draft.examples)} examples; needs >= 3"
            )
        items = [ex for ex, _, _ in draft.examples]
        train, validation, test = holdout_split(
            items, f"mossa-user:{seed}:{draft.name}", n_validation, n_test
        )
        return {"train": train, "validation": validation, "test": test}
    if any(s is None for s in given):
        lacking = next(w for _, s, w in draft.examples if s is None)
        raise lacking.error(
            "split", f"missing; other examples of task {draft.name!r} give one (all or none)"
        )
    splits = {s: [ex for ex, split, _ in draft.examples if split == s] for s in SPLITS}
    for name, examples in splits.items():
        if not examples:
            raise draft.where.error(
                "split", f"task {draft.name!r} has no {name!r} examples; every split needs one"
            )
    return splits


def load_user_tasks(
    path: str | Path, *, seed: int = 0, n_validation: int = 40, n_test: int = 80
) -> list[Task]:
    """Tasks from a ``.jsonl`` or ``.yaml``/``.yml`` task file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task file not found: {path}")
    size = path.stat().st_size
    if size > MAX_TASK_FILE_BYTES:
        raise ValueError(
            f"{path}: {size:,} bytes, over the limit of {MAX_TASK_FILE_BYTES:,} for a task file"
        )
    text = _decode(path, path.read_bytes())
    if path.suffix.lower() == ".jsonl":
        drafts = _read_jsonl(path, text)
    else:
        drafts = _read_yaml(path, text)
    if not drafts:
        raise ValueError(f"{path}:1: field 'task': the file defines no tasks")
    tasks = []
    for draft in drafts:
        if not draft.examples:
            raise draft.where.error("task", f"task {draft.name!r} has no examples")
        _check_templates(draft)
        splits = _splits(draft, seed, n_validation, n_test)
        if len(draft.templates) < RECOMMENDED_TEMPLATES:
            warnings.warn(
                f"{path}: task {draft.name!r} has {len(draft.templates)} template(s); the "
                f"paper's setup uses {RECOMMENDED_TEMPLATES} per task",
                stacklevel=2,
            )
        tasks.append(
            Task(
                name=draft.name,
                cluster=draft.cluster,
                seen=draft.seen,
                templates=draft.templates,
                train=tuple(splits["train"]),
                validation=tuple(splits["validation"]),
                test=tuple(splits["test"]),
                metric=draft.metric,
                source=f"file:{path.name}",
            )
        )
    return tasks
