"""The SFT job data-parallel over ``executor.sft_workers`` Ray Train workers.

Ray Train's TorchTrainer starts the workers and their process group (gloo on CPU, nccl
when ``executor.gpus_per_job`` > 0, one GPU per worker); each worker loads the base and
runs :func:`mossa.training.loop.train_lora` on its slice of every batch
(:mod:`mossa.training.data_parallel`), at the same global batch
``training.batch_size``, so the adapter equals one process's within float tolerance.
Rank 0 writes the adapter, its log, checkpoints and snapshots to the run directory,
which every worker must see (one machine, or storage the cluster shares); a killed job
resumes from that checkpoint like a one-process one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mossa.config import RunConfig
from mossa.training.jobs import Job

RAY_TRAIN_DIR = ".ray_train"  # Ray Train's own run records, inside RUN/adapters


def _worker_loop(config: dict) -> None:
    """One Ray Train worker: its rank's share of the SFT job (top-level: Ray pickles it)."""
    import ray.train
    import ray.train.torch

    from mossa.models import load_base
    from mossa.models.device import resolve_compute
    from mossa.pipeline.train import train_kwargs
    from mossa.training.data_parallel import DataParallel
    from mossa.training.loop import train_lora

    cfg: RunConfig = config["cfg"]
    job: Job = config["job"]
    context = ray.train.get_context()
    dp = DataParallel(context.get_world_rank(), context.get_world_size())
    device, dtype = resolve_compute(cfg.compute)
    if device.type == "cuda":  # this worker's own GPU, not the node's first
        device = ray.train.torch.get_device()
    model, tokenizer = load_base(
        config["base_path"],
        trust_remote_code=cfg.model.trust_remote_code,
        dtype=dtype,
        device=device,
        load_in=cfg.compute.load_in,
    )
    train_lora(
        model,
        tokenizer,
        job.train,
        job.val,
        **train_kwargs(job, Path(config["out_root"]), cfg, dtype),
        progress=False,
        data_parallel=dp,
    )


def train_sft_parallel(job: Job, *, base_path: str, out_root: Path, cfg: RunConfig) -> dict:
    """Train the SFT ``job`` over ``cfg.executor.sft_workers`` Ray Train workers.

    Joins the Ray cluster at ``executor.ray_address``, or starts a local one with a CPU
    per worker when none is running here. Returns the training summary the main worker
    wrote (``training.json``); raises RuntimeError with the workers' error when training
    failed, and ValueError before starting when the cluster has fewer GPUs than asked.
    """
    try:
        import ray
        from ray.train import RunConfig as RayRunConfig
        from ray.train import ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError:
        raise ValueError(
            "executor.sft_workers > 1 trains with Ray Train: pip install 'mossa[ray]'"
        ) from None
    from mossa.pipeline.executors import ensure_ray, require_gpus

    ex = cfg.executor
    storage = (Path(out_root) / RAY_TRAIN_DIR).resolve()
    workers, use_gpu = ex.sft_workers, ex.gpus_per_job > 0
    started = ensure_ray(ex.ray_address, num_cpus=max(1, round(workers * ex.cpus_per_job)))
    try:
        require_gpus(ex.gpus_per_job * workers, what=f"executor.sft_workers={workers}")
        resources = {"CPU": ex.cpus_per_job} | ({"GPU": ex.gpus_per_job} if use_gpu else {})
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={
                "cfg": cfg,
                "job": job,
                "base_path": str(base_path),
                "out_root": str(out_root),
            },
            scaling_config=ScalingConfig(
                num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources
            ),
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            run_config=RayRunConfig(name=job.dir_name, storage_path=str(storage)),
        )
        try:
            error = trainer.fit().error
        except Exception as exc:  # Ray Train raises a worker's failure (or returns it)
            error = exc
    finally:
        if started:
            ray.shutdown()
    if error is not None:  # Ray Train's records stay for the post-mortem
        raise RuntimeError(f"SFT over {workers} Ray Train workers failed: {error}")
    shutil.rmtree(storage, ignore_errors=True)
    summary_file = Path(out_root) / job.dir_name / "training.json"
    return json.loads(summary_file.read_text(encoding="utf-8"))
