"""The compute section: device and dtype resolution, bf16 training and extraction on CPU,
refusals before any work, and real-shape presets built on the meta device."""

from __future__ import annotations

import csv
import hashlib
import json
import resource
import subprocess
import sys
import time
from collections import namedtuple

import pytest
import torch

from char_models import make_llama, make_tokenizer
from mossa.config import ComputeConfig, TrainingConfig, load_config
from mossa.inference.hidden_states import extract_hidden_states
from mossa.models import load_base
from mossa.models.device import resolve_compute
from mossa.models.presets import meta_model
from mossa.training.loop import train_lora

pytestmark = pytest.mark.usefixtures("one_thread")

Item = namedtuple("Item", "prompt target")
ITEMS = [Item(f"{d}:", " " + "abcdefghij"[d]) for d in range(10)] * 4
# bf16 keeps 8 bits of mantissa: states of a 4-layer random model agree to about 2^-8 of
# their scale after a few rounding steps; 5% of the layer's largest state bounds that
BF16_TOLERANCE = 0.05


def test_auto_is_float32_on_cpu_and_names_resolve():
    assert resolve_compute(ComputeConfig()) == (torch.device("cpu"), torch.float32)
    assert resolve_compute(ComputeConfig(device="cpu", dtype="bfloat16")) == (
        torch.device("cpu"),
        torch.bfloat16,
    )


@pytest.mark.parametrize("bad", ["gpu", "cuda0", "cuda:x", "CPU"])
def test_unknown_device_names_are_config_errors(bad):
    with pytest.raises(ValueError, match=r"compute\.device.*expected auto, cpu, cuda, cuda:N"):
        load_config(profile="demo-smoke", overrides=[f"compute.device={bad}"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_exits_2_before_writing_anything(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mossa.cli", "run", "--profile", "demo-smoke", "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--set", "compute.device=cuda"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "compute.device=cuda: CUDA is not available" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("bitsandbytes") is not None,
    reason="bitsandbytes is installed",
)
def test_quantised_load_without_bitsandbytes_names_the_extra():
    with pytest.raises(ValueError, match=r"compute\.load_in=4bit needs bitsandbytes.*mossa\[gpu\]"):
        resolve_compute(ComputeConfig(load_in="4bit"))


def _train(tmp_path, dtype, steps=30):
    model = make_llama().to(dtype)
    training = TrainingConfig(lr=3e-2, batch_size=8, eval_every=10, checkpoint_every=10)
    train_lora(
        model,
        make_tokenizer(),
        ITEMS,
        ITEMS[:10],
        out_dir=tmp_path / "a",
        steps=steps,
        training=training,
        seed=7,
        max_length=32,
        progress=False,
        dtype=dtype,
    )
    with open(tmp_path / "a" / "train_log.csv", newline="") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)], model


def test_bfloat16_trains_with_float32_lora_weights(tmp_path):
    losses, model = _train(tmp_path, torch.bfloat16)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:3]) / 3, losses
    lora = {n: p.dtype for n, p in model.named_parameters() if "lora_" in n}
    assert lora and set(lora.values()) == {torch.float32}
    base = {p.dtype for n, p in model.named_parameters() if "lora_" not in n}
    assert base == {torch.bfloat16}


def test_bfloat16_states_are_float32_and_close_to_float32_states():
    model, tokenizer = load_base("random:llama-tiny")
    prompts = ["the cat sat", "a much longer prompt about dogs", "x"]
    reference = extract_hidden_states(model, tokenizer, prompts)
    states = extract_hidden_states(
        model.to(torch.bfloat16), tokenizer, prompts, dtype=torch.bfloat16
    )
    assert states.dtype == torch.float32 and states.shape == reference.shape
    scale = reference.abs().amax(dim=(1, 2), keepdim=True)
    assert ((states - reference).abs() / scale).max() < BF16_TOLERANCE
    assert not torch.equal(states, reference)  # the bf16 path really ran


def test_gradient_checkpointing_gives_the_same_loss(tmp_path):
    training = TrainingConfig(lr=3e-2, batch_size=8, eval_every=10, checkpoint_every=10)
    runs = []
    for ckpt in (False, True):
        model = make_llama()
        train_lora(
            model,
            make_tokenizer(),
            ITEMS,
            [],
            out_dir=tmp_path / str(ckpt),
            steps=4,
            training=training,
            seed=7,
            max_length=32,
            progress=False,
            gradient_checkpointing=ckpt,
        )
        assert any(getattr(m, "gradient_checkpointing", False) for m in model.modules()) == ckpt
        with open(tmp_path / str(ckpt) / "train_log.csv", newline="") as fh:
            runs.append([float(r["loss"]) for r in csv.DictReader(fh)])
    assert runs[0] == pytest.approx(runs[1], rel=1e-5)


