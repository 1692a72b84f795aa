"""Per-model work of the evaluate and extract stages, spread over the executor's workers.

A stage's work comes in units, one per model (the base, the SFT adapter, each control,
each SFT snapshot), each with its tasks. The units are packed into at most
``executor.workers`` jobs of about equal size; each job loads the base once and switches
the adapters of its units in place, so one worker (the default) is exactly the stage
run in this process, and a Ray cluster runs one job per worker (with its GPU request).
Results do not depend on the packing: each (model, task) is computed alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mossa.config import ExecutorConfig
from mossa.pipeline.executors import run_jobs


@dataclass(frozen=True)
class ModelJob:
    """Units (in stage order) that one worker runs on one loaded base."""

    name: str
    units: tuple


def pack_units(units: Sequence, sizes: Sequence[int], parts: int, label: str) -> list[ModelJob]:
    """At most ``parts`` jobs of about equal total size (largest unit first into the
    least-loaded job); each job keeps its units in their original order."""
    parts = max(1, min(parts, len(units)))
    loads, members = [0] * parts, [[] for _ in range(parts)]
    for i in sorted(range(len(units)), key=lambda i: (-sizes[i], i)):
        j = min(range(parts), key=lambda j: (loads[j], j))
        loads[j] += sizes[i]
        members[j].append(i)
    return [
        ModelJob(f"{label} {k + 1}/{parts}", tuple(units[i] for i in sorted(m)))
        for k, m in enumerate(members)
        if m
    ]


def runs_in_process(jobs: list[ModelJob], executor: ExecutorConfig) -> bool:
    """True when :func:`run_model_jobs` runs ``jobs`` here (one local job): it may then
    show its own progress bar."""
    return len(jobs) == 1 and executor.kind == "local"


def run_model_jobs(
    fn: Callable, jobs: list[ModelJob], executor: ExecutorConfig, stage: str
) -> list:
    """``fn(job)`` for every job; their values in job order.

    A single local job runs here directly (its errors propagate unchanged); otherwise
    through :func:`mossa.pipeline.executors.run_jobs`, and any failed job raises a
    ValueError naming the jobs and the first error.
    """
    if runs_in_process(jobs, executor):
        return [fn(jobs[0])]
    results = run_jobs(fn, jobs, executor=executor, desc=stage)
    failed = [r for r in results if not r.ok]
    if failed:
        last_line = failed[0].error.strip().splitlines()[-1]
        raise ValueError(
            f"{len(failed)} {stage} job(s) failed ({', '.join(r.name for r in failed)}); "
            f"first error: {last_line}"
        )
    return [r.value for r in results]
