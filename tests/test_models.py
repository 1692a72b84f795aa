"""Base models: specs, random presets, padding, hidden states, the tiny build, gemma."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from mossa.cli import app
from mossa.models import (
    TinyConfig,
    build_tiny,
    load_base,
    load_tokenizer,
    num_layers,
    presets,
    resolve_base,
    tiny,
)
from mossa.models.cache import PARTIAL_PREFIX, config_hash, ensure_entry

MOSSA = Path(sys.executable).parent / "mossa"

# A tiny-model build that takes a second or two: same code path as the bundled model.
SMALL = TinyConfig(
    n_layers=2,
    hidden_size=32,
    n_heads=4,
    intermediate_size=64,
    context_length=64,
    vocab_size=320,
    n_val_docs=20,
    max_wiki_docs=150,
    max_tweets=150,
    steps=8,
    batch_size=4,
    lr=1e-2,
    warmup_steps=1,
    eval_every=4,
    max_val_blocks=8,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mossa-cache")


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    return build_tiny(SMALL, cache_dir=tmp_path_factory.mktemp("tiny-a"), threads=1, progress=False)


def _blocks(model) -> torch.nn.ModuleList:
    """The model's list of transformer blocks, found by structure (independent of config)."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    return max(lists, key=len)


# --------------------------------------------------------------------------- random presets


@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
def test_random_preset_loads_left_padded_with_all_hidden_states(preset, cache):
    model, tokenizer = load_base(f"random:{preset}", cache_dir=cache)
    assert not model.training
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    batch = tokenizer(["a much longer prompt", "hi"], return_tensors="pt", padding=True)
    short_len = len(tokenizer("hi").input_ids)
    n_pad = batch.input_ids.shape[1] - short_len
    assert n_pad > 0
    assert batch.attention_mask[1, :n_pad].sum() == 0 and batch.attention_mask[:, -1].all()
    assert (batch.input_ids[1, :n_pad] == tokenizer.pad_token_id).all()
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    n_blocks = len(_blocks(model))
    assert num_layers(model) == n_blocks == 4
    assert len(out.hidden_states) == n_blocks + 1
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if preset == "gpt2-tiny":
        assert "c_attn" in names and "q_proj" not in names
        assert tokenizer.pad_token == tokenizer.eos_token  # GPT-2 style: pad with eos
    else:
        assert {"q_proj", "v_proj"} <= names
        assert tokenizer.pad_token == "<pad>" != tokenizer.eos_token
        assert batch.input_ids[0, 0] == tokenizer.bos_token_id


@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
def test_random_preset_weights_equal_a_plain_seeded_init(preset, cache, tmp_path):
    path = resolve_base(f"random:{preset}", cache_dir=cache)
    other = resolve_base(f"random:{preset}", cache_dir=tmp_path)
    assert path != other
    torch.manual_seed(presets.SEED)
    reference = presets.PRESETS[preset].model().state_dict()
    for saved in (load_file(path / "model.safetensors"), load_file(other / "model.safetensors")):
        assert saved.keys() <= reference.keys()
        for name, tensor in saved.items():
            assert torch.equal(tensor, reference[name]), name


def test_resolve_base_reuses_the_cached_preset(cache):
    first = resolve_base("random:llama-tiny", cache_dir=cache)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_base("random:llama-tiny", cache_dir=cache) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("preset", ["llama-tiny", "gemma3-tiny"])
def test_last_hidden_state_has_the_final_norm_and_the_others_do_not(preset, cache):
    """Documents HF's convention (docs/models.md): only hidden_states[L] is normed."""
    model, tokenizer = load_base(f"random:{preset}", cache_dir=cache)
    outputs = []
    hooks = [
        block.register_forward_hook(
            lambda _m, _i, out: outputs.append(out[0] if isinstance(out, tuple) else out)
        )
        for block in _blocks(model)
    ]
    with torch.no_grad():
        hidden = model(**tokenizer(["some text"], return_tensors="pt"), output_hidden_states=True)
    for hook in hooks:
        hook.remove()
    states = hidden.hidden_states
    for layer in range(1, len(states) - 1):
        assert torch.equal(states[layer], outputs[layer - 1])
    final_norm = model.model.norm
    assert torch.allclose(states[-1], final_norm(outputs[-1]), atol=1e-6)
    assert not torch.allclose(states[-1], outputs[-1], atol=1e-3)


def test_tokenizer_without_pad_or_eos_gets_an_added_pad_and_resized_embeddings(cache, tmp_path):
    source = resolve_base("random:gpt2-tiny", cache_dir=cache)
    path = shutil.copytree(source, tmp_path / "no-eos")
    config_file = path / "tokenizer_config.json"
    settings = json.loads(config_file.read_text())
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        settings.pop(key, None)
    config_file.write_text(json.dumps(settings))
    model, tokenizer = load_base(path)
    assert tokenizer.eos_token is None and tokenizer.pad_token == "<pad>"
    assert tokenizer.pad_token_id == 257 == len(tokenizer) - 1
    assert model.get_input_embeddings().num_embeddings == 258
    assert model.config.pad_token_id == 257
    batch = tokenizer(["abc", "a"], return_tensors="pt", padding=True)
    assert batch.input_ids[1, 0] == 257
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()