def test_llama_2_7b_is_built_on_meta_fast_without_memory():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    t0 = time.perf_counter()
    model = meta_model("llama-2-7b")
    seconds = time.perf_counter() - t0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert seconds < 5
    assert grown_mb < 500  # 27 GB if the weights were real
    n = sum(p.numel() for p in model.parameters())
    assert n == pytest.approx(6.74e9, rel=0.01)
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_real_shape_preset_is_materialised_at_load_time(tmp_path, monkeypatch):
    """The cache holds no weights; load_base makes them, the same from the same seed."""
    from mossa.models import presets

    tiny = presets.Preset("LlamaForCausalLM", presets.PRESETS["llama-tiny"].make_config)
    monkeypatch.setitem(presets.SHAPED, "shaped-tiny", tiny)
    first, _ = load_base("random:shaped-tiny", cache_dir=tmp_path)
    again, _ = load_base("random:shaped-tiny", cache_dir=tmp_path, dtype=torch.bfloat16)
    (path,) = tmp_path.glob("random-shaped-tiny-*")
    assert not list(path.glob("*.safetensors"))
    assert (path / presets.RANDOM_INIT_FILE).is_file()
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert b.dtype == (torch.bfloat16 if a.is_floating_point() else a.dtype)
        assert torch.allclose(a, b.float(), rtol=1e-2, atol=1e-2), name
    weights = first.model.layers[0].self_attn.q_proj.weight
    assert 0.01 < float(weights.detach().std()) < 0.03  # initializer_range 0.02, not empty memory


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (gpu_check.sh)")


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = a.abs().amax(dim=(1, 2), keepdim=True)
    return float(((a - b.cpu()).abs() / scale).max())


@cuda
def test_cuda_states_equal_cpu_states():
    prompts = [f"prompt {i} about {'x' * i}" for i in range(20)]
    model, tokenizer = load_base("random:llama-tiny")
    reference = extract_hidden_states(model, tokenizer, prompts)
    on_gpu, _ = load_base("random:llama-tiny", device="cuda")
    assert _rel_err(reference, extract_hidden_states(on_gpu, tokenizer, prompts)) < 1e-4
    bf16, _ = load_base("random:llama-tiny", device="cuda", dtype=torch.bfloat16)
    states = extract_hidden_states(bf16, tokenizer, prompts, dtype=torch.bfloat16)
    assert states.dtype == torch.float32
    assert _rel_err(reference, states) < BF16_TOLERANCE


@cuda
def test_cuda_cka_equals_cpu_cka():
    from mossa.similarity import cka

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 64, 32, generator=gen)
    y = x + 0.5 * torch.randn(3, 64, 32, generator=gen)
    assert abs(cka(x, y) - cka(x.cuda(), y.cuda())).max() < 1e-6


@cuda
def test_cuda_training_steps_equal_cpu_steps(tmp_path):
    losses = []
    for device in ("cpu", "cuda"):
        model = make_llama().to(device)
        train_lora(
            model,
            make_tokenizer(),
            ITEMS,
            [],
            out_dir=tmp_path / device,
            steps=3,
            training=TrainingConfig(lr=3e-2, batch_size=8, checkpoint_every=10),
            seed=7,
            max_length=32,
            progress=False,
        )
        with open(tmp_path / device / "train_log.csv", newline="") as fh:
            losses.append([float(r["loss"]) for r in csv.DictReader(fh)])
    # LoRA B starts at zero: the first loss is the base's, the same on both devices; LoRA A
    # is drawn from each device's own generator, so later steps differ slightly
    assert losses[1][0] == pytest.approx(losses[0][0], rel=1e-4)
    assert losses[1][-1] < losses[1][0] and losses[1][-1] == pytest.approx(losses[0][-1], rel=0.1)


def test_precision_is_part_of_the_model_stages_inputs():
    """A run trained in float32 is not silently continued in bf16 (or 4-bit)."""
    from mossa.pipeline.runner import STAGES, stage_hash

    plain = load_config(profile="demo-smoke", overrides=["compute.dtype=float32"])
    auto = load_config(profile="demo-smoke")
    bf16 = load_config(profile="demo-smoke", overrides=["compute.dtype=bfloat16"])
    sized = load_config(profile="demo-smoke", overrides=["compute.gpu_memory_gb=80"])
    data = plain.model_dump(mode="json")
    for stage in STAGES:
        before = json.dumps({k: data[k] for k in stage.sections}, sort_keys=True)
        assert stage_hash(plain, stage) == hashlib.sha256(before.encode()).hexdigest()[:16]
        assert stage_hash(plain, stage) == stage_hash(sized, stage)  # planning only
        if torch.cuda.is_available() or stage.name == "tasks":
            continue
        assert stage_hash(auto, stage) == stage_hash(plain, stage)  # auto is float32 here
        assert stage_hash(bf16, stage) != stage_hash(plain, stage), stage.name
