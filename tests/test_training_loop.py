"""The LoRA training loop: it learns, it resumes exactly, it refuses bad input up front."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mossa.training.loop as loop
from char_models import make_llama, make_tokenizer
from mossa.config import TrainingConfig
from mossa.run_dir import snapshot_steps
from mossa.training.loop import adapter_complete, train_lora

pytestmark = pytest.mark.usefixtures("one_thread")

Item = namedtuple("Item", "prompt target")
# digit -> letter: learnable by LoRA on q/v of a 2-layer model within a few dozen steps
ITEMS = [Item(f"{d}:", " " + "abcdefghij"[d]) for d in range(10)] * 4
VAL = [Item(f"{d}:", " " + "abcdefghij"[d]) for d in range(10)]


def cfg(**kw) -> TrainingConfig:
    base = dict(lr=3e-2, batch_size=8, eval_every=4, checkpoint_every=4, patience=100)
    return TrainingConfig(**(base | kw))


def read_log(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def train(tmp_path, name="a", steps=12, training=None, **kw):
    return train_lora(
        make_llama(),
        make_tokenizer(),
        kw.pop("items", ITEMS),
        kw.pop("val", VAL),
        out_dir=tmp_path / name,
        steps=steps,
        training=training or cfg(),
        seed=7,
        max_length=32,
        name=name,
        progress=False,
        **kw,
    )


def test_loss_goes_down(tmp_path):
    summary = train(tmp_path, steps=30, training=cfg(eval_every=5))
    rows = read_log(tmp_path / "a" / "train_log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 31))
    losses = [float(r["loss"]) for r in rows]
    first, last = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    vals = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert len(vals) == 6 and vals[-1] < 0.5 * vals[0]
    assert summary["best_val_loss"] == pytest.approx(min(vals), abs=1e-6)
    assert all(float(r["tokens_per_s"]) > 0 and float(r["lr"]) > 0 for r in rows)
    assert adapter_complete(tmp_path / "a")
    assert not (tmp_path / ".a.work").exists()


def test_resume_after_kill_gives_the_same_adapter(tmp_path):
    train(tmp_path, "full", steps=14)  # 40 examples / batch 8: crosses two epoch boundaries

    class Killed(RuntimeError):
        pass

    def kill_at_7(step):
        if step == 7:
            raise Killed

    with pytest.raises(Killed):
        train(tmp_path, "resumed", steps=14, on_step=kill_at_7)
    assert not (tmp_path / "resumed").exists()  # no half-finished adapter
    assert [p.name for p in (tmp_path / ".resumed.work").glob("ckpt-*")] == ["ckpt-00000004"]

    seen = []
    summary = train(tmp_path, "resumed", steps=14, on_step=seen.append)
    assert seen[0] == 5, "the second session must continue from the step-4 checkpoint"
    assert summary["steps"] == 14

    full = load_file(tmp_path / "full" / "adapter_model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "adapter_model.safetensors")
    assert full.keys() == resumed.keys() and len(full) == 8  # 2 layers x q,v x A,B
    for k in full:
        assert torch.allclose(full[k], resumed[k], atol=1e-6, rtol=0), k
    log_full = read_log(tmp_path / "full" / "train_log.csv")
    log_resumed = read_log(tmp_path / "resumed" / "train_log.csv")
    assert [r["step"] for r in log_resumed] == [str(s) for s in range(1, 15)]
    for a, b in zip(log_full, log_resumed, strict=True):
        assert (a["loss"], a["lr"], a["val_loss"]) == (b["loss"], b["lr"], b["val_loss"])


def lora_weights(model) -> dict[str, torch.Tensor]:
    """The LoRA weights PEFT injected into ``model``, keyed as in adapter_model.safetensors."""
    return {
        "base_model.model." + n.replace(".default", ""): p.detach().clone()
        for n, p in model.named_parameters()
        if "lora_" in n
    }


def fake_validation(monkeypatch, values: list[float]) -> list[int]:
    """Make the loop's validation losses ``values``, in order; returns the evaluated steps."""
    evaluated = []

    def validation_loss(model, examples, batch_size, pad_id, dp=None):
        evaluated.append(len(evaluated))
        return values[len(evaluated) - 1]

    monkeypatch.setattr(loop, "validation_loss", validation_loss)
    return evaluated


