"""Run independent jobs locally (in-process or N worker processes) or as Ray tasks.

Every executor calls the same top-level, picklable function ``fn(job)`` once per job,
retries a job that raised once, and returns one :class:`JobResult` per job in input
order, so swapping executors never changes results, only where the work happens.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from mossa.config import ExecutorConfig

ATTEMPTS = 2  # a failed job is retried once, unless its error is deterministic


@dataclass(frozen=True)
class JobResult:
    """Outcome of one job: its value when ``ok``, else the error (last attempt's traceback)."""

    name: str
    ok: bool
    value: Any = None
    error: str | None = None


def job_name(job: Any, index: int) -> str:
    """A job's ``.name`` when it has one, else its position."""
    return str(getattr(job, "name", index))


def _attempt(fn: Callable, job: Any) -> tuple[bool, Any, str | None]:
    """Run ``fn(job)`` up to :data:`ATTEMPTS` times; never raises (errors are returned).

    A ValueError (bad input, a diverging loss) would only repeat, so it is not retried.
    """
    error = None
    for _ in range(ATTEMPTS):
        try:
            return True, fn(job), None
        except Exception as exc:  # a job's failure is reported, never fatal to the others
            error = traceback.format_exc()
            if isinstance(exc, ValueError):
                break
    return False, None, error


def _set_threads(n: int) -> None:
    """Limit torch (and OpenMP/MKL) to ``n`` threads, without importing torch when unused.

    Also asks OpenMP threads to sleep rather than spin while idle (unless the user chose
    otherwise): on a machine shared with other processes, spinning threads made training
    up to 40x slower here. Takes effect where torch is not imported yet.
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _attempt_with_threads(fn: Callable, job: Any, threads: int) -> tuple[bool, Any, str | None]:
    """Ray task body: limit torch to this task's CPUs, then run the job with retry."""
    _set_threads(threads)
    return _attempt(fn, job)


def _outcome(future) -> tuple[bool, Any, str | None]:
    """A pool future's outcome; a worker process that died is reported, not raised."""
    try:
        return future.result()
    except Exception:
        return False, None, traceback.format_exc()


def run_local(fn: Callable, jobs: Sequence, *, workers: int = 1, desc: str = "") -> list[JobResult]:
    """Run jobs here (``workers == 1``) or in ``workers`` spawned processes.

    Each worker process uses ``max(1, cores // workers)`` torch threads.
    """
    names = [job_name(j, i) for i, j in enumerate(jobs)]
    bar = tqdm(total=len(jobs), desc=desc or "jobs", disable=True if len(jobs) < 2 else None)
    try:
        if workers == 1:
            outcomes = []
            for job in jobs:
                outcomes.append(_attempt(fn, job))
                bar.update(1)
        else:
            threads = max(1, (os.cpu_count() or 1) // workers)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_set_threads, initargs=(threads,)
            ) as pool:
                futures = [pool.submit(_attempt, fn, job) for job in jobs]
                for f in futures:
                    f.add_done_callback(lambda _: bar.update(1))
                outcomes = [_outcome(f) for f in futures]
    finally:
        bar.close()
    return [JobResult(n, *o) for n, o in zip(names, outcomes, strict=True)]


def ensure_ray(address: str | None, *, num_cpus: int) -> bool:
    """Connect to Ray: the cluster at ``address``, else a local one with ``num_cpus`` CPUs
    (nothing when Ray is initialised here already). True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


def require_gpus(gpus: float, *, what: str) -> None:
    """ValueError, before any job starts, when the Ray cluster has fewer than ``gpus`` GPUs
    (jobs asking for them would wait forever)."""
    import ray

    have = ray.cluster_resources().get("GPU", 0)
    if gpus > have:
        raise ValueError(
            f"{what} asks for {gpus:g} GPU(s) but the Ray cluster has {have:g}; "
            "set executor.gpus_per_job=0 or join a cluster with GPUs (executor.ray_address)"
        )


def run_ray(
    fn: Callable,
    jobs: Sequence,
    *,
    address: str | None = None,
    workers: int = 1,
    cpus_per_job: float = 1.0,
    gpus_per_job: float = 0.0,
    desc: str = "",
) -> list[JobResult]:
    """Run each job as a Ray task requesting ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs.

    With no ``address`` (and no Ray already initialised here) a local cluster with
    ``workers * cpus_per_job`` CPUs is started, so at most ``workers`` jobs run at once;
    with an address, the existing cluster at that address is joined.
    """
    try:
        import ray
    except ImportError:
        raise ValueError("executor 'ray' needs Ray: pip install 'mossa[ray]'") from None
    ensure_ray(address, num_cpus=max(1, round(workers * cpus_per_job)))
    require_gpus(gpus_per_job, what=f"executor.gpus_per_job={gpus_per_job:g}")
    threads = max(1, int(cpus_per_job))
    task = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=1)(
        _attempt_with_threads
    )
    fn_ref = ray.put(fn)
    refs = [task.remote(fn_ref, job, threads) for job in jobs]
    outcomes: dict = {}
    pending = list(refs)
    with tqdm(total=len(refs), desc=desc or "jobs", disable=True if len(refs) < 2 else None) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    outcomes[ref] = ray.get(ref)
                except Exception:  # the worker process died, also when Ray re-ran it once
                    outcomes[ref] = (False, None, traceback.format_exc())
                bar.update(1)
    names = [job_name(j, i) for i, j in enumerate(jobs)]
    return [JobResult(n, *outcomes[r]) for n, r in zip(names, refs, strict=True)]


def run_jobs(
    fn: Callable, jobs: Sequence, *, executor: ExecutorConfig, desc: str = ""
) -> list[JobResult]:
    """Run ``fn(job)`` for every job with the configured executor.

    Parameters
    ----------
    fn : callable
        A top-level (picklable) function of one job; a ``functools.partial`` of one works.
    jobs : sequence
        The jobs; a job's ``.name`` (when present) names its result.
    executor : ExecutorConfig
        ``kind`` "local" (``workers`` processes, 1 = in this process) or "ray".
    desc : str
        Progress bar label.

    Returns
    -------
    list of JobResult
        One per job, in the order of ``jobs``.
    """
    if not jobs:  # nothing to do: no worker pool, no Ray cluster
        return []
    if executor.kind == "local":
        return run_local(fn, jobs, workers=executor.workers, desc=desc)
    if executor.kind == "ray":
        return run_ray(
            fn,
            jobs,
            address=executor.ray_address,
            workers=executor.workers,
            cpus_per_job=executor.cpus_per_job,
            gpus_per_job=executor.gpus_per_job,
            desc=desc,
        )
    raise ValueError(f"executor.kind must be 'local' or 'ray', got {executor.kind!r}")
