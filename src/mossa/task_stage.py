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
from mossa.integrity import corrupt, read_json, read_text
from mossa.store import atomic_write_text

STAGE = "tasks"


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


TASK_FIELDS = (
    "name",
    "cluster",
    "seen",
    "n_train",
    "flesch_kincaid",
    "coleman_liau",
    "n_readability",
)


def read_tasks(run_dir: Path, required: tuple[str, ...] = TASK_FIELDS) -> list[dict]:
    """The task records of RUN/tasks/tasks.json, checked for the ``required`` fields."""
    path = Path(run_dir) / "tasks" / "tasks.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the tasks stage first (mossa run)")
    tasks = read_json(path, list, stage=STAGE, run_dir=run_dir)
    if not tasks:
        raise corrupt(path, "expected a non-empty list of task records", STAGE, run_dir)
    for i, t in enumerate(tasks):
        if not isinstance(t, dict):
            raise corrupt(path, f"task record {i} is not an object", STAGE, run_dir)
        missing = [f for f in ("name", *required) if f not in t]
        if missing:
            raise corrupt(path, f"task record {i} lacks fields {missing}", STAGE, run_dir)
        if not isinstance(t["name"], str) or not t["name"]:
            raise corrupt(path, f"task record {i} has no task name", STAGE, run_dir)
    return tasks


def read_analysis_prompts(run_dir: Path) -> dict[str, list[str]]:
    """Analysis prompts per task, in their frozen order."""
    path = Path(run_dir) / "tasks" / "analysis_prompts.jsonl"
    if not path.exists():
        raise ValueError(f"{path} is missing: run the tasks stage first (mossa run)")
    prompts: dict[str, list[str]] = {}
    text = read_text(path, stage=STAGE, run_dir=run_dir)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"line {number}: not valid JSON ({exc.msg})"
            raise corrupt(path, problem, STAGE, run_dir) from None
        if not (
            isinstance(rec, dict)
            and isinstance(rec.get("task"), str)
            and isinstance(rec.get("prompt"), str)
        ):
            problem = f"line {number}: expected an object with string 'task' and 'prompt'"
            raise corrupt(path, problem, STAGE, run_dir)
        prompts.setdefault(rec["task"], []).append(rec["prompt"])
    return prompts