def test_early_stopping_keeps_best_weights(tmp_path, monkeypatch):
    # evaluations at steps 2, 4, 6, 8: best at 4, then two without improvement (patience 2)
    # stop the job at step 8, before the better fifth value is ever asked for
    evaluated = fake_validation(monkeypatch, [3.0, 2.0, 2.5, 2.6, 1.0])
    model, seen = make_llama(), {}
    summary = train_lora(
        model, make_tokenizer(), ITEMS, VAL, out_dir=tmp_path / "a", steps=40,
        training=cfg(eval_every=2, patience=2), seed=7, max_length=32, progress=False,
        on_step=lambda step: seen.update({step: lora_weights(model)}),
    )  # fmt: skip
    assert len(evaluated) == 4 and sorted(seen) == list(range(1, 9))
    assert summary["steps"] == 8 and summary["stopped_early"]
    assert (summary["best_step"], summary["best_val_loss"]) == (4, 2.0)
    published = json.loads((tmp_path / "a" / "training.json").read_text())
    assert (published["steps"], published["stopped_early"]) == (8, True)
    assert (published["best_step"], published["best_val_loss"]) == (4, 2.0)
    rows = read_log(tmp_path / "a" / "train_log.csv")
    assert {int(r["step"]): float(r["val_loss"]) for r in rows if r["val_loss"]} == {
        2: 3.0, 4: 2.0, 6: 2.5, 8: 2.6,
    }  # fmt: skip
    saved = load_file(tmp_path / "a" / "adapter_model.safetensors")
    assert saved.keys() == seen[4].keys() and len(saved) == 8
    assert all(torch.equal(saved[k], seen[4][k]) for k in saved)
    assert any(not torch.equal(saved[k], seen[8][k]) for k in saved)


def nan_loss_at(monkeypatch, step: int) -> None:
    """Make the training loss of optimiser step ``step`` NaN (validation stays real)."""
    real, calls = loop.target_only_loss, []

    def target_only_loss(model, **batch):
        loss = real(model, **batch)
        if torch.is_grad_enabled():  # a training step, not validation
            calls.append(step)
            if len(calls) == step:
                return loss * math.nan
        return loss

    monkeypatch.setattr(loop, "target_only_loss", target_only_loss)