def test_load_tokenizer_accepts_a_spec_or_a_directory(cache):
    path = resolve_base("random:llama-tiny", cache_dir=cache)
    by_spec = load_tokenizer("random:llama-tiny", cache_dir=cache)
    by_path = load_tokenizer(path)
    assert by_spec("héllo").input_ids == by_path("héllo").input_ids
    assert by_spec.decode(by_spec("héllo").input_ids, skip_special_tokens=True) == "héllo"
    assert by_path.padding_side == "left" and by_path.truncation_side == "left"


def test_num_layers_sees_through_peft_and_rejects_non_models(cache):
    from peft import LoraConfig, get_peft_model

    model, _ = load_base("random:llama-tiny", cache_dir=cache)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    assert num_layers(wrapped) == 4
    with pytest.raises(ValueError, match="config"):
        num_layers(torch.nn.Linear(2, 2))


# --------------------------------------------------------------------------- specs and errors


def test_resolve_base_returns_a_local_model_directory(cache):
    path = resolve_base("random:llama-tiny", cache_dir=cache)
    assert resolve_base(str(path)) == path
    assert resolve_base(path) == path


@pytest.mark.parametrize("spec", ["./no-such-model", "/no/such/model", "~/no-such-mossa-model"])
def test_missing_local_path_is_a_clear_error(spec):
    with pytest.raises(ValueError, match=f"model path not found: {spec}"):
        resolve_base(spec)


def test_directory_that_is_not_a_model_is_rejected(tmp_path, cache):
    with pytest.raises(ValueError, match="no config.json"):
        resolve_base(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no \\*.safetensors"):
        resolve_base(tmp_path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("random:nope", "unknown random preset 'nope'.*random:llama-tiny"),
        ("", "non-empty"),
        ("not a hub name!", "not a local directory, a bundled model"),
    ],
)
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_base(spec)


def test_hub_name_with_hub_offline_fails_fast_naming_the_spec(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="'nobody/no-such-model'.*offline"):
        resolve_base("nobody/no-such-model")
    assert time.perf_counter() - start < 5


def test_unreachable_hub_fails_fast_naming_the_spec(monkeypatch):
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # closed port
    start = time.perf_counter()
    with pytest.raises(ValueError, match="'nobody/no-such-model'.*unreachable"):
        resolve_base("nobody/no-such-model")
    assert time.perf_counter() - start < 15


def test_dtype_must_be_floating(cache):
    with pytest.raises(ValueError, match="dtype"):
        load_base("random:llama-tiny", cache_dir=cache, dtype=torch.int64)


# --------------------------------------------------------------------------- the tiny model


def test_tiny_build_is_cached_and_logs_a_falling_loss(small_build):
    path, info = small_build.path, small_build.info
    assert small_build.built and path.name == tiny.entry_name(SMALL)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    again = build_tiny(SMALL, cache_dir=path.parent, threads=1, progress=False)
    assert not again.built and again.path == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp

    lines = (path / tiny.LOG_NAME).read_text().splitlines()
    assert lines[0] == "step,lr,loss,tokens_per_s,val_loss" and len(lines) == SMALL.steps + 2
    assert abs(info["initial_val_loss"] - math.log(SMALL.vocab_size)) < 0.1  # uniform at init
    assert info["final_val_loss"] < info["initial_val_loss"] - 0.2
    assert info["n_params"] == sum(p.numel() for p in tiny.make_model(SMALL).parameters())


