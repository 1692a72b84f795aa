"""The training stage: check everything, then train every adapter a run still lacks.

Adapters go to ``RUN/adapters/sft``, ``RUN/adapters/control__<task>`` and, with
``training.control_seeds`` > 1, ``RUN/adapters/control__<task>__seed<i>`` (PEFT adapter
as safetensors, ``train_log.csv``, ``training.json``, checksums). A finished adapter directory is
complete by construction (renamed into place at the end), so re-running the stage skips
it; an interrupted job resumes from its last checkpoint.
"""

from __future__ import annotations

import functools
from pathlib import Path

from mossa.config import RunConfig
from mossa.pipeline.executors import JobResult, run_jobs
from mossa.pipeline.tasks import load_run_tasks
from mossa.run_dir import RunDir, cross_task_controls
from mossa.training.jobs import SFT, Job, plan_jobs
from mossa.training.loop import adapter_complete, train_lora, validate_training_inputs
from mossa.training.lora import check_target_modules


class TrainingFailed(ValueError):
    """Some training jobs failed; the message names them and the first error."""


def check_base(base_path: Path, cfg: RunConfig) -> None:
    """Raise ValueError when the base is missing or lacks the LoRA target modules.

    Builds the model on the meta device (no weights read), so this is cheap even for
    7B bases.
    """
    from mossa.models import meta_model

    if not (Path(base_path) / "config.json").is_file():
        raise ValueError(
            f"model.base={cfg.model.base!r}: no model at {base_path} (config.json missing)"
        )
    skeleton = meta_model(base_path, trust_remote_code=cfg.model.trust_remote_code)
    check_target_modules(skeleton, list(cfg.training.target_modules))


def train_job(job: Job, *, base_path: str, out_root: str, cfg: RunConfig, progress: bool) -> dict:
    """Train one job's adapter into ``out_root/<job dir>`` (top-level: executors pickle it).

    The base goes to ``compute.device`` in ``compute.dtype`` (resolved where the job runs:
    a Ray worker may have a GPU its driver lacks).
    """
    from mossa.models import load_base
    from mossa.models.device import resolve_compute

    device, dtype = resolve_compute(cfg.compute)
    model, tokenizer = load_base(
        base_path,
        trust_remote_code=cfg.model.trust_remote_code,
        dtype=dtype,
        device=device,
        load_in=cfg.compute.load_in,
    )
    return train_lora(
        model,
        tokenizer,
        job.train,
        job.val,
        **train_kwargs(job, Path(out_root), cfg, dtype),
        progress=progress,
    )


def train_kwargs(job: Job, out_root: Path, cfg: RunConfig, dtype) -> dict:
    """The settings :func:`mossa.training.loop.train_lora` takes from a job and the config."""
    return {
        "out_dir": out_root / job.dir_name,
        "steps": job.steps,
        "training": cfg.training,
        "seed": job.seed,
        "max_length": cfg.model.max_length,
        "name": job.name,
        "snapshot_every": cfg.training.snapshot_every if job.name == SFT else None,
        "dtype": dtype,
        "gradient_checkpointing": cfg.compute.gradient_checkpointing,
    }


def check_sft_workers(cfg: RunConfig) -> None:
    """ValueError, before any work, for an ``executor.sft_workers`` that cannot run."""
    import importlib.util

    workers = cfg.executor.sft_workers
    if workers == 1:
        return
    if importlib.util.find_spec("ray") is None:
        raise ValueError(
            f"executor.sft_workers={workers} trains with Ray Train, which is not installed: "
            "pip install 'mossa[ray]'"
        )
    if cfg.training.batch_size < workers:
        raise ValueError(
            f"executor.sft_workers={workers} needs training.batch_size >= {workers} (every "
            f"worker takes rows of each batch), got {cfg.training.batch_size}"
        )


def _sft_over_workers(job: Job, base_path: Path, out_root: Path, cfg: RunConfig) -> JobResult:
    """The SFT job data-parallel over ``executor.sft_workers`` Ray Train workers, as a
    :class:`JobResult` (a bad request, such as missing GPUs, is raised before it starts)."""
    import traceback

    from mossa.pipeline.sft_parallel import train_sft_parallel

    try:
        summary = train_sft_parallel(job, base_path=str(base_path), out_root=out_root, cfg=cfg)
    except RuntimeError:
        return JobResult(job.name, False, error=traceback.format_exc())
    return JobResult(job.name, True, value=summary)


