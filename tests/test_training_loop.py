"""The LoRA training loop: it learns, it resumes exactly, it refuses bad input up front."""

from __future__ import annotations

import csv
import json
from collections import namedtuple

import pytest
import torch
from safetensors.torch import load_file

from char_models import make_llama, make_tokenizer
from mossa.config import TrainingConfig
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


def test_early_stopping_keeps_best_weights(tmp_path):
    # a huge learning rate overshoots: validation loss stops improving, patience 1 stops it
    summary = train(tmp_path, steps=40, training=cfg(lr=3.0, eval_every=2, patience=1))
    assert summary["stopped_early"] and summary["steps"] < 40
    rows = read_log(tmp_path / "a" / "train_log.csv")
    vals = {int(r["step"]): float(r["val_loss"]) for r in rows if r["val_loss"]}
    best_step = min(vals, key=vals.get)
    assert summary["best_step"] == best_step
    assert json.loads((tmp_path / "a" / "training.json").read_text())["best_step"] == best_step


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
