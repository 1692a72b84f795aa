"""Executors: local (in-process, worker processes) and Ray give the same results; a failing
job is retried once and then reported with its error, without stopping the others."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mossa.config import ExecutorConfig, ModelConfig, RunConfig, TrainingConfig
from mossa.pipeline.executors import run_jobs

pytestmark = pytest.mark.usefixtures("one_thread")

# torch, transformers and safetensors are imported inside functions: worker processes
# import this module to find the job functions, and should start fast


@dataclass(frozen=True)
class Job:
    name: str
    x: int
    marker_dir: str = ""
    fail_times: int = 0  # attempts that raise before one succeeds


def square_or_fail(job: Job) -> int:
    """x * x, after failing ``fail_times`` times (attempts counted in files: any process)."""
    if job.marker_dir:
        marker = Path(job.marker_dir) / job.name
        with marker.open("a") as fh:
            fh.write("x")
        if len(marker.read_text()) <= job.fail_times:
            raise RuntimeError(f"job {job.name} failed on purpose")
    return job.x * job.x


def crash(job: Job) -> int:
    """Kill the worker process itself (as an out-of-memory kill would)."""
    import os

    os._exit(1)


def attempts(marker_dir: Path, name: str) -> int:
    return len((marker_dir / name).read_text())


def make_task(name: str, pairs: list[tuple[str, str]]):
    from mossa.tasks import Example, Task, Template

    examples = tuple(Example({"x": x}, y) for x, y in pairs)
    return Task(
        name=name,
        cluster="paraphrase",
        seen=True,
        templates=(Template("{x} ->"), Template("Q: {x} A:")),
        train=examples,
        validation=examples[:4],
        test=examples[:4],
        metric="accuracy",
        source="test",
    )


TASKS = [
    make_task("a", [(f"{d}", "abcdefghij"[d]) for d in range(10)]),
    make_task("b", [(f"copy {w}", w) for w in ["cat", "dog", "sun", "sky", "red", "zip"]]),
]


def train_two_controls(run_dir: Path, executor: ExecutorConfig) -> list[dict]:
    """The training stage itself, restricted to the two control jobs."""
    from mossa.pipeline.train import run_training

    cfg = RunConfig(
        model=ModelConfig(base="random:llama-tiny", max_length=32),
        training=TrainingConfig(
            lr=1e-2, control_steps=6, batch_size=4, eval_every=3, checkpoint_every=3
        ),
        executor=executor,
    )
    return run_training(run_dir, cfg, TASKS, only=["control:a", "control:b"])


def load_adapter(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "adapter_model.safetensors")


def adapters_equal(left: Path, right: Path) -> None:
    import torch

    x, y = load_adapter(left), load_adapter(right)
    assert x.keys() == y.keys() and x
    for k in x:
        assert torch.allclose(x[k], y[k], atol=1e-6, rtol=0), k


def mixed_jobs(marker_dir: Path) -> list[Job]:
    """Plain jobs plus one that fails once (then succeeds) and one that always fails."""
    jobs = [Job(f"j{i}", i) for i in range(4)]
    return jobs + [
        Job("flaky", 3, str(marker_dir), fail_times=1),
        Job("broken", 4, str(marker_dir), fail_times=99),
    ]


def check_mixed(results, marker_dir: Path) -> None:
    assert [r.name for r in results] == ["j0", "j1", "j2", "j3", "flaky", "broken"]
    assert [(r.ok, r.value) for r in results[:4]] == [(True, i * i) for i in range(4)]
    flaky, broken = results[4:]
    assert (flaky.ok, flaky.value, attempts(marker_dir, "flaky")) == (True, 9, 2)
    assert (broken.ok, broken.value, attempts(marker_dir, "broken")) == (False, None, 2)
    assert "RuntimeError: job broken failed on purpose" in broken.error


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "2-processes"])
def test_local_runs_all_retries_once_then_reports(tmp_path, workers):
    results = run_jobs(
        square_or_fail, mixed_jobs(tmp_path), executor=ExecutorConfig(kind="local", workers=workers)
    )
    check_mixed(results, tmp_path)


def refuse(job: Job) -> int:
    """Count the attempt, then fail as bad input or a diverging loss does."""
    with (Path(job.marker_dir) / job.name).open("a") as fh:
        fh.write("x")
    raise ValueError(f"job {job.name}: training loss is nan at step 2")


def test_value_errors_are_not_retried(tmp_path):
    (result,) = run_jobs(refuse, [Job("nan", 1, str(tmp_path))], executor=ExecutorConfig())
    assert not result.ok and attempts(tmp_path, "nan") == 1
    assert "ValueError: job nan: training loss is nan at step 2" in result.error


def test_local_worker_process_death_is_reported(tmp_path):
    (result,) = run_jobs(crash, [Job("oom", 1)], executor=ExecutorConfig(kind="local", workers=2))
    assert (result.name, result.ok, result.value) == ("oom", False, None)
    assert "BrokenProcessPool" in result.error


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # Ray workers cannot import this test module: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_runs_all_retries_once_then_reports(ray_cluster, tmp_path):
    results = run_jobs(
        square_or_fail, mixed_jobs(tmp_path), executor=ExecutorConfig(kind="ray", workers=2)
    )
    check_mixed(results, tmp_path)


def test_ray_gives_the_same_adapters_as_local(ray_cluster, tmp_path):
    local = train_two_controls(tmp_path / "local", ExecutorConfig(kind="local"))
    remote = train_two_controls(tmp_path / "ray", ExecutorConfig(kind="ray", workers=2))
    assert [(r["name"], r["status"]) for r in local] == [
        ("control:a", "trained"),
        ("control:b", "trained"),
    ]
    assert [(r["name"], r["status"]) for r in remote] == [
        ("control:a", "trained"),
        ("control:b", "trained"),
    ]
    for name in ("control__a", "control__b"):
        adapters_equal(tmp_path / "local" / "adapters" / name, tmp_path / "ray" / "adapters" / name)
    # and the two controls differ from each other (the comparison can fail)
    a = load_adapter(tmp_path / "ray" / "adapters" / "control__a")
    b = load_adapter(tmp_path / "ray" / "adapters" / "control__b")
    assert any(not a[k].equal(b[k]) for k in a)


def sft_config(sft_workers: int) -> RunConfig:
    return RunConfig(
        model=ModelConfig(base="random:llama-tiny", max_length=32),
        training=TrainingConfig(
            lr=1e-2, sft_steps=6, batch_size=4, eval_every=3, checkpoint_every=2, snapshot_every=3
        ),
        executor=ExecutorConfig(sft_workers=sft_workers),
    )


def train_sft(run_dir: Path, sft_workers: int) -> list[dict]:
    """The training stage restricted to the SFT job, over ``sft_workers`` Ray Train workers
    (1: in this process)."""
    from mossa.pipeline.train import run_training

    return run_training(run_dir, sft_config(sft_workers), TASKS, only=["sft"])


class Killed(Exception):
    """Stands for the process being killed."""


def start_sft_then_kill(run_dir: Path, after_step: int) -> None:
    """One-process SFT killed after ``after_step`` (its checkpoint stays in the work dir)."""
    import torch

    from mossa.models import load_base, resolve_base
    from mossa.pipeline.train import train_kwargs
    from mossa.run_dir import RunDir
    from mossa.training.jobs import plan_jobs
    from mossa.training.loop import train_lora

    cfg = sft_config(1)
    job = plan_jobs(TASKS, cfg)[0]
    model, tokenizer = load_base(resolve_base(cfg.model.base))

    def kill(step):
        if step == after_step:
            raise Killed

    out_root = RunDir(run_dir).adapters_dir
    kwargs = train_kwargs(job, out_root, cfg, dtype=torch.float32)
    with pytest.raises(Killed):
        train_lora(model, tokenizer, job.train, job.val, **kwargs, progress=False, on_step=kill)


def test_ray_train_sft_over_two_workers_resumed_equals_one_process(ray_cluster, tmp_path):
    import csv
    import json

    one = train_sft(tmp_path / "one", 1)
    # killed after step 2 in one process, resumed from its checkpoint over two workers:
    # steps 3-6 (two validations, a snapshot) run data-parallel
    start_sft_then_kill(tmp_path / "two", after_step=2)
    two = train_sft(tmp_path / "two", 2)
    assert [(r["name"], r["status"]) for r in one + two] == [("sft", "trained")] * 2
    left, right = tmp_path / "one" / "adapters" / "sft", tmp_path / "two" / "adapters" / "sft"
    x, y = load_adapter(left), load_adapter(right)
    assert x.keys() == y.keys() and x
    # the adapter moved (lora_B starts at zero), so equality below is not of untrained weights
    assert any(float(v.abs().max()) > 1e-3 for k, v in y.items() if "lora_B" in k)
    for k in x:  # same global batch: the same update up to float summation order
        assert torch_allclose(x[k], y[k], atol=1e-5, rtol=1e-4), k

    def losses(path):
        with (path / "train_log.csv").open() as fh:
            return [(r["step"], float(r["loss"]), int(r["tokens"])) for r in csv.DictReader(fh)]

    a, b = losses(left), losses(right)
    assert [(s, n) for s, _, n in a] == [(s, n) for s, _, n in b]  # global tokens per step
    assert all(abs(la - lb) < 1e-4 for (_, la, _), (_, lb, _) in zip(a, b, strict=True))
    assert not (tmp_path / "two" / "adapters" / ".ray_train").exists()  # Ray's records go
    summary = json.loads((right / "training.json").read_text())
    assert summary["data_parallel_workers"] == 2 and summary["snapshot_steps"] == [3, 6]
    whole = json.loads((left / "training.json").read_text())["tokens_this_session"]
    assert 0 < summary["tokens_this_session"] < whole  # it resumed: steps 3-6 only
    for step in (3, 6):  # snapshots come from the main worker too
        assert (right / "snapshots" / f"step-{step:08d}" / "adapter_model.safetensors").is_file()


def torch_allclose(x, y, **tol) -> bool:
    import torch

    return torch.allclose(x, y, **tol)


def test_sft_workers_need_a_row_each(tmp_path):
    from mossa.pipeline.train import check_sft_workers

    cfg = RunConfig(training=TrainingConfig(batch_size=2), executor=ExecutorConfig(sft_workers=3))
    with pytest.raises(ValueError, match=r"sft_workers=3 needs training.batch_size >= 3"):
        check_sft_workers(cfg)


def test_ray_jobs_asking_for_missing_gpus_fail_before_starting(ray_cluster, tmp_path):
    executor = ExecutorConfig(kind="ray", workers=1, gpus_per_job=1)
    with pytest.raises(
        ValueError, match=r"gpus_per_job=1 asks for 1 GPU\(s\) but the Ray cluster has 0"
    ):
        run_jobs(square_or_fail, [Job("j", 2, str(tmp_path))], executor=executor)
    assert not (tmp_path / "j").exists()  # the job never ran
