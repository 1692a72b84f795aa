"""Flan 2021 loader on small Flan-format fixtures in all three formats, and Table 1 data."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from mossa.tasks import CLUSTERS, FLAN_TASK_CLUSTERS, TABLE1, load_suite, match_flan_task
from mossa.tasks.splits import holdout_counts
from mossa.tasks.types import MAX_FIELD_CHARS, TASK_NAME_RULE

# (Flan task, number of rows): Table 1 tasks of four clusters plus one outside Table 1.
FIXTURE_TASKS = {
    "anli_r1_10templates": 30,
    "glue_mrpc": 20,
    "wmt16_translate_deen": 25,
    "cola": 12,
    "snli": 40,
    "fix_punct": 5,
}
EXPECTED = {  # name -> (cluster, seen, metric)
    "anli_r1_10templates": ("nli", True, "accuracy"),
    "glue_mrpc": ("paraphrase", True, "accuracy"),
    "wmt16_translate_deen": ("translation", True, "bleu"),
    "cola": ("unseen", False, "accuracy"),
    "snli": ("nli", True, "accuracy"),
}


def fixture_rows() -> list[dict]:
    rows = [
        {"inputs": f"Instruction for {task}, example {i}.", "targets": f"answer {i}", "task": task}
        for task, n in FIXTURE_TASKS.items()
        for i in range(n)
    ]
    rows.append(dict(rows[0]))  # an exact repeat: dropped
    rows.append({"inputs": "no answer here", "targets": "", "task": "snli"})  # empty: dropped
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_saved_dataset(path, rows, *, as_dict=False):
    import datasets

    data = datasets.Dataset.from_list(rows)
    if as_dict:
        half = len(rows) // 2
        data = datasets.DatasetDict(
            {"train": data.select(range(half)), "validation": data.select(range(half, len(rows)))}
        )
    data.save_to_disk(str(path))
    return path


def load(spec: str, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = load_suite(spec, **kwargs)
    return tasks, [str(w.message) for w in caught]


def check_flan_tasks(tasks, messages, shipped=None):
    assert {t.name: (t.cluster, t.seen, t.metric) for t in tasks} == EXPECTED
    assert [t.cluster for t in tasks] == sorted((t.cluster for t in tasks), key=CLUSTERS.index)
    assert any("fix_punct" in m and "not in the paper's Table 1" in m for m in messages)
    assert any("dropped 2 rows" in m for m in messages) or shipped is not None
    for t in tasks:
        n = FIXTURE_TASKS[t.name]
        inputs = {ex.inputs["inputs"] for ex in t.train + t.validation + t.test}
        if shipped is None or not inputs & shipped["validation"]:
            assert (len(t.train), len(t.validation), len(t.test)) == holdout_counts(n, 40, 80)
        else:  # shipped splits kept: Flan's validation split is the test split
            assert {ex.inputs["inputs"] for ex in t.test} <= shipped["validation"]
            assert {ex.inputs["inputs"] for ex in t.train} <= shipped["train"]
        assert len(t.templates) == 1 and t.source.startswith("flan:")
        inputs = [ex.inputs["inputs"] for ex in t.train + t.validation + t.test]
        assert len(set(inputs)) == len(inputs) == n  # every row once, splits disjoint
        prompt, target = t.render(t.test[0], 0)
        assert prompt == t.test[0].inputs["inputs"] and target == t.test[0].target


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp("flan")
    rows = fixture_rows()
    return {
        "jsonl": write_jsonl(root / "flan.jsonl", rows),
        "parquet": write_parquet(root / "flan.parquet", rows),
        "saved": write_saved_dataset(root / "saved", rows),
        "saved_dict": write_saved_dataset(root / "saved_dict", rows, as_dict=True),
    }


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "saved", "saved_dict"])
def test_flan_formats(fixtures, kind):
    tasks, messages = load(f"flan:{fixtures[kind]}")
    rows = fixture_rows()
    half = len(rows) // 2
    shipped = None
    if kind == "saved_dict":
        shipped = {
            "train": {r["inputs"] for r in rows[:half]},
            # the repeat of row 0 in the validation half is dropped: row 0 came first
            "validation": {r["inputs"] for r in rows[half:]} - {r["inputs"] for r in rows[:half]},
        }
    check_flan_tasks(tasks, messages, shipped)


def test_formats_agree_and_splits_are_seeded(fixtures):
    def content(tasks):
        return [(t.name, t.train, t.validation, t.test) for t in tasks]

    jsonl = content(load(f"flan:{fixtures['jsonl']}")[0])
    assert jsonl == content(load(f"flan:{fixtures['parquet']}")[0])
    assert jsonl == content(load(f"flan:{fixtures['saved']}")[0])
    assert jsonl != content(load(f"flan:{fixtures['jsonl']}", seed=1)[0])


def test_cluster_cap_trims_largest_tasks_first(fixtures):
    tasks, _ = load(f"flan:{fixtures['jsonl']}", max_per_cluster=20)
    train = {t.name: len(t.train) for t in tasks}
    # nli: anli 30 rows -> 21 train, snli 40 -> 28 train; capped to 20 in total: 10 + 10
    assert train["anli_r1_10templates"] == 10 and train["snli"] == 10
    assert train["glue_mrpc"] == holdout_counts(20, 40, 80)[0]  # under the cap: untouched


def test_nothing_mapped_is_an_error(tmp_path):
    path = write_jsonl(
        tmp_path / "other.jsonl", [{"inputs": "a", "targets": "b", "task": "fix_punct"}]
    )
    with pytest.raises(ValueError, match="no Flan task maps to a cluster.*fix_punct"):
        load_suite(f"flan:{path}")


NO_LAYOUT = (
    "columns inputs, target, task match no Flan layout; accepted layouts: collection "
    "(inputs, targets, task_source, task_name, template_type); prompt_completion (prompt, "
    "completion, task_name); mossa (inputs, targets, task)"
)


def test_missing_column_is_named(tmp_path):
    rows = [{"inputs": "a", "targets": "b", "task": "snli"}, {"inputs": "a", "task": "snli"}]
    with pytest.raises(ValueError, match=r"other.jsonl:2: field 'targets' is missing"):
        load_suite(f"flan:{write_jsonl(tmp_path / 'other.jsonl', rows)}")
    rows = [{"inputs": "a", "target": "b", "task": "snli"}]
    for path in (
        write_jsonl(tmp_path / "odd.jsonl", rows),
        write_parquet(tmp_path / "odd.parquet", rows),
    ):
        with pytest.raises(
            ValueError,
            match=re.escape(NO_LAYOUT),
        ):
            load_suite(f"flan:{path}")
    with pytest.raises(FileNotFoundError, match="Flan data not found"):
        load_suite(f"flan:{tmp_path / 'absent.jsonl'}")


@pytest.mark.parametrize(
    ("name", "cluster"),
    [
        ("anli_r1", "nli"), ("cb", "nli"), ("snli", "nli"), ("mnli_mismatched", "nli"),
        ("wmt16_translate_deen", "translation"), ("para_crawl_enes", "translation"),
        ("glue_mrpc", "paraphrase"), ("paws_wiki_10templates", "paraphrase"),
        ("cosmos_qa", "reading_comprehension_commonsense"),
        ("record", "reading_comprehension_commonsense"), ("sentiment140", "sentiment"),
        ("trec", "unseen"), ("cola", "unseen"), ("wic", "unseen"), ("coqa", "unseen"),
        ("quac", "unseen"), ("math_dataset", "unseen"), ("ag_news_subset", "summarization"),
        ("wiki_lingua_english_en", "summarization"), ("wsc273", "coreference"),
        ("definite_pronoun_resolution", "coreference"), ("natural_questions", "closed_book_qa"),
        ("story_cloze", "commonsense"), ("squad_v2", "reading_comprehension"),
        ("web_nlg_en", "struct_to_text"), ("Trivia-QA", "closed_book_qa"),
    ],
)  # fmt: skip
def test_flan_names_map_to_table1_clusters(name, cluster):
    assert match_flan_task(name).cluster == cluster


@pytest.mark.parametrize("name", ["fix_punct", "true_case", "word_segment", "unknown_task"])
def test_names_outside_table1_do_not_map(name):
    assert match_flan_task(name) is None


def test_table1_matches_the_paper():
    per_cluster = {c: sorted(d.name for d in TABLE1 if d.cluster == c) for c in CLUSTERS}
    assert {c: len(v) for c, v in per_cluster.items()} == {
        "nli": 7, "commonsense": 4, "closed_book_qa": 3, "coreference": 3, "paraphrase": 4,
        "reading_comprehension": 6, "reading_comprehension_commonsense": 2, "sentiment": 4,
        "struct_to_text": 4, "translation": 3, "summarization": 11, "unseen": 6,
    }  # fmt: skip
    assert per_cluster["unseen"] == ["CoLA", "CoQA", "Math questions", "QuAC", "TREC", "WiC"]
    assert all(not d.seen for d in TABLE1 if d.cluster == "unseen")
    assert len(FLAN_TASK_CLUSTERS) == 66  # WMT'16 has six pairs, ANLI three rounds, ...
    for task, cluster in FLAN_TASK_CLUSTERS.items():
        assert match_flan_task(task).cluster == cluster


def write_flan(kind, path, rows):
    """``rows`` in format ``kind``; returns the file and where its last row is named."""
    n = len(rows)
    if kind == "jsonl":
        return write_jsonl(path.with_suffix(".jsonl"), rows), f":{n}: "
    if kind == "parquet":
        return write_parquet(path.with_suffix(".parquet"), rows), f": row {n - 1}: "
    saved = write_saved_dataset(path, rows, as_dict=True)
    return saved, f": split 'validation' row {n - 1 - n // 2}: "


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "saved_dict"])
@pytest.mark.parametrize("column", ["inputs", "targets"])
def test_text_over_the_limit_names_file_row_and_field(tmp_path, kind, column):
    big = {"inputs": "a question", "targets": "an answer", "task": "snli"}
    big[column] = "x" * (MAX_FIELD_CHARS + 1)  # about 1 MB
    path, where = write_flan(kind, tmp_path / "big", [*fixture_rows(), big])
    expected = (
        f"{path}{where}field '{column}': {MAX_FIELD_CHARS + 1:,} characters, over the limit "
        f"of {MAX_FIELD_CHARS:,}"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_suite(f"flan:{path}")


def test_text_at_the_limit_loads(tmp_path):
    rows = fixture_rows()
    rows[0] = {**rows[0], "inputs": "x" * MAX_FIELD_CHARS}
    tasks, _ = load(f"flan:{write_jsonl(tmp_path / 'limit.jsonl', rows)}")
    anli = next(t for t in tasks if t.name == "anli_r1_10templates")
    assert max(len(ex.inputs["inputs"]) for ex in anli.train + anli.validation + anli.test) == (
        MAX_FIELD_CHARS
    )


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "saved_dict"])
@pytest.mark.parametrize("name", ["snli\n", " snli", "glue/mrpc", "..snli"])
def test_mapped_task_names_unfit_for_files_are_refused(tmp_path, kind, name):
    rows = [*fixture_rows(), {"inputs": "odd", "targets": "name", "task": name}]
    path, where = write_flan(kind, tmp_path / "names", rows)
    expected = f"{path}{where}field 'task': task name {name!r}: expected {TASK_NAME_RULE}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_suite(f"flan:{path}")


def test_unmapped_odd_task_names_are_skipped_not_refused(tmp_path):
    rows = [*fixture_rows(), {"inputs": "odd", "targets": "name", "task": "fix/punct\n"}]
    tasks, messages = load(f"flan:{write_jsonl(tmp_path / 'odd.jsonl', rows)}")
    assert {t.name for t in tasks} == set(EXPECTED)
    assert any("fix/punct" in m and "not in the paper's Table 1" in m for m in messages)
