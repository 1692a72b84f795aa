"""The tasks stage: build the run's task suite and freeze what later stages read.

Writes RUN/tasks/tasks.json (one record per task: cluster, seen, metric, split sizes,
templates, readability) and RUN/tasks/analysis_prompts.jsonl (the held-out prompts whose
hidden states are compared). Later stages rebuild the same suite from the config seed;
the frozen prompts let extraction and analysis check they agree.
"""

from __future__ import annotations

import json
from pathlib import Path

from mossa.config import RunConfig
from mossa.store import atomic_write_text


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
    out = run_dir / "tasks"
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for task in tasks:
        prompts = analysis_prompts(task, cfg.tasks.n_analysis, seed=cfg.seed)
        lines.extend(json.dumps({"task": task.name, "prompt": p}) for p in prompts)
    atomic_write_text(out / "analysis_prompts.jsonl", "\n".join(lines) + "\n")
    atomic_write_text(out / "tasks.json", json.dumps(task_records(tasks, cfg), indent=2) + "\n")
    return tasks


def read_analysis_prompts(run_dir: Path) -> dict[str, list[str]]:
    """Analysis prompts per task, in their frozen order."""
    path = run_dir / "tasks" / "analysis_prompts.jsonl"
    if not path.exists():
        raise ValueError(f"{path} is missing: run the tasks stage first (mossa run)")
    prompts: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            prompts.setdefault(rec["task"], []).append(rec["prompt"])
    return prompts
