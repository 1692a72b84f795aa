"""Flan as it ships: the collection layout and its prompt/completion variant, shipped splits,
de-duplication by underlying example, and Flan 2021 task names mapped to clusters."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mossa.cli import app
from mossa.tasks import load_suite, match_flan_task
from mossa.tasks.flan import flan_task_name

FIXTURES = Path(__file__).parent / "fixtures" / "flan"
EXPECTED = {  # mossa name -> (cluster, underlying examples in the fixture)
    "super_glue_rte": ("nli", 5),
    "anli_r1": ("nli", 4),
    "glue_sst2": ("sentiment", 4),
    "cnn_dailymail": ("summarization", 3),
}


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


def load(spec: str):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = load_suite(spec, n_validation=1, n_test=1)
    return tasks, [str(w.message) for w in caught]


def example_ids(name: str) -> dict[str, int]:
    """Rendered prompt -> underlying example: the fixture renders each example twice, in a row."""
    text = "inputs" if name == "collection.jsonl" else "prompt"
    return {row[text]: i // 2 for i, row in enumerate(rows(name))}


def check(tasks, messages, name="collection.jsonl"):
    assert {t.name: (t.cluster, len(t.train + t.validation + t.test)) for t in tasks} == EXPECTED
    assert any("adversarial_qa" in m and "not in the paper's Table 1" in m for m in messages)
    ids = example_ids(name)
    for task in tasks:
        # each underlying example once: its two renderings are one example
        kept = [ids[ex.inputs["inputs"]] for ex in task.train + task.validation + task.test]
        assert len(kept) == len(set(kept)) == EXPECTED[task.name][1], task.name
        assert task.source.startswith("flan:") and "Flan2021" in task.source


@pytest.mark.parametrize("name", ["collection.jsonl", "prompt_completion.jsonl"])
def test_both_collection_layouts_load_and_dedupe_by_example(name):
    tasks, messages = load(f"flan:{FIXTURES / name}")
    check(tasks, messages, name)


def test_parquet_and_saved_dataset_of_the_collection_layout(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = rows("collection.jsonl")
    pq.write_table(pa.Table.from_pylist(data), tmp_path / "flan.parquet")
    check(*load(f"flan:{tmp_path / 'flan.parquet'}"))
    datasets.Dataset.from_list(data).save_to_disk(str(tmp_path / "saved"))
    check(*load(f"flan:{tmp_path / 'saved'}"))


def test_shipped_splits_are_kept_and_never_share_an_example(tmp_path):
    import datasets

    data = rows("collection.jsonl")
    rte = [r for r in data if r["task_name"].startswith("super_glue/rte")]
    # the last two RTE examples (both templates each) are Flan's validation split
    parts = {"train": rte[:6], "validation": rte[6:]}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in parts.items()}).save_to_disk(
        str(tmp_path / "dict")
    )
    (task,), _ = load(f"flan:{tmp_path / 'dict'}")
    ids = example_ids("collection.jsonl")
    validation_ids = {ids[r["inputs"]] for r in parts["validation"]}
    assert {ids[ex.inputs["inputs"]] for ex in task.test} <= validation_ids
    assert not {ids[ex.inputs["inputs"]] for ex in task.train + task.validation} & validation_ids
    assert task.original_split.startswith("shipped validation as test")


@pytest.mark.parametrize(
    ("shipped", "mossa_name", "cluster"),
    [
        ("anli/r1:0.1.0", "anli_r1", "nli"), ("super_glue/rte:1.0.2", "super_glue_rte", "nli"),
        ("glue/sst2:2.0.0", "glue_sst2", "sentiment"),
        ("cnn_dailymail:3.4.0", "cnn_dailymail", "summarization"),
        ("wmt16_translate/de-en:1.0.0", "wmt16_translate_de-en", "translation"),
        ("bool_q:1.0.0", "bool_q", "reading_comprehension"),
        ("trivia_qa/rc:1.1.0", "trivia_qa_rc", "closed_book_qa"),
        ("trec:1.0.0", "trec", "unseen"), ("glue/cola:2.0.0", "glue_cola", "unseen"),
        ("e2e_nlg:1.0.0", "e2e_nlg", "struct_to_text"),
    ],
)  # fmt: skip
def test_flan_2021_names_map_to_clusters(shipped, mossa_name, cluster):
    assert flan_task_name(shipped, "collection") == mossa_name
    assert match_flan_task(mossa_name).cluster == cluster


def test_cli_lists_a_collection_file():
    result = CliRunner().invoke(
        app, ["tasks", "--flan", str(FIXTURES / "collection.jsonl"), "--json"]
    )
    assert result.exit_code == 0, result.output
    listed = {t["name"]: t for t in json.loads(result.stdout)["tasks"]}
    assert {n: t["cluster"] for n, t in listed.items()} == {n: c for n, (c, _) in EXPECTED.items()}
    assert listed["glue_sst2"]["stands_in_for"] == "SST-2"


def test_neither_layout_names_columns_found_and_accepted(tmp_path):
    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a", "task_name": "rte"}) + "\n")
    result = CliRunner().invoke(app, ["tasks", "--flan", str(path)])
    assert result.exit_code != 0
    message = str(result.exception) if result.exception else result.output
    assert re.search(r"columns question, answer, task_name match no Flan layout", message)
    assert "collection (inputs, targets, task_source, task_name, template_type)" in message
    assert "prompt_completion (prompt, completion, task_name)" in message