def select_jobs(jobs: list[Job], only: list[str] | None) -> list[Job]:
    """The jobs named in ``only`` (all when None); ValueError for unknown names."""
    if not only:
        return jobs
    names = {j.name for j in jobs}
    unknown = [n for n in only if n not in names]
    if unknown:
        shown = ", ".join(sorted(names)[:12]) + (" ..." if len(names) > 12 else "")
        raise ValueError(f"--only {unknown[0]!r}: no such job; jobs are: {shown}")
    return [j for j in jobs if j.name in only]


def run_training(
    run_dir: Path,
    cfg: RunConfig,
    tasks: list,
    *,
    only: list[str] | None = None,
    raise_on_failure: bool = True,
) -> list[dict]:
    """Train the run's adapters that are not finished yet.

    Parameters
    ----------
    run_dir : Path
        The run directory; adapters go to ``run_dir/adapters``.
    cfg : RunConfig
        Model, training and executor settings.
    tasks : list of mossa.tasks.Task
    only : list of str, optional
        Job names (``"sft"``, ``"control:<task>"``, ``"control:<task>@seed<i>"``) to
        restrict to.
    raise_on_failure : bool
        Raise TrainingFailed after all jobs ran when any failed (default), else just
        report the failure in the returned records.

    Returns
    -------
    list of dict
        One record per job: ``name``, ``dir``, ``status`` ("trained", "skipped" or
        "failed"), ``summary`` (training summary or None) and ``error``.
    """
    from mossa.models import resolve_base

    jobs = select_jobs(plan_jobs(tasks, cfg), only)
    for job in jobs:
        validate_training_inputs(
            job.train,
            steps=job.steps,
            training=cfg.training,
            max_length=cfg.model.max_length,
            name=f"job {job.name} (training.{'sft' if job.name == SFT else 'control'}_steps)",
        )
    check_sft_workers(cfg)
    try:
        base_path = resolve_base(cfg.model.base, trust_remote_code=cfg.model.trust_remote_code)
    except ValueError as exc:
        raise ValueError(f"model.base={cfg.model.base!r}: {exc}") from None
    check_base(base_path, cfg)

    out_root = RunDir(run_dir).adapters_dir
    out_root.mkdir(parents=True, exist_ok=True)
    pending = [j for j in jobs if not adapter_complete(out_root / j.dir_name)]
    results = {}
    if cfg.executor.sft_workers > 1 and any(j.name == SFT for j in pending):
        sft = next(j for j in pending if j.name == SFT)
        pending.remove(sft)
        results[SFT] = _sft_over_workers(sft, base_path, out_root, cfg)
    in_process = cfg.executor.kind == "local" and cfg.executor.workers == 1
    fn = functools.partial(
        train_job,
        base_path=str(base_path),
        out_root=str(out_root),
        cfg=cfg,
        progress=in_process,
    )
    results |= {r.name: r for r in run_jobs(fn, pending, executor=cfg.executor, desc="adapters")}

    records = []
    for job in jobs:
        r = results.get(job.name)
        status = "skipped" if r is None else "trained" if r.ok else "failed"
        records.append(
            {
                "name": job.name,
                "dir": str(out_root / job.dir_name),
                "status": status,
                "summary": r.value if r is not None else None,
                "error": r.error if r is not None else None,
            }
        )
    failed = [rec for rec in records if rec["status"] == "failed"]
    if failed and raise_on_failure:
        last_line = failed[0]["error"].strip().splitlines()[-1]
        raise TrainingFailed(
            f"{len(failed)} training job(s) failed ({', '.join(r['name'] for r in failed)}); "
            f"first error: {last_line}"
        )
    return records


def run(run_dir: Path, cfg: RunConfig, *, jobs: list[str] | None = None, on_records=None) -> None:
    """The train stage: every adapter the run lacks (only ``jobs`` when given).

    The suite is rebuilt from the config and checked against the one the tasks stage
    froze. ``on_records`` receives the per-job records (see :func:`run_training`) before
    a failure is raised, so a command can show every job's outcome.
    """
    tasks = load_run_tasks(cfg)
    RunDir(run_dir).check_suite(tasks)
    # refuse an impossible analysis.cross_task_controls now, not after hours of training
    cross_task_controls(
        [{"name": t.name, "seen": t.seen} for t in tasks],
        controls=cfg.training.controls,
        k=cfg.analysis.cross_task_controls,
        cross_task=cfg.extraction.cross_task,
        seed=cfg.seed,
    )
    records = run_training(run_dir, cfg, tasks, only=jobs, raise_on_failure=on_records is None)
    if on_records is not None:
        on_records(records)
        failed = [r["name"] for r in records if r["status"] == "failed"]
        if failed:
            raise TrainingFailed(f"{len(failed)} training job(s) failed: {', '.join(failed)}")
