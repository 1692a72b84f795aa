"""User task files: the documented examples load; every error names file, line and field."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mossa.tasks import load_suite, userfile
from mossa.tasks.types import MAX_FIELD_CHARS, TASK_NAME_RULE

ROOT = Path(__file__).resolve().parents[1]
MOSSA = Path(sys.executable).parent / "mossa"
TASK_LINE = '{"task": "t", "cluster": "nli", "templates": ["P: {premise} H: {hypothesis}"]}'
GOOD = '{"task": "t", "inputs": {"premise": "a", "hypothesis": "b"}, "target": "yes"}'


def doc_example(kind: str) -> str:
    text = (ROOT / "docs" / "tasks.md").read_text(encoding="utf-8")
    return re.search(rf"```{kind}\n(.*?)```", text, re.S).group(1)


def load(path: Path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = load_suite(str(path), **kwargs)
    return tasks, [str(w.message) for w in caught]


@pytest.mark.parametrize("kind", ["jsonl", "yaml"])
def test_documented_examples_load(tmp_path, kind):
    path = tmp_path / f"tasks.{kind}"
    path.write_text(doc_example(kind), encoding="utf-8")
    tasks, messages = load(path)
    capital, echo = tasks
    assert (capital.name, capital.cluster, capital.seen, capital.metric) == (
        "capital_check", "closed_book_qa", True, "accuracy",
    )  # fmt: skip
    assert (len(capital.train), len(capital.validation), len(capital.test)) == (2, 1, 1)
    assert len(capital.templates) == 3
    assert (echo.cluster, echo.seen) == ("unseen", False)
    assert [e.inputs["input"] for e in echo.train + echo.validation + echo.test] == [
        "hello there", "good night", "see you",
    ]  # fmt: skip
    every = capital.train + capital.validation + capital.test
    assert sorted(e.inputs["country"] for e in every) == ["France", "Japan", "Peru", "Spain"]
    tokyo = next(e for e in every if e.inputs["city"] == "Tokyo")
    assert capital.render(tokyo, 1) == ("Country: Japan\nCity: Tokyo\nCapital? (yes/no)", "yes")
    assert capital.render(tokyo, 2) == ("Q: capital of Japan = Tokyo?\nA:", "yes")
    assert sum("template(s); the paper's setup uses 10" in m for m in messages) == 2


def test_both_formats_give_the_same_tasks(tmp_path):
    (tmp_path / "a.jsonl").write_text(doc_example("jsonl"), encoding="utf-8")
    (tmp_path / "a.yaml").write_text(doc_example("yaml"), encoding="utf-8")
    jsonl, _ = load(tmp_path / "a.jsonl", seed=3)
    yaml_, _ = load(tmp_path / "a.yaml", seed=3)
    strip = lambda ts: [(t.name, t.templates, t.train, t.validation, t.test) for t in ts]  # noqa: E731
    assert strip(jsonl) == strip(yaml_)


# (file name, content, expected "line: field ...: problem" part of the message)
JSONL_ERRORS = [
    (
        "invalid_json.jsonl",
        f'{TASK_LINE}\n{GOOD}\n{{"task": "t", "inputs": {{"premise": "c"}} "target": "no"}}\n',
        r":3: field 'premise': invalid JSON after this field: Expecting ',' delimiter",
    ),
    (
        "missing_field.jsonl",
        f'{TASK_LINE}\n{GOOD}\n{{"task": "t", "inputs": {{"premise": "a", "hypothesis": "c"}}}}\n',
        r":3: field 'target': missing",
    ),
    (
        "empty_target.jsonl",
        f"{TASK_LINE}\n" + GOOD.replace('"yes"', '" "') + "\n",
        r":2: field 'target': empty target",
    ),
    (
        "unknown_cluster.jsonl",
        '{"task": "t", "cluster": "qa", "templates": ["{x}"]}\n',
        r":1: field 'cluster': unknown cluster 'qa'; valid clusters: nli, commonsense,",
    ),
    (
        "duplicate_task.jsonl",
        f"{TASK_LINE}\n{GOOD}\n{TASK_LINE}\n",
        r":3: field 'task': duplicate task 't' \(first defined on line 1\)",
    ),
    (
        "template_field.jsonl",
        '{"task": "t", "cluster": "nli", "templates": ["{premise}", "P: {premis}"]}\n'
        '{"task": "t", "inputs": {"premise": "a"}, "target": "x"}\n',
        r":1: field 'templates\[1\]': uses \{premis\}, which no example of task 't' has",
    ),
    (
        "target_in_prompt.jsonl",
        '{"task": "t", "cluster": "nli", "templates": ["{x} = {target}"]}\n',
        r":1: field 'templates\[0\]': template prompt uses \{target\}",
    ),
    (
        "no_templates.jsonl",
        '{"task": "t", "cluster": "nli", "templates": []}\n',
        r":1: field 'templates': needs at least 1 template",
    ),
    (
        "undefined_task.jsonl",
        f"{TASK_LINE}\n{GOOD}\n" + '{"task": "u", "input": "x", "target": "y"}\n',
        r":3: field 'task': no task line defines 'u'",
    ),
    (
        "partial_split.jsonl",
        f"{TASK_LINE}\n{GOOD}\n"
        '{"task": "t", "inputs": {"premise": "a", "hypothesis": "c"}, "target": "no", '
        '"split": "test"}\n',
        r":2: field 'split': missing; other examples of task 't' give one",
    ),
    (
        "repeated_inputs.jsonl",
        f"{TASK_LINE}\n{GOOD}\n{GOOD}\n{GOOD.replace('b', 'c')}\n",
        r":3: field 'inputs': same inputs as line 2",
    ),
    (
        "unknown_field.jsonl",
        f"{TASK_LINE}\n" + GOOD.replace('"target"', '"traget"') + "\n",
        r":2: field 'traget': unknown field",
    ),
    (
        "bad_name.jsonl",
        TASK_LINE.replace('"t"', '"t\\n"') + "\n",
        r":1: field 'task': task name 't\\n': expected 1 to 100 ASCII letters",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), JSONL_ERRORS, ids=[e[0] for e in JSONL_ERRORS]
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(path)) + expected):
        load_suite(str(path))


def test_invalid_utf8_names_line_and_field(tmp_path):
    path = tmp_path / "latin1.jsonl"
    bad = '{"task": "t", "inputs": {"premise": "a", "hypothesis": "b"}, "target": "caf\xe9"}\n'
    path.write_bytes((TASK_LINE + "\n").encode() + bad.encode("latin-1"))
    with pytest.raises(
        ValueError, match=re.escape(str(path)) + r":2: field 'target': invalid UTF-8 \(byte 0xe9"
    ):
        load_suite(str(path))


YAML_HEAD = 'tasks:\n  - name: a\n    cluster: nli\n    templates: ["{input}"]\n    examples:\n'
YAML_ERRORS = [
    (
        "bool_target.yaml",
        YAML_HEAD + '      - {input: x, target: "y"}\n      - input: z\n        target: yes\n',
        r":8: field 'target' at tasks\[0\]\.examples\[1\]\.target: expected a string, got "
        r"boolean true \(YAML reads unquoted",
    ),
    (
        "duplicate.yaml",
        YAML_HEAD
        + '      - {input: x, target: "y"}\n'
        + YAML_HEAD[7:]
        + '      - {input: x, target: "y"}\n',
        r":7: field 'name' at tasks\[1\]\.name: duplicate task name 'a' "
        r"\(first defined on line 2\)",
    ),
    (
        "empty_target.yaml",
        YAML_HEAD + '      - {input: x, target: "y"}\n      - {input: z, target: ""}\n',
        r":7: field 'target' at tasks\[0\]\.examples\[1\]\.target: empty target",
    ),
    (
        "unknown_cluster.yaml",
        YAML_HEAD.replace("nli", "qa") + '      - {input: x, target: "y"}\n',
        r":3: field 'cluster' at tasks\[0\]\.cluster: unknown cluster 'qa'; valid clusters",
    ),
    (
        "missing.yaml",
        YAML_HEAD + "      - {input: x}\n",
        r":6: field 'target' at tasks\[0\]\.examples\[0\]\.target: missing",
    ),
    (
        "invalid.yaml",
        YAML_HEAD[:-1] + "\n      - {input: x, target: [\n",
        r":7: field 'target': invalid YAML",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), YAML_ERRORS, ids=[e[0] for e in YAML_ERRORS]
)
def test_yaml_errors_name_file_line_path_and_field(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(str(path)) + expected):
        load_suite(str(path))


CLI_CASES = {
    "bad_name.jsonl": ("field 'task'", 1),
    "invalid_json.jsonl": ("field 'premise'", 3),
    "missing_field.jsonl": ("field 'target'", 3),
    "empty_target.jsonl": ("field 'target'", 2),
    "unknown_cluster.jsonl": ("field 'cluster'", 1),
    "duplicate_task.jsonl": ("field 'task'", 3),
    "latin1.jsonl": ("field 'target'", 2),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_refuses_bad_files_with_exit_2_and_writes_nothing(tmp_path, name):
    contents = {n: c for n, c, _ in JSONL_ERRORS}
    path = tmp_path / name
    if name == "latin1.jsonl":
        bad = '{"task": "t", "inputs": {"premise": "a", "hypothesis": "b"}, "target": "\xe9"}\n'
        path.write_bytes((TASK_LINE + "\n").encode() + bad.encode("latin-1"))
    else:
        path.write_text(contents[name], encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [str(MOSSA), "tasks", "--suite", str(path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    field, line = CLI_CASES[name]
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}:{line}: {field}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


BAD_NAMES = [
    "t\n",
    " t",
    "t ",
    "",
    "a/b",
    "a\\b",
    ".hidden",
    "..",
    "-t",
    "a\tb",
    "caf\u00e9",
    "x" * 101,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_task_names_must_be_safe_file_names(tmp_path, name):
    shown = repr(name) if len(name) < 70 else repr(name)[:60] + "..."  # long names: cut
    expected = re.escape(f"task name {shown}: expected {TASK_NAME_RULE}")
    path = tmp_path / "names.jsonl"
    path.write_text(TASK_LINE.replace('"t"', json.dumps(name)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}:1: field 'task': ") + expected):
        load_suite(str(path))
    path = tmp_path / "names.yaml"
    path.write_text(YAML_HEAD.replace("name: a", f"name: {json.dumps(name)}"), encoding="utf-8")
    with pytest.raises(
        ValueError, match=re.escape(f"{path}:2: field 'name' at tasks[0].name: ") + expected
    ):
        load_suite(str(path))


def test_longest_allowed_task_name_loads(tmp_path):
    name = "x" + "_.-9" * 24 + "abc"
    assert len(name) == 100
    path = tmp_path / "long.jsonl"
    path.write_text(doc_example("jsonl").replace("capital_check", name), encoding="utf-8")
    assert load(path)[0][0].name == name


BIG = "x" * (MAX_FIELD_CHARS + 1)  # about 1 MB
TOO_LONG = re.escape(f"{MAX_FIELD_CHARS + 1:,} characters, over the limit of {MAX_FIELD_CHARS:,}")
TEMPLATE = '"P: {premise} H: {hypothesis}"'
FIELD_CASES = [  # (field, line of the field, lines of a file with BIG in that field)
    ("target", 2, [TASK_LINE, GOOD.replace('"yes"', json.dumps(BIG))]),
    ("inputs.premise", 2, [TASK_LINE, GOOD.replace('"a"', json.dumps(BIG))]),
    ("input", 2, [TASK_LINE, f'{{"task": "t", "input": "{BIG}", "target": "y"}}']),
    ("templates[0]", 1, [TASK_LINE.replace(TEMPLATE, json.dumps(BIG)), GOOD]),
    ("templates[0].prompt", 1, [TASK_LINE.replace(TEMPLATE, f'{{"prompt": "{BIG}"}}'), GOOD]),
]


@pytest.mark.parametrize(("field", "line", "lines"), FIELD_CASES, ids=[c[0] for c in FIELD_CASES])
def test_jsonl_text_fields_over_the_limit_are_refused(tmp_path, field, line, lines):
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}:{line}: field '{field}': ") + TOO_LONG):
        load_suite(str(path))


def test_yaml_text_field_over_the_limit_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(YAML_HEAD + f"      - {{input: {BIG}, target: y}}\n", encoding="utf-8")
    where = re.escape(f"{path}:6: field 'input' at tasks[0].examples[0].input: ")
    with pytest.raises(ValueError, match=where + TOO_LONG):
        load_suite(str(path))


def test_text_field_at_the_limit_loads(tmp_path):
    path = tmp_path / "limit.jsonl"
    at_limit = "y" * MAX_FIELD_CHARS
    path.write_text(doc_example("jsonl").replace("see you", at_limit), encoding="utf-8")
    echo = load(path)[0][1]
    assert echo.test[0].target == at_limit


def test_task_file_over_the_byte_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "large.jsonl"
    path.write_bytes(b"not json at all\n" * 10)  # 160 bytes: an error only if it is read
    monkeypatch.setattr(userfile, "MAX_TASK_FILE_BYTES", 159)
    with pytest.raises(ValueError, match=re.escape(f"{path}: 160 bytes, over the limit of 159 ")):
        load_suite(str(path))
    monkeypatch.setattr(userfile, "MAX_TASK_FILE_BYTES", 160)
    with pytest.raises(ValueError, match=r":1: field '\(start of line\)': invalid JSON"):
        load_suite(str(path))
