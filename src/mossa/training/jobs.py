"""Training jobs of a run: the multi-task SFT adapter and one control adapter per task
(``training.control_seeds`` of them, each with its own seed)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from mossa.config import RunConfig
from mossa.run_dir import SFT, control_adapter

CONTROL_PREFIX = "control:"
SEED_MARK = "@seed"  # job "control:<task>@seed<i>": seed i of the control (no task name has "@")


@dataclass(frozen=True)
class Job:
    """One adapter to train: its name, data, step budget and seed.

    ``name`` is ``"sft"``, ``"control:<task>"`` or ``"control:<task>@seed<i>"`` (i >= 1);
    :attr:`dir_name` is its directory under ``RUN/adapters`` (``sft``,
    ``control__<task>`` or ``control__<task>__seed<i>``).
    """

    name: str
    train: tuple
    val: tuple
    steps: int
    seed: int

    @property
    def dir_name(self) -> str:
        return adapter_dir_name(self.name)


def adapter_dir_name(job_name: str) -> str:
    """The adapter directory of a job: ``"sft"`` -> ``"sft"``, ``"control:<task>"`` ->
    ``"control__<task>"``, ``"control:<task>@seed<i>"`` -> ``"control__<task>__seed<i>"``."""
    if job_name == SFT:
        return SFT
    if job_name.startswith(CONTROL_PREFIX):
        task, mark, seed = job_name[len(CONTROL_PREFIX) :].partition(SEED_MARK)
        if not mark:
            return control_adapter(task)
        if seed.isdigit() and int(seed) >= 1:
            return control_adapter(task, int(seed))
    raise ValueError(
        f"job name must be 'sft', 'control:<task>' or 'control:<task>@seed<i>', got {job_name!r}"
    )


def job_seed(seed: int, job_name: str) -> int:
    """A per-job seed from the run seed, stable across processes and machines."""
    return (seed * 1_000_003 + zlib.crc32(job_name.encode())) % 2**31


def _sample(items: list, limit: int, seed: int) -> tuple:
    """At most ``limit`` items, a seeded sample in original order."""
    if len(items) <= limit:
        return tuple(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
    return tuple(items[i] for i in keep)


def plan_jobs(tasks: list, cfg: RunConfig) -> list[Job]:
    """The run's jobs: ``sft`` on all seen tasks mixed, then the controls.

    Controls cover every task (seen and unseen), or only the seen ones when
    ``cfg.training.controls == "seen"``; each has ``training.control_seeds`` seeds, on the
    same data (seed 0 first, for every task, then seed 1, ...); only the training seed
    differs. Raises ValueError when a job would have no training examples, naming the
    task, or when two adapters would share a directory.
    """
    from mossa.tasks import control_items, sft_mixture, validation_items

    t, seed = cfg.training, cfg.seed
    seen = [task for task in tasks if task.seen]
    if not seen:
        raise ValueError("no seen tasks: the SFT adapter needs at least one task with seen=True")
    for task in tasks:
        if len(task.train) == 0:
            raise ValueError(f"task {task.name!r} has no training examples")
    s = job_seed(seed, SFT)
    jobs = [
        Job(
            SFT,
            tuple(sft_mixture(seen, cap=cfg.tasks.cap_per_task, seed=seed)),
            _sample(validation_items(seen, seed=seed), t.max_val_items, s),
            t.sft_steps,
            s,
        )
    ]
    controls = seen if t.controls == "seen" else tasks
    data = {}
    for task in controls:
        train = tuple(control_items(task, "train", seed=seed))
        if not train:
            raise ValueError(f"task {task.name!r} has no training examples")
        data[task.name] = train, control_items(task, "validation", seed=seed)
    for replica in range(t.control_seeds):
        for task in controls:
            name = CONTROL_PREFIX + task.name + (f"{SEED_MARK}{replica}" if replica else "")
            s = job_seed(seed, name)
            train, val = data[task.name]
            jobs.append(Job(name, train, _sample(val, t.max_val_items, s), t.control_steps, s))
    dirs = {}
    for job in jobs:
        if job.dir_name in dirs:
            raise ValueError(
                f"jobs {dirs[job.dir_name]!r} and {job.name!r} would share the adapter directory "
                f"{job.dir_name!r}: rename the task (a name ending in '__seed<i>' clashes with "
                "the extra seeds of training.control_seeds)"
            )
        dirs[job.dir_name] = job.name
    return jobs