@pytest.mark.parametrize(
    ("diverge", "training", "message"),
    [
        (lambda mp: nan_loss_at(mp, 6), cfg(), "job a: training loss is nan at step 6;"),
        (
            lambda mp: fake_validation(mp, [3.0, math.inf]),
            cfg(),
            "job a: validation loss is inf at step 8;",
        ),
        (  # lr = inf, past TrainingConfig's own validation: the loop must still guard
            lambda mp: None,
            TrainingConfig.model_construct(**(cfg().model_dump() | {"lr": math.inf})),
            r"job a: (training|validation) loss is (nan|-?inf) at step \d+;",
        ),
    ],
    ids=["nan-training-loss", "inf-validation-loss", "infinite-lr"],
)
def test_non_finite_loss_stops_the_job_and_publishes_nothing(
    tmp_path, monkeypatch, diverge, training, message
):
    diverge(monkeypatch)
    with pytest.raises(ValueError, match=message):
        train(tmp_path, steps=12, training=training)
    assert not (tmp_path / "a").exists() and not (tmp_path / ".a.tmp").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be a positive integer, got 0"),
        ({"items": []}, "no training examples"),
        (
            {"training": TrainingConfig.model_construct(**(cfg().model_dump() | {"lr": 0.0}))},
            "lr must be > 0, got 0.0",
        ),
        (
            {"training": cfg(target_modules=["q_proj", "query_key_value"])},
            r"\['query_key_value'\] not found in LlamaForCausalLM; its linear modules are: "
            r"down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj",
        ),
    ],
    ids=["zero-steps", "no-examples", "lr-zero", "missing-module"],
)
def test_bad_input_raises_before_training(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(tmp_path, **kwargs)
    assert not (tmp_path / "a").exists() and not (tmp_path / ".a.work").exists()


def test_config_refuses_nonpositive_lr_clearly():
    with pytest.raises(ValueError, match="lr must be > 0, got -0.1"):
        TrainingConfig(lr=-0.1)


def test_lora_on_a_tied_lm_head_saves_only_the_adapter_and_reloads_equal(tmp_path, recwarn):
    from peft import PeftModel

    model = make_llama(tied=True)
    training = cfg(target_modules=["q_proj", "v_proj", "lm_head"])
    train_lora(
        model, make_tokenizer(), ITEMS, VAL, out_dir=tmp_path / "a", steps=8,
        training=training, seed=7, max_length=32, progress=False,
    )  # fmt: skip
    saved = load_file(tmp_path / "a" / "adapter_model.safetensors")
    assert any("lm_head.lora_B" in k for k in saved)
    assert all("lora_" in k for k in saved), [k for k in saved if "lora_" not in k]
    noise = ("tie_word_embeddings", "is_gradient_checkpointing")  # see quiet_peft
    assert not [w for w in recwarn if any(n in str(w.message) for n in noise)]
    x = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.no_grad():
        trained = model(x).logits
        fresh = PeftModel.from_pretrained(make_llama(tied=True), tmp_path / "a")(x).logits
        base = make_llama(tied=True)(x).logits
    assert torch.allclose(trained, fresh, atol=1e-5)
    assert not torch.allclose(trained, base, atol=1e-3)  # the adapter changed something


HASHSEED_SCRIPT = """
import sys
from collections import namedtuple

import torch
from char_models import make_llama, make_tokenizer
from mossa.config import TrainingConfig
from mossa.training.loop import train_lora

torch.set_num_threads(1)
Item = namedtuple("Item", "prompt target")
items = [Item(f"{d}:", " " + "abcdefghij"[d]) for d in range(10)]
training = TrainingConfig(
    lr=3e-2, batch_size=4, eval_every=2, target_modules=["v_proj", "q_proj", "o_proj", "k_proj"]
)
train_lora(
    make_llama(), make_tokenizer(), items, items[:4], out_dir=sys.argv[1], steps=3,
    training=training, seed=7, max_length=32, progress=False,
)
"""


def test_adapter_files_do_not_depend_on_the_hash_seed(tmp_path):
    # PEFT holds target_modules in a set; its order (hash order) must not reach the files
    tests_dir = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HASHSEED_SCRIPT, str(tmp_path / seed)],
            env=os.environ
            | {"PYTHONHASHSEED": seed, "PYTHONPATH": tests_dir, "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in ("1", "2")
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
    config = json.loads((tmp_path / "1" / "adapter_config.json").read_text())
    assert config["target_modules"] == ["k_proj", "o_proj", "q_proj", "v_proj"]


def test_snapshots_keep_the_adapter_of_every_kth_step_and_survive_a_kill(tmp_path):
    """Snapshots hold the weights of their step: the one at the last step equals an
    adapter trained for that many steps without validation, the earlier ones differ; a
    killed and resumed job ends with the same snapshots as an uninterrupted one."""
    no_val = {"val": []}
    summary = train(tmp_path, "snap", steps=10, snapshot_every=4, **no_val)
    assert summary["snapshot_steps"] == [4, 8, 10]
    assert snapshot_steps(tmp_path / "snap") == [4, 8, 10]
    folder = tmp_path / "snap" / loop.SNAPSHOTS
    for step in (4, 8, 10):
        assert adapter_complete_snapshot(folder / loop.snapshot_name(step))
    last = load_file(folder / "step-00000010" / "adapter_model.safetensors")
    final = load_file(tmp_path / "snap" / "adapter_model.safetensors")
    first = load_file(folder / "step-00000004" / "adapter_model.safetensors")
    assert all(torch.equal(last[k], final[k]) for k in final)
    assert any(not torch.equal(first[k], final[k]) for k in final)

    class Killed(RuntimeError):
        pass

    def kill_at_6(step):
        if step == 6:
            raise Killed

    with pytest.raises(Killed):
        train(tmp_path, "again", steps=10, snapshot_every=4, on_step=kill_at_6, **no_val)
    train(tmp_path, "again", steps=10, snapshot_every=4, **no_val)
    for step in (4, 8, 10):
        name = f"{loop.SNAPSHOTS}/{loop.snapshot_name(step)}/adapter_model.safetensors"
        a, b = load_file(tmp_path / "snap" / name), load_file(tmp_path / "again" / name)
        assert all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a), step


def adapter_complete_snapshot(path: Path) -> bool:
    from mossa.io import checksums_match

    return all((path / f).is_file() for f in loop.SNAPSHOT_FILES) and checksums_match(path)


def test_snapshot_every_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="snapshot_every must be a positive integer"):
        train(tmp_path, steps=2, snapshot_every=0)
