"""The tasks stage: build the run's task suite and freeze what later stages read.

Writes RUN/tasks/tasks.json (one record per task: cluster, seen, metric, split sizes,
templates, readability) and RUN/tasks/analysis_prompts.jsonl (the held-out prompts whose
hidden states are compared), with the SHA-256 of the suite and of the prompts. Training
and evaluation rebuild the same suite from the config seed and check it against that
hash; extraction and analysis read the frozen files.
"""

from __future__ import annotations

from pathlib import Path

from mossa.config import RunConfig
from mossa.run_dir import RunDir, suite_sha256


def load_run_tasks(cfg: RunConfig) -> list:
    """The run's tasks, rebuilt deterministically from its config."""
    from mossa.tasks import load_suite

    t = cfg.tasks
    return load_suite(
        t.suite,
        seed=cfg.seed,
        n_train=t.n_train,
        n_validation=t.n_validation,
        n_test=t.n_test,
        max_per_cluster=t.max_per_cluster,
        clusters=t.clusters,
        tasks_per_cluster=t.tasks_per_cluster,
    )


def task_records(tasks: list, cfg: RunConfig) -> list[dict]:
    """One summary record per task: what ``mossa tasks --json`` prints, plus the data size
    the run trains on (after the mixing cap) and how many prompts readability was read on."""
    from mossa.tasks import task_summary

    records = []
    for task in tasks:
        record = task_summary(task, seed=cfg.seed, n_readability=cfg.tasks.n_analysis)
        record["n_train"] = min(len(task.train), cfg.tasks.cap_per_task)
        records.append(record)
    return records


def write_task_artifacts(run_dir: Path, cfg: RunConfig) -> list:
    """Build the suite, write tasks.json and analysis_prompts.jsonl, return the tasks."""
    from mossa.tasks import analysis_prompts

    tasks = load_run_tasks(cfg)
    if not tasks:
        raise ValueError(f"tasks.suite={cfg.tasks.suite!r} gave no tasks")
    prompts = [
        {"task": task.name, "prompt": p}
        for task in tasks
        for p in analysis_prompts(task, cfg.tasks.n_analysis, seed=cfg.seed)
    ]
    RunDir(run_dir).write_tasks(task_records(tasks, cfg), prompts, suite_sha256(tasks))
    return tasks


def run(run_dir: Path, cfg: RunConfig) -> None:
    """The tasks stage."""
    write_task_artifacts(run_dir, cfg)
