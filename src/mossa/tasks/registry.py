"""``load_suite``: one entry point for the built-in suite, user task files and Flan 2021."""

from __future__ import annotations

from pathlib import Path

from mossa.tasks.clusters import CLUSTERS, check_cluster
from mossa.tasks.readability import task_readability
from mossa.tasks.splits import water_fill
from mossa.tasks.types import Task

USER_FILE_SUFFIXES = (".jsonl", ".yaml", ".yml")
SYNTHETIC_NAMES = ("synthetic", "builtin")
"""Names of the procedural suite (``builtin`` is its older name, still accepted)."""


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def cap_clusters(tasks: list[Task], max_per_cluster: int) -> list[Task]:
    """Trim training splits so no cluster has more than ``max_per_cluster`` training examples."""
    from dataclasses import replace

    capped = list(tasks)
    for cluster in CLUSTERS:
        index = [i for i, t in enumerate(tasks) if t.cluster == cluster]
        sizes = [len(tasks[i].train) for i in index]
        for i, keep in zip(index, water_fill(sizes, max_per_cluster), strict=True):
            if keep < len(tasks[i].train):
                capped[i] = replace(tasks[i], train=tasks[i].train[:keep])
    return capped


def _load(spec, seed, n_train, n_validation, n_test, max_per_cluster, clusters) -> list[Task]:
    if spec == "real":
        from mossa.tasks.real import load_real

        return load_real(
            seed=seed, n_train=n_train, n_validation=n_validation, n_test=n_test,
            clusters=clusters,
        )  # fmt: skip
    if spec in SYNTHETIC_NAMES:
        from mossa.tasks.builtin import load_builtin

        return load_builtin(
            seed=seed, n_train=n_train, n_validation=n_validation, n_test=n_test,
            clusters=clusters,
        )  # fmt: skip
    if spec.startswith("flan:"):
        from mossa.tasks.flan import load_flan

        return load_flan(
            spec[len("flan:") :], seed=seed, n_validation=n_validation, n_test=n_test,
            max_per_cluster=max_per_cluster,
        )  # fmt: skip
    if Path(spec).suffix.lower() in USER_FILE_SUFFIXES:
        from mossa.tasks.userfile import load_user_tasks

        return load_user_tasks(Path(spec), seed=seed, n_validation=n_validation, n_test=n_test)
    raise ValueError(
        f"task suite {spec!r}: expected 'real', 'synthetic', a task file ending in "
        f"{', '.join(USER_FILE_SUFFIXES)}, or 'flan:PATH'"
    )


def load_suite(
    spec: str = "synthetic",
    *,
    seed: int = 0,
    n_train: int = 200,
    n_validation: int = 40,
    n_test: int = 80,
    max_per_cluster: int = 50_000,
    clusters: list[str] | None = None,
    tasks_per_cluster: int | None = None,
) -> list[Task]:
    """Load a task suite, in cluster order (``CLUSTERS``), then task order within a cluster.

    Parameters
    ----------
    spec : str
        ``"real"`` (human-labelled datasets from package archives), ``"synthetic"`` (the
        procedural suite; ``"builtin"`` is its old name), a path to a ``.jsonl`` /
        ``.yaml`` / ``.yml`` user task file, or
        ``"flan:PATH"`` (Flan 2021 as JSONL, parquet or a ``datasets.save_to_disk`` dir).
    seed : int
        Drives every random choice (examples generated, splits, subsets): same seed, same
        suite, byte for byte.
    n_train, n_validation, n_test : int
        Examples per task and split. ``n_train`` applies to the real and synthetic suites (user
        files and Flan keep all remaining examples for training); ``n_validation`` and
        ``n_test`` also size the held-out splits of data that comes without splits.
    max_per_cluster : int
        At most this many training examples per cluster (largest tasks trimmed first).
    clusters : list of str, optional
        Keep only these clusters.
    tasks_per_cluster : int, optional
        Keep only the first this many tasks of each cluster.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"task suite must be a non-empty string, got {spec!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    for name, value in (
        ("n_train", n_train), ("n_validation", n_validation), ("n_test", n_test),
        ("max_per_cluster", max_per_cluster),
    ):  # fmt: skip
        _positive(name, value)
    if tasks_per_cluster is not None:
        _positive("tasks_per_cluster", tasks_per_cluster)
    if clusters is not None:
        clusters = [check_cluster(c, "clusters") for c in clusters]
    tasks = _load(spec, seed, n_train, n_validation, n_test, max_per_cluster, clusters)
    if clusters is not None:
        tasks = [t for t in tasks if t.cluster in clusters]
    tasks = sorted(tasks, key=lambda t: CLUSTERS.index(t.cluster))
    if tasks_per_cluster is not None:
        kept: dict[str, int] = {}
        selected = []
        for task in tasks:
            kept[task.cluster] = kept.get(task.cluster, 0) + 1
            if kept[task.cluster] <= tasks_per_cluster:
                selected.append(task)
        tasks = selected
    return cap_clusters(tasks, max_per_cluster)


def task_summary(task: Task, *, seed: int = 0, n_readability: int = 100) -> dict:
    """One JSON-able summary record of a task (what ``mossa tasks --json`` prints)."""
    scores = task_readability(task, n=n_readability, seed=seed)
    return {
        "name": task.name,
        "cluster": task.cluster,
        "seen": task.seen,
        "metric": task.metric,
        "n_templates": len(task.templates),
        "n_train": len(task.train),
        "n_validation": len(task.validation),
        "n_test": len(task.test),
        "flesch_kincaid": scores["flesch_kincaid"],
        "coleman_liau": scores["coleman_liau"],
        "n_readability": scores["n"],
        "source": task.source,
        "package": task.package,
        "license": task.license,
        "original_split": task.original_split,
        "stands_in_for": task.stands_in_for,
    }
