"""From tasks to training items: the SFT mixture, per-task control sets, analysis prompts.

Each example is rendered under one of its task's templates, drawn with a seeded RNG
(Flan's recipe of a random template per example). Every draw is keyed by the seed and
the task name, so adding or removing a task never changes another task's items.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from mossa.tasks.types import Example, Task, TrainItem


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_unique(tasks: Sequence[Task]) -> None:
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"task names must be unique; repeated: {', '.join(duplicates)}")


def render_items(task: Task, examples: Sequence[Example], rng: random.Random) -> list[TrainItem]:
    """Each example rendered under a template drawn from ``rng``, in the given order."""
    items = []
    for example in examples:
        prompt, target = task.render(example, rng.randrange(len(task.templates)))
        items.append(TrainItem(task.name, prompt, target))
    return items


def mixture_counts(tasks: Sequence[Task], cap: int = 3000) -> dict[str, int]:
    """Examples each seen task contributes: ``min(len(train), cap)`` (examples-proportional).

    With Raffel et al.'s examples-proportional mixing and a rate cap ``K``, a task's share
    is ``min(e_m, K) / sum_n min(e_n, K)``; a finite mixture with these counts has exactly
    those shares.
    """
    _check_positive("cap", cap)
    return {t.name: min(len(t.train), cap) for t in tasks if t.seen}


def sft_mixture(tasks: Sequence[Task], *, cap: int = 3000, seed: int = 0) -> list[TrainItem]:
    """The multi-task SFT set: seen tasks only, examples-proportional with a per-task cap.

    A task with more than ``cap`` training examples contributes a seeded random subset of
    ``cap``; every example gets a random template; the result is shuffled.
    """
    _check_unique(tasks)
    counts = mixture_counts(tasks, cap)
    if not counts:
        raise ValueError("the SFT mixture needs at least one seen task; all tasks are unseen")
    items: list[TrainItem] = []
    for task in tasks:
        if not task.seen:
            continue
        rng = random.Random(f"mossa-mix:{seed}:{task.name}")
        chosen = sorted(rng.sample(range(len(task.train)), counts[task.name]))
        items += render_items(task, [task.train[i] for i in chosen], rng)
    random.Random(f"mossa-mix:{seed}").shuffle(items)
    return items


def control_items(
    task: Task, split: Literal["train", "validation"], *, seed: int = 0
) -> list[TrainItem]:
    """All examples of one split of one task, each under a random template (split order)."""
    if split not in ("train", "validation"):
        raise ValueError(f"control split must be 'train' or 'validation', got {split!r}")
    rng = random.Random(f"mossa-control:{seed}:{task.name}:{split}")
    return render_items(task, task.split(split), rng)


def validation_items(tasks: Sequence[Task], *, seed: int = 0) -> list[TrainItem]:
    """The SFT validation set: the validation split of every seen task, task by task."""
    _check_unique(tasks)
    return [item for t in tasks if t.seen for item in control_items(t, "validation", seed=seed)]


def training_prompts(task: Task) -> set[str]:
    """Every prompt any train or validation example of ``task`` renders to, all templates."""
    return {
        task.render(example, i)[0]
        for example in task.train + task.validation
        for i in range(len(task.templates))
    }


def analysis_prompts(task: Task, n: int, *, seed: int = 0) -> list[str]:
    """Up to ``n`` distinct held-out prompts from the test split, each under a random template.

    A prompt that equals any rendering (under any template) of a train or validation
    example is skipped, so no analysis prompt was ever seen in training.
    """
    _check_positive("n", n)
    excluded = training_prompts(task)
    rng = random.Random(f"mossa-analysis:{seed}:{task.name}")
    prompts: list[str] = []
    for i in rng.sample(range(len(task.test)), len(task.test)):
        prompt, _ = task.render(task.test[i], rng.randrange(len(task.templates)))
        if prompt in excluded:
            continue
        excluded.add(prompt)
        prompts.append(prompt)
        if len(prompts) == n:
            break
    return prompts
