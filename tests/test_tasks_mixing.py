"""Mixing: examples-proportional shares with a cap, controls, validation, analysis prompts."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mossa.tasks import (
    Example,
    Task,
    Template,
    analysis_prompts,
    control_items,
    mixture_counts,
    sft_mixture,
    validation_items,
)
from mossa.tasks.splits import holdout_counts, water_fill
from mossa.tasks.types import TASK_NAME_RULE

TEMPLATES = tuple(Template(f"T{i}: {{x}} ->", "{target}") for i in range(10))


def make_task(name: str, n_train: int, *, cluster: str = "nli", n_test: int = 20) -> Task:
    def examples(split: str, n: int) -> tuple[Example, ...]:
        return tuple(Example({"x": f"{name}-{split}-{i}"}, f"y{i}") for i in range(n))

    return Task(
        name=name,
        cluster=cluster,
        seen=cluster != "unseen",
        templates=TEMPLATES,
        train=examples("train", n_train),
        validation=examples("validation", 7),
        test=examples("test", n_test),
        metric="accuracy",
        source="test",
    )


def source_example(task: Task, prompt: str, target: str) -> Example:
    """The train example that renders to ``(prompt, target)`` (reference: brute force)."""
    for example in task.train:
        for i in range(len(task.templates)):
            if task.render(example, i) == (prompt, target):
                return example
    raise AssertionError(f"{prompt!r} is no rendering of a {task.name} training example")


TASKS = [
    make_task("small", 10),
    make_task("large", 5000),
    make_task("medium", 100, cluster="sentiment"),
    make_task("held_out", 50, cluster="unseen"),
]


def test_counts_are_proportional_below_the_cap_and_capped_above():
    items = sft_mixture(TASKS, cap=3000, seed=0)
    counts = Counter(item.task for item in items)
    assert counts == {"small": 10, "large": 3000, "medium": 100}
    assert mixture_counts(TASKS, cap=3000) == dict(counts)
    total = sum(counts.values())
    for name, expected in (("small", 10), ("large", 3000), ("medium", 100)):
        assert counts[name] / total == pytest.approx(expected / (10 + 3000 + 100))
    assert Counter(i.task for i in sft_mixture(TASKS, cap=50, seed=0)) == {
        "small": 10,
        "large": 50,
        "medium": 50,
    }


def test_items_are_distinct_training_examples_with_random_templates():
    by_name = {t.name: t for t in TASKS}
    items = sft_mixture(TASKS, cap=3000, seed=0)
    sources = [
        (i.task, source_example(by_name[i.task], i.prompt, i.target))
        for i in items
        if i.task != "large"
    ]
    assert len({(name, ex.inputs["x"]) for name, ex in sources}) == len(sources) == 110
    large = [i for i in items if i.task == "large"]
    assert len({i.prompt.split(": ", 1)[1] for i in large}) == 3000  # no example twice
    templates = Counter(i.prompt.split(":")[0] for i in large)
    assert len(templates) == 10 and min(templates.values()) > 200  # about 300 each


def test_mixture_is_seeded_and_shuffled():
    a, b = sft_mixture(TASKS, seed=0), sft_mixture(TASKS, seed=0)
    assert a == b
    assert a != sft_mixture(TASKS, seed=1)
    first_tasks = [i.task for i in a[:200]]
    assert len(set(first_tasks)) > 1  # interleaved, not task by task


def test_adding_a_task_leaves_other_tasks_items_unchanged():
    base = sft_mixture(TASKS[:2], seed=0)
    more = sft_mixture(TASKS, seed=0)
    assert {i for i in base if i.task == "small"} == {i for i in more if i.task == "small"}


def test_unseen_tasks_get_controls_but_no_sft():
    assert "held_out" not in {i.task for i in sft_mixture(TASKS)}
    items = control_items(TASKS[3], "train", seed=0)
    assert [source_example(TASKS[3], i.prompt, i.target) for i in items] == list(TASKS[3].train)
    with pytest.raises(ValueError, match="all tasks are unseen"):
        sft_mixture([TASKS[3]])
    with pytest.raises(ValueError, match="control split must be 'train' or 'validation'"):
        control_items(TASKS[0], "test")


def test_validation_items_cover_seen_validation_splits():
    items = validation_items(TASKS, seed=0)
    assert Counter(i.task for i in items) == {"small": 7, "large": 7, "medium": 7}
    assert items == validation_items(TASKS, seed=0)


def test_analysis_prompts_skip_anything_rendered_in_training():
    task = make_task("leaky", 30, n_test=12)
    # Two test examples repeat training inputs: none of their renderings may be used.
    leaky_test = (task.train[0], task.train[5]) + task.test[2:]
    task = replace(task, test=leaky_test)
    prompts = analysis_prompts(task, 100, seed=0)
    assert len(prompts) == 10  # 12 test examples minus the 2 repeats
    trained = {task.render(ex, i)[0] for ex in task.train for i in range(10)}
    assert not trained & set(prompts)
    assert analysis_prompts(task, 4, seed=0) == prompts[:4]
    assert analysis_prompts(task, 100, seed=1) != prompts
    with pytest.raises(ValueError, match="n must be a positive integer"):
        analysis_prompts(task, 0)


@given(st.lists(st.integers(0, 500), min_size=1, max_size=8), st.integers(1, 1500))
def test_water_fill_is_max_min_fair(sizes, cap):
    alloc = water_fill(sizes, cap)
    assert all(0 <= a <= s for a, s in zip(alloc, sizes, strict=True))
    assert sum(alloc) == min(sum(sizes), cap)
    trimmed = [a for a, s in zip(alloc, sizes, strict=True) if a < s]
    if trimmed:  # trimmed tasks are level, and no untrimmed task holds more than them + 1
        assert max(alloc) - min(trimmed) <= 1


def test_holdout_counts():
    assert holdout_counts(1000, 40, 80) == (880, 40, 80)
    assert holdout_counts(20, 40, 80) == (14, 2, 4)
    assert holdout_counts(3, 40, 80) == (1, 1, 1)
    with pytest.raises(ValueError, match="at least 3 examples"):
        holdout_counts(2, 40, 80)


@pytest.mark.parametrize(
    "name", ["t\n", " t", "t ", "", "a/b", "a\\b", ".t", "-t", "a\x00b", "caf\u00e9", "x" * 101, 7]
)
def test_task_names_must_be_safe_file_names(name):
    shown = re.escape(f"task name {name!r}"[:70])  # a long name is shown cut to 60 characters
    with pytest.raises(
        ValueError, match=f"{shown}(\\.\\.\\.)?: expected {re.escape(TASK_NAME_RULE)}"
    ):
        make_task(name, 3)


@pytest.mark.parametrize("name", ["a", "T0", "anli_r1_10templates", "x.y-z_9", "x" * 100])
def test_safe_task_names_are_accepted(name):
    assert make_task(name, 3).name == name
