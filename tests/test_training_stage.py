"""The training and evaluation stages on a run directory, and their CLI commands."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from peft import PeftModel
from typer.testing import CliRunner

import mossa.inference.generation as generation
import mossa.pipeline.evaluate as evaluation
import mossa.pipeline.train as stage
from mossa.cli import app
from mossa.config import (
    AnalysisConfig,
    EvaluationConfig,
    ModelConfig,
    RunConfig,
    TasksConfig,
    TrainingConfig,
    dump_config,
)
from mossa.models import load_base
from mossa.pipeline.train import run_training
from mossa.tasks import UNSEEN_CLUSTER, Example, Task, Template
from mossa.training.loop import adapter_complete

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = "random:llama-tiny"


def make_task(name: str, cluster: str, seen: bool, metric: str, n_train: int = 12) -> Task:
    def examples(offset: int, n: int) -> tuple[Example, ...]:
        return tuple(
            Example({"x": f"{name} {i}"}, f"{name[0]}{i % 3}") for i in range(offset, offset + n)
        )

    return Task(
        name=name,
        cluster=cluster,
        seen=seen,
        templates=(Template("{x} ->"), Template("Answer for {x}:")),
        train=examples(0, n_train),
        validation=examples(100, 4),
        test=examples(200, 4),
        metric=metric,
        source="test",
    )


TASKS = [
    make_task("letters", "sentiment", True, "accuracy"),
    make_task("echo", "paraphrase", True, "rouge_l"),
    make_task("hidden", UNSEEN_CLUSTER, False, "bleu"),
]


def make_cfg(**training) -> RunConfig:
    t = dict(lr=5e-2, sft_steps=4, control_steps=3, batch_size=4, eval_every=2, checkpoint_every=2)
    return RunConfig(
        model=ModelConfig(base=BASE, max_length=64),
        training=TrainingConfig(**(t | training)),
        evaluation=EvaluationConfig(max_examples=4, max_new_tokens=4, batch_size=4),
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run")
    run_training(run_dir, make_cfg(), TASKS)
    return run_dir


def test_trains_sft_and_a_control_per_task_then_skips(trained_run):
    adapters = trained_run / "adapters"
    names = ["sft", "control__letters", "control__echo", "control__hidden"]
    assert sorted(p.name for p in adapters.iterdir()) == sorted(names)
    for name in names:
        assert adapter_complete(adapters / name)
        log = (adapters / name / "train_log.csv").read_text().splitlines()
        assert log[0] == "step,loss,lr,tokens,tokens_per_s,val_loss"
        assert len(log) == 1 + (4 if name == "sft" else 3)
    sft = json.loads((adapters / "sft" / "training.json").read_text())
    assert (sft["n_train"], sft["n_val"]) == (24, 8)  # the two seen tasks, mixed
    before = {n: (adapters / n / "adapter_model.safetensors").read_bytes() for n in names}
    records = run_training(trained_run, make_cfg(), TASKS)
    assert [r["status"] for r in records] == ["skipped"] * 4
    assert [r["name"] for r in records] == [
        "sft",
        "control:letters",
        "control:echo",
        "control:hidden",
    ]
    assert all(
        (adapters / n / "adapter_model.safetensors").read_bytes() == before[n] for n in names
    )


def test_controls_seen_only_and_only_filter(tmp_path):
    records = run_training(tmp_path, make_cfg(controls="seen"), TASKS, only=["control:echo"])
    assert [(r["name"], r["status"]) for r in records] == [("control:echo", "trained")]
    assert [p.name for p in (tmp_path / "adapters").iterdir()] == ["control__echo"]
    with pytest.raises(ValueError, match="--only 'control:hidden': no such job"):
        run_training(tmp_path, make_cfg(controls="seen"), TASKS, only=["control:hidden"])


def test_a_diverging_control_fails_by_name_and_publishes_nothing(tmp_path, monkeypatch):
    real = stage.train_lora

    def echo_diverges(*args, **kw):  # lr = inf for control:echo only
        if kw["name"] == "control:echo":
            lr_inf = kw["training"].model_dump() | {"lr": math.inf}
            kw["training"] = TrainingConfig.model_construct(**lr_inf)
        return real(*args, **kw)

    monkeypatch.setattr(stage, "train_lora", echo_diverges)
    with pytest.raises(
        stage.TrainingFailed,
        match=r"1 training job\(s\) failed \(control:echo\); first error: ValueError: "
        r"job control:echo: (training|validation) loss is (nan|-?inf) at step \d+;",
    ):
        run_training(tmp_path, make_cfg(), TASKS, only=["control:letters", "control:echo"])
    assert adapter_complete(tmp_path / "adapters" / "control__letters")
    assert not (tmp_path / "adapters" / "control__echo").exists()


def _bad(field: str, value) -> RunConfig:
    cfg = make_cfg()
    training = TrainingConfig.model_construct(**(cfg.training.model_dump() | {field: value}))
    return cfg.model_copy(update={"training": training})


@pytest.mark.parametrize(
    ("cfg", "tasks", "message"),
    [
        (
            make_cfg().model_copy(update={"model": ModelConfig(base="/no/such/model")}),
            TASKS,
            "model.base=./no/such/model.: model path not found: /no/such/model",
        ),
        (_bad("lr", 0.0), TASKS, "lr must be > 0, got 0.0"),
        (_bad("control_steps", 0), TASKS,
         r"job control:letters \(training.control_steps\): steps must be a positive"),
        (make_cfg(), [*TASKS, make_task("empty", "nli", True, "accuracy", 0)],
         "task 'empty' has no training examples"),
        (make_cfg(target_modules=["q_proj", "c_attn"]), TASKS,
         r"\['c_attn'\] not found in LlamaForCausalLM; its linear modules are: down_proj, "
         "gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj"),
    ],
    ids=["missing-model", "lr-zero", "zero-steps", "task-without-examples", "missing-module"],
)  # fmt: skip
def test_bad_input_raises_before_any_training(tmp_path, cfg, tasks, message):
    with pytest.raises(ValueError, match=message):
        run_training(tmp_path, cfg, tasks)
    assert not (tmp_path / "adapters").exists()


def test_evaluation_switches_adapters_like_fresh_models(trained_run, monkeypatch):
    """Answers behind each score equal those of freshly loaded base / base+adapter models."""
    cfg = make_cfg()
    answers: list[list[str]] = []

    def record(metric, predictions, references):
        answers.append(list(predictions))
        return [float(len(answers))] * len(predictions)

    monkeypatch.setattr(generation, "example_scores", record)
    monkeypatch.setattr(generation, "aggregate", lambda metric, examples: examples[0])
    evaluation.run_evaluation(trained_run, cfg, TASKS)
    records = json.loads((trained_run / "eval" / "task_metrics.json").read_text())
    assert [(r["task"], r["cluster"], r["metric"]) for r in records] == [
        ("letters", "sentiment", "accuracy"),
        ("echo", "paraphrase", "rouge_l"),
        ("hidden", UNSEEN_CLUSTER, "bleu"),
    ]
    # scored model by model: the base on every task, then the SFT model, then each control
    assert [(r["base"], r["sft"], r["control"]) for r in records] == [
        (1.0, 4.0, 7.0), (2.0, 5.0, 8.0), (3.0, 6.0, 9.0)
    ]  # fmt: skip

    ev = cfg.evaluation
    for i, task in enumerate(TASKS):
        prompts, _ = generation.eval_prompts(task, ev.max_examples, cfg.seed)
        fresh = []
        for adapter in (None, "sft", f"control__{task.name}"):
            model, tok = load_base(BASE)
            if adapter:
                model = PeftModel.from_pretrained(model, trained_run / "adapters" / adapter)
            out = generation.generate_answers(
                model, tok, prompts, max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size,
                max_length=cfg.model.max_length,
            )  # fmt: skip
            fresh.append([a.split("\n", 1)[0].strip() for a in out])
        assert answers[i :: len(TASKS)] == fresh, task.name
    # adapters change answers: base vs SFT vs control on some task
    assert any(answers[k] != answers[k + 3] for k in range(6))


def test_evaluation_needs_the_adapters(tmp_path):
    with pytest.raises(ValueError, match=r"adapters/sft: no finished adapter; run the training"):
        evaluation.run_evaluation(tmp_path, make_cfg(), TASKS)


def test_cli_train_and_evaluate(tmp_path):
    cfg = make_cfg().model_copy(
        update={
            "tasks": TasksConfig(
                clusters=["sentiment"], tasks_per_cluster=1, n_train=8, n_validation=4, n_test=4
            ),
            # one task: no other task's control to measure task specificity against
            "analysis": AnalysisConfig(cross_task_controls=0),
        }
    )
    (tmp_path / "config.resolved.yaml").write_text(dump_config(cfg))
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(tmp_path), "--only", "sft"])
    assert result.exit_code == 0, result.output
    assert "sft: trained 4 steps" in result.output
    result = runner.invoke(app, ["train", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "sft: skipped" in result.output and "control:tweet_sentiment: trained" in result.output
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (rec,) = json.loads((tmp_path / "eval" / "task_metrics.json").read_text())
    assert rec["task"] == "tweet_sentiment" and rec["metric"] == "accuracy"


def test_cli_bad_input_exit_code(tmp_path):
    mossa = Path(sys.executable).parent / "mossa"
    done = subprocess.run([str(mossa), "train", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "config.resolved.yaml not found" in done.stderr


def test_evaluation_over_two_worker_processes_equals_one(trained_run, tmp_path):
    """Models packed into two spawned jobs give the records of the stage run in process."""
    import shutil

    from mossa.config import ExecutorConfig

    records = {}
    for workers in (1, 2):
        run = tmp_path / f"w{workers}"
        shutil.copytree(trained_run, run)
        cfg = make_cfg().model_copy(update={"executor": ExecutorConfig(workers=workers)})
        evaluation.run_evaluation(run, cfg, TASKS)
        records[workers] = json.loads((run / "eval" / "task_metrics.json").read_text())
    assert records[1] == records[2]
    assert [r["task"] for r in records[2]] == [t.name for t in TASKS]
    assert all(r[m] is not None for r in records[2] for m in ("base", "sft", "control"))