def test_tiny_validation_loss_matches_plain_cross_entropy_of_the_saved_model(small_build):
    """Reloaded weights + saved HF tokenizer reproduce the logged final validation loss."""
    model, tokenizer = load_base(small_build.path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert num_layers(model) == SMALL.n_layers and len(tokenizer) == SMALL.vocab_size
    _, val_texts = tiny.load_corpus(SMALL)
    ids = []
    for text in val_texts:
        ids += tokenizer(text).input_ids + [tokenizer.eos_token_id]
    t = SMALL.context_length
    blocks = torch.tensor(ids[: len(ids) // t * t]).view(-1, t)[: SMALL.max_val_blocks]
    with torch.no_grad():
        logits = model(input_ids=blocks).logits
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), blocks[:, 1:].reshape(-1)
    )
    assert losses.item() == pytest.approx(small_build.info["final_val_loss"], abs=1e-4)


def test_tiny_build_is_deterministic(small_build, tmp_path):
    other = build_tiny(SMALL, cache_dir=tmp_path, threads=1, progress=False)
    assert other.path.name == small_build.path.name
    first = load_file(small_build.path / "model.safetensors")
    second = load_file(other.path / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert (other.path / "tokenizer.json").read_bytes() == (
        small_build.path / "tokenizer.json"
    ).read_bytes()


def test_cache_key_changes_with_every_setting():
    names = {tiny.entry_name(SMALL)}
    for change in ({"steps": 9}, {"seed": 1}, {"vocab_size": 330}, {"n_layers": 3}):
        names.add(tiny.entry_name(SMALL.model_copy(update=change)))
    assert len(names) == 5


def test_bundled_tiny_config_keeps_its_cache_key():
    # the cache key hashes this dump: a changed default rebuilds every user's tiny model
    assert config_hash(TinyConfig().model_dump()) == "37062ada9902"


def test_tiny_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="divisible"):
        TinyConfig(hidden_size=30, n_heads=4)
    with pytest.raises(ValueError, match="extra"):
        TinyConfig(layers=3)


@pytest.mark.parametrize("fail_in", ["train_step", "write_log"])
def test_interrupted_build_leaves_no_cache_entry(fail_in, monkeypatch, tmp_path):
    original = getattr(tiny, fail_in)
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == (3 if fail_in == "train_step" else 1):
            raise RuntimeError("simulated crash")
        return original(*args, **kwargs)

    monkeypatch.setattr(tiny, fail_in, failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_tiny(SMALL, cache_dir=tmp_path, threads=1, progress=False)
    leftovers = [p.name for p in tmp_path.iterdir() if not p.name.startswith(".lock-")]
    assert leftovers == []


def test_stale_partial_of_a_killed_build_is_removed(tmp_path):
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now belongs to no process
    stale = tmp_path / f"{PARTIAL_PREFIX}entry-{finished.pid}-abc"
    live = tmp_path / f"{PARTIAL_PREFIX}entry-{os.getpid()}-def"
    for partial in (stale, live):
        partial.mkdir()
        (partial / "model.safetensors").write_bytes(b"half")
    path, built = ensure_entry(tmp_path, "entry", lambda out: (out / "done").write_text("ok"))
    assert built and (path / "done").read_text() == "ok"
    assert not stale.exists() and live.exists()


# --------------------------------------------------------------------------- CLI


def test_cli_pretrain_builds_then_reuses_and_models_lists(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(SMALL.model_dump()))
    runner = CliRunner()
    cache_dir = str(tmp_path / "c")
    args = ["pretrain", "--config", str(config), "--cache-dir", cache_dir, "--steps", "6"]
    args += ["--set", "max_val_blocks=4", "--threads", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    built = SMALL.model_copy(update={"steps": 6, "max_val_blocks": 4})
    expected = tmp_path / "c" / tiny.entry_name(built)
    assert f"path: {expected}" in first.output and "built now" in first.output
    assert "params:" in first.output and "tokens/s" in first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "already cached" in second.output
    listing = runner.invoke(app, ["models", "--cache-dir", str(tmp_path / "c")])
    assert listing.exit_code == 0
    assert "random:llama-tiny" in listing.output and "gemma-3-270m" in listing.output


def test_cli_pretrain_bad_config_exits_2_naming_the_field(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("layers: 3\n")
    result = subprocess.run(
        [str(MOSSA), "pretrain", "--config", str(config), "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "layers" in result.stderr


# --------------------------------------------------------------------------- gemma-3-270m


def test_gemma_conversion_matches_the_gguf_weights(tmp_path):
    from mossa.models import gemma

    if not gemma.is_installed():
        pytest.skip("optional [gemma] extra not installed (make setup-gemma)")
    from gguf import GGUFReader
    from gguf.quants import dequantize

    path = resolve_base(gemma.SPEC)  # converts once into the user cache, then reuses it
    info = json.loads((path / gemma.INFO_NAME).read_text())
    assert info["check_max_abs_logit_diff"] == 0.0
    model, tokenizer = load_base(path)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert num_layers(model) == 18 and model.config.hidden_size == 640
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<pad>"
    prompts = ["One, two, three, four,", "Monday, Tuesday, Wednesday,"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    assert batch.attention_mask[:, -1].all() and not batch.attention_mask.all()
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == 19
    # a pretrained model, not noise: with left padding the last position predicts the next word
    assert [tokenizer.decode(i).strip() for i in out.logits[:, -1].argmax(-1)] == [
        "five",
        "Thursday",
    ]

    # independent reference: dequantise tensors straight from the GGUF file
    reader = GGUFReader(gemma.assemble_gguf(tmp_path / "model.gguf"))
    tensors = {t.name: t for t in reader.tensors}
    for gguf_name, module in [
        ("blk.0.attn_v.weight", model.model.layers[0].self_attn.v_proj),
        ("blk.17.ffn_down.weight", model.model.layers[17].mlp.down_proj),
    ]:
        tensor = tensors[gguf_name]
        weights = torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy())
        assert torch.equal(weights.reshape(module.weight.shape).float(), module.weight), gguf_name
