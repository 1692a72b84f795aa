"""The built-in suite: 35 tasks in the paper's 12 clusters, 10 templates each.

Every task is generated from a seed (real English text from installed packages where it
serves, procedural generation elsewhere); see docs/tasks.md for sources and licences.
"""

from __future__ import annotations

import random
from dataclasses import replace

from mossa.tasks.builtin import (
    commonsense,
    coreference,
    nli,
    paraphrase,
    qa,
    rc_commonsense,
    sentiment,
    struct_to_text,
    summarization,
    translation,
    unseen,
)
from mossa.tasks.builtin._common import BuiltinSpec, build_task
from mossa.tasks.clusters import CLUSTERS
from mossa.tasks.types import Task

_MODULES = (
    nli, commonsense, qa, coreference, paraphrase, rc_commonsense, sentiment, struct_to_text,
    translation, summarization, unseen,
)  # fmt: skip
BUILTIN_SPECS: tuple[BuiltinSpec, ...] = tuple(
    sorted(
        (spec for module in _MODULES for spec in module.SPECS),
        key=lambda spec: CLUSTERS.index(spec.cluster),
    )
)


SMALLEST_TRAIN_FRACTION = 0.25


def train_fraction(name: str, seed: int) -> float:
    """Share of ``n_train`` a built-in task keeps, log-uniform in [0.25, 1], fixed by the seed.

    Real task collections differ in size; giving the built-in tasks different training-set
    sizes lets the data-size correlation of the analysis (paper Fig. 10) measure something.
    """
    u = random.Random(f"{seed}:{name}:train-size").random()
    return SMALLEST_TRAIN_FRACTION ** (1.0 - u)


def load_builtin(
    *,
    seed: int,
    n_train: int,
    n_validation: int,
    n_test: int,
    clusters: list[str] | None = None,
) -> list[Task]:
    """Build the built-in tasks (of ``clusters`` only, when given) in cluster order.

    Each task keeps a prefix of ``train_fraction(name, seed) * n_train`` training examples
    (at least 8), so sizes vary across tasks; validation and test sizes are as asked.
    """
    tasks = []
    for spec in BUILTIN_SPECS:
        if clusters is not None and spec.cluster not in clusters:
            continue
        task = build_task(
            spec, seed=seed, n_train=n_train, n_validation=n_validation, n_test=n_test
        )
        keep = max(min(8, n_train), round(train_fraction(spec.name, seed) * len(task.train)))
        tasks.append(replace(task, train=task.train[:keep]))
    return tasks
