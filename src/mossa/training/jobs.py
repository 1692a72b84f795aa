"""Training jobs of a run: the multi-task SFT adapter and one control adapter per task."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from mossa.config import RunConfig
from mossa.run_dir import SFT, control_adapter

CONTROL_PREFIX = "control:"


@dataclass(frozen=True)
class Job:
    """One adapter to train: its name, data, step budget and seed.

    ``name`` is ``"sft"`` or ``"control:<task>"``; :attr:`dir_name` is its directory
    under ``RUN/adapters`` (``sft`` or ``control__<task>``).
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
    """``"sft"`` -> ``"sft"``; ``"control:<task>"`` -> ``"control__<task>"``."""
    if job_name == SFT:
        return SFT
    if job_name.startswith(CONTROL_PREFIX):
        return control_adapter(job_name[len(CONTROL_PREFIX) :])
    raise ValueError(f"job name must be 'sft' or 'control:<task>', got {job_name!r}")


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
    """The run's jobs: ``sft`` on all seen tasks mixed, then one control per task.

    Controls cover every task (seen and unseen), or only the seen ones when
    ``cfg.training.controls == "seen"``. Raises ValueError when a job would have no
    training examples, naming the task.
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
    for task in seen if t.controls == "seen" else tasks:
        name = CONTROL_PREFIX + task.name
        s = job_seed(seed, name)
        train = tuple(control_items(task, "train", seed=seed))
        if not train:
            raise ValueError(f"task {task.name!r} has no training examples")
        val = _sample(control_items(task, "validation", seed=seed), t.max_val_items, s)
        jobs.append(Job(name, train, val, t.control_steps, s))
    return jobs
