"""Hidden-state extraction against plain single-prompt forward passes of the full model.

References here never use mossa's batching, padding or adapter switching: each prompt
goes alone through ``model(**inputs, output_hidden_states=True)`` of a freshly built
model (with a freshly loaded adapter where one applies).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from peft import LoraConfig, PeftModel, get_peft_model
from typer.testing import CliRunner

import mossa.pipeline.extract as extraction
from mossa.cli import app
from mossa.config import AnalysisConfig, ExtractionConfig, ModelConfig, RunConfig, dump_config
from mossa.inference.hidden_states import extract_hidden_states
from mossa.io import write_checksums
from mossa.models import lm, load_base
from mossa.models.lm import length_sorted_batches
from mossa.pipeline.extract import run_extraction
from mossa.run_dir import RunDir
from mossa.store import ActivationStore, prompt_hash

TOL = 1e-5
BASE = "random:llama-tiny"
PROMPTS = {  # byte-level tokenizer: one token per byte, plus BOS
    "t1": ["hello world", "a", "the quick brown fox jumps over", "what is 2?", "xyz", "ok ok"],
    "t2": ["one", "two words", "three little words here", "b", "count: 1 2 3 4 5 6 7"],
}
# (store model, task) -> adapter whose states it holds, with extraction.cross_task on
CROSS_TASK_ENTRIES = {
    ("base", "t1"): None, ("base", "t2"): None, ("sft", "t1"): "sft", ("sft", "t2"): "sft",
    ("control", "t1"): "control__t1", ("control", "t2"): "control__t2",
    ("control__t1", "t2"): "control__t1", ("control__t2", "t1"): "control__t2",
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def model_cache(tmp_path_factory):
    """Random presets are built once into a cache private to this module (also for children)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOSSA_CACHE_DIR", str(tmp_path_factory.mktemp("model-cache")))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest single-threaded, above all on a machine shared with others."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference_states(model, tokenizer, prompts, *, pooling="last", max_length=None):
    """[L+1, n, d] from one full-model forward per prompt (no padding at all)."""
    rows = []
    for p in prompts:
        ids = tokenizer(p)["input_ids"]
        if max_length is not None and len(ids) > max_length:
            assert ids[0] == tokenizer.bos_token_id
            ids = ids[:1] + ids[len(ids) - max_length + 1 :]  # keep BOS, cut on the left
        with torch.no_grad():
            hs = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        rows.append(torch.stack([h[0, -1] if pooling == "last" else h[0].mean(0) for h in hs]))
    return torch.stack(rows, dim=1).numpy()


def save_adapter(path: Path, seed: int) -> None:
    """A LoRA adapter with random, non-zero A and B (PEFT's default B = 0 would be a no-op)."""
    base, _ = load_base(BASE)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(base, config).save_pretrained(str(path))
    write_checksums(path, ["adapter_config.json", "adapter_model.safetensors"])


def run_config(*, cross_task: bool = True, max_length: int = 256) -> RunConfig:
    return RunConfig(
        model=ModelConfig(base=BASE, max_length=max_length),
        extraction=ExtractionConfig(batch_size=4, cross_task=cross_task),
        # without cross_task no other task's control runs on a task (specificity off)
        analysis=AnalysisConfig(cross_task_controls=0),
    )


def make_run(root: Path, *, cross_task: bool = True, max_length: int = 256) -> RunConfig:
    """A run directory with tasks, analysis prompts and three adapters, plus its config."""
    records = [{"name": t, "cluster": "c", "seen": True} for t in PROMPTS]
    prompts = [{"task": t, "prompt": p} for t, ps in PROMPTS.items() for p in ps]
    RunDir(root).write_tasks(records, prompts, suite=None)
    for seed, name in enumerate(["sft", "control__t1", "control__t2"], start=1):
        save_adapter(root / "adapters" / name, seed)
    return run_config(cross_task=cross_task, max_length=max_length)


def rewrite_prompts(root: Path, old: str, new: str) -> None:
    """The tasks stage run again with one analysis prompt changed."""
    run = RunDir(root)
    records = run.read_tasks(required=())
    prompts = [
        {"task": t, "prompt": new if p == old else p}
        for t, ps in run.read_analysis_prompts().items()
        for p in ps
    ]
    assert any(p["prompt"] == new for p in prompts)
    run.write_tasks(records, prompts, suite=None)


@pytest.fixture
def loads(monkeypatch):
    """Spy on base-model loads of run_extraction (the real loader still runs)."""
    calls = []
    real = extraction._load_base

    def spy(cfg):
        calls.append(cfg.model.base)
        return real(cfg)

    monkeypatch.setattr(extraction, "_load_base", spy)
    return calls


def adapter_reference(run_dir: Path, adapter: str | None, task: str) -> np.ndarray:
    model, tok = load_base(BASE)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(run_dir / "adapters" / adapter)).eval()
    return reference_states(model, tok, PROMPTS[task])


# ------------------------------------------------------------------ extract_hidden_states


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize(
    "spec",
    # rotary positions; Gemma's sliding window (16 < longest prompt), scaled embeddings and
    # final norm; GPT-2's absolute positions (wrong position ids under padding would show)
    ["random:llama-tiny", "random:gemma3-tiny", "random:gpt2-tiny"],
)
def test_batched_left_padded_equals_each_prompt_alone(spec, pooling, monkeypatch):
    monkeypatch.setattr(lm, "MAX_PADDING", float("inf"))  # pad as much as possible
    model, tok = load_base(spec)
    prompts = PROMPTS["t1"] + PROMPTS["t2"]
    got = extract_hidden_states(model, tok, prompts, batch_size=4, pooling=pooling)
    want = reference_states(model, tok, prompts, pooling=pooling)
    assert got.dtype == torch.float32
    assert got.shape == want.shape == (5, len(prompts), 64)
    np.testing.assert_allclose(got.numpy(), want, atol=TOL, rtol=0)
    assert np.abs(want[:, 0] - want[:, 1]).max() > 1e-2  # rows differ: order is checked


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=80),
    batch_size=st.integers(1, 40),
)
def test_batches_cover_sorted_prompts_within_size_and_padding_budget(lengths, batch_size):
    ids = [[7] * n for n in lengths]
    seen = []
    for rows, batch in length_sorted_batches(ids, batch_size, pad_id=0):
        real = sum(lengths[i] for i in rows)
        assert 1 <= len(rows) <= batch_size
        assert batch["input_ids"].shape == (len(rows), max(lengths[i] for i in rows))
        assert int(batch["attention_mask"].sum()) == real
        assert batch["input_ids"].numel() - real <= lm.MAX_PADDING * real
        for b, i in enumerate(rows):  # left padding; positions 0..n-1 on the real tokens
            mask = batch["attention_mask"][b].bool()
            assert mask[-lengths[i] :].all() and not mask[: -lengths[i]].any()
            assert batch["position_ids"][b, mask].tolist() == list(range(lengths[i]))
        seen.extend(rows)
    assert seen == sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))


def test_long_prompts_truncated_left_with_one_counting_warning():
    model, tok = load_base(BASE)
    prompts = PROMPTS["t1"]  # token lengths 12, 2, 31, 11, 4, 6
    with pytest.warns(UserWarning) as record:
        got = extract_hidden_states(model, tok, prompts, batch_size=2, max_length=8)
    messages = [str(w.message) for w in record if issubclass(w.category, UserWarning)]
    assert len(messages) == 1
    assert "3 of 6 prompts are longer than 8 tokens" in messages[0]
    want = reference_states(model, tok, prompts, max_length=8)
    np.testing.assert_allclose(got.numpy(), want, atol=TOL, rtol=0)


def test_huge_prompt_is_cut_before_tokenising():
    model, tok = load_base(BASE)
    tail = PROMPTS["t1"][2]
    huge = "word " * 1_000_000 + tail  # 5 MB
    seen = []
    real_call = type(tok).__call__

    def spy(self, text, *args, **kwargs):
        seen.extend([text] if isinstance(text, str) else text)
        return real_call(self, text, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.warns(UserWarning, match="1 of 1"):
        patch.setattr(type(tok), "__call__", spy)
        got = extract_hidden_states(model, tok, [huge], max_length=8)
    assert seen and max(len(t) for t in seen) <= (8 + 1) * 32
    want = reference_states(model, tok, ["word " * 100 + tail], max_length=8)
    np.testing.assert_allclose(got.numpy(), want, atol=TOL, rtol=0)


def test_bad_arguments_rejected():
    model, tok = load_base(BASE)
    with pytest.raises(ValueError, match="pooling"):
        extract_hidden_states(model, tok, ["a"], pooling="max")
    with pytest.raises(ValueError, match="batch_size"):
        extract_hidden_states(model, tok, ["a"], batch_size=0)
    with pytest.raises(ValueError, match=r"prompts\[1\]"):
        extract_hidden_states(model, tok, ["a", ""])
    with pytest.raises(ValueError, match="list of str"):
        extract_hidden_states(model, tok, "a")


# ------------------------------------------------------------------ run_extraction


def test_run_switches_adapters_in_place_like_fresh_loads(tmp_path, loads):
    cfg = make_run(tmp_path)
    run_extraction(tmp_path, cfg)
    assert loads == ["random:llama-tiny"]  # the base is loaded once
    store = ActivationStore(tmp_path / "activations")
    assert store.models() == ["base", "control", "control__t1", "control__t2", "sft"]
    assert {(m, t) for m in store.models() for t in store.tasks(m)} == set(CROSS_TASK_ENTRIES)
    got = {}
    for (model, task), adapter in CROSS_TASK_ENTRIES.items():
        got[model, task], manifest = store.load(model, task)
        np.testing.assert_allclose(
            got[model, task], adapter_reference(tmp_path, adapter, task), atol=TOL, rtol=0
        )
        assert manifest["adapter"] == adapter and manifest["layers"] == 5
    # the adapters really change the states, so a no-op switch would have failed above
    for a, b in [("base", "sft"), ("sft", "control"), ("control", "control__t2")]:
        assert np.abs(got[a, "t1"] - got[b, "t1"])[1:].max() > 1e-3


def test_run_over_two_worker_processes_equals_one(tmp_path):
    """Adapters packed into two spawned jobs store the states the stage stores in process."""
    from mossa.config import ExecutorConfig

    stores = {}
    for workers in (1, 2):
        run = tmp_path / f"w{workers}"
        cfg = make_run(run).model_copy(update={"executor": ExecutorConfig(workers=workers)})
        run_extraction(run, cfg)
        stores[workers] = ActivationStore(run / "activations")
    entries = {(m, t) for m in stores[2].models() for t in stores[2].tasks(m)}
    assert entries == set(CROSS_TASK_ENTRIES)
    for model, task in entries:
        one, meta_one = stores[1].load(model, task)
        two, meta_two = stores[2].load(model, task)
        np.testing.assert_allclose(two, one, atol=TOL, rtol=0)
        assert meta_two["adapter"] == meta_one["adapter"] == CROSS_TASK_ENTRIES[model, task]


def test_run_without_cross_task_and_resume_skips_without_loading(tmp_path, loads):
    cfg = make_run(tmp_path, cross_task=False)
    run_extraction(tmp_path, cfg)
    store = ActivationStore(tmp_path / "activations")
    assert store.models() == ["base", "control", "sft"]
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "activations").rglob("*")}
    run_extraction(tmp_path, cfg)
    assert loads == ["random:llama-tiny"]  # second run loaded nothing
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "activations").rglob("*")}


def test_run_truncation_warns_once_for_all_tasks_and_models(tmp_path, loads):
    cfg = make_run(tmp_path, cross_task=False, max_length=8)
    with pytest.warns(UserWarning) as record:
        run_extraction(tmp_path, cfg)
    messages = [str(w.message) for w in record if "truncated" in str(w.message)]
    assert messages == [
        "6 of 11 prompts of the analysis set (t1: 3, t2: 3) are longer than 8 tokens "
        "and were truncated from the left"
    ]
    hidden, manifest = ActivationStore(tmp_path / "activations").load("sft", "t1")
    assert manifest["n_truncated"] == 3 and manifest["context_length"] == 8


def test_run_nan_states_fail_naming_model_task_layer(tmp_path, monkeypatch):
    cfg = make_run(tmp_path, cross_task=False)

    def nan_loader(cfg):
        model, tok = load_base(cfg.model.base)
        with torch.no_grad():
            model.model.layers[1].mlp.down_proj.weight[0, 0] = float("nan")  # block 2
        return model, tok

    monkeypatch.setattr(extraction, "_load_base", nan_loader)
    with pytest.raises(ValueError, match=r"model 'base', task 't1' at layer 2 \(0 = embeddings\)"):
        run_extraction(tmp_path, cfg)
    assert ActivationStore(tmp_path / "activations").models() == []


def test_run_refuses_mismatching_store_unless_forced(tmp_path, loads, monkeypatch):
    cfg = make_run(tmp_path, cross_task=False)
    run_extraction(tmp_path, cfg)
    store = ActivationStore(tmp_path / "activations")

    other = cfg.model_copy(update={"extraction": ExtractionConfig(batch_size=4, pooling="mean")})
    with pytest.raises(ValueError, match=r"base/t1\.json does not match .*pooling is 'last'"):
        run_extraction(tmp_path, other)
    other = cfg.model_copy(update={"model": ModelConfig(base="gemma-3-270m")})
    with pytest.raises(ValueError, match="base is 'random:llama-tiny' but this run has 'gemma"):
        run_extraction(tmp_path, other)
    save_adapter(tmp_path / "adapters" / "sft", seed=9)  # the SFT adapter was retrained
    with pytest.raises(ValueError, match=r"sft/t1\.json does not match .*adapter_sha256 is"):
        run_extraction(tmp_path, cfg)

    rewrite_prompts(tmp_path, "hello world", "hello there")
    with pytest.raises(ValueError, match=r"t1\.json does not match this run: its prompts differ"):
        run_extraction(tmp_path, cfg)
    run_extraction(tmp_path, cfg, force=True)
    hidden, manifest = store.load("sft", "t1")
    assert manifest["prompt_hashes"][0] == prompt_hash("hello there")
    model, tok = load_base(BASE)
    model = PeftModel.from_pretrained(model, str(tmp_path / "adapters" / "sft")).eval()
    new_prompts = ["hello there", *PROMPTS["t1"][1:]]
    np.testing.assert_allclose(hidden, reference_states(model, tok, new_prompts), atol=TOL, rtol=0)

    store.path("base", "t2").unlink()  # something to compute, with a 2-layer base

    import mossa.models

    real_meta_model = mossa.models.meta_model

    def smaller_base(path, **kwargs):  # same spec, but its directory now holds a 2-block model
        model = real_meta_model(path, **kwargs)
        model.config.num_hidden_layers = 2
        return model

    monkeypatch.setattr(mossa.models, "meta_model", smaller_base)
    with pytest.raises(ValueError, match=r"base/t1\.json does not match .*layers is 5 .* has 3"):
        run_extraction(tmp_path, cfg)


def test_cli_extract_resumes_refuses_and_forces(tmp_path, loads):
    cfg = make_run(tmp_path, cross_task=False)
    (tmp_path / "config.resolved.yaml").write_text(dump_config(cfg))
    result = CliRunner().invoke(app, ["extract", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "base: 2 task(s)" in result.output and "control: 2 task(s)" in result.output

    rewrite_prompts(tmp_path, "one", "uno")
    mossa = Path(sys.executable).parent / "mossa"
    proc = subprocess.run([mossa, "extract", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "base/t2.json does not match this run: its prompts differ" in proc.stderr

    result = CliRunner().invoke(app, ["extract", str(tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    store = ActivationStore(tmp_path / "activations")
    assert store.manifest("control", "t2")["prompt_hashes"][0] == prompt_hash("uno")
    assert loads == ["random:llama-tiny"] * 2


KILL_SCRIPT = """
import os, sys, tempfile, time
import torch
torch.set_num_threads(1)
import mossa.store as store_mod
from mossa.config import RunConfig
from mossa.pipeline.extract import run_extraction
from pathlib import Path

writes = []

def stall_on_third_tensor(path, data):
    if str(path).endswith(".safetensors"):
        writes.append(path)
        if len(writes) == 3:  # half-write the temp file, then wait to be killed
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
            os.write(fd, data[: len(data) // 2])
            print("stalled", flush=True)
            time.sleep(120)
    real(path, data)

real = store_mod.atomic_write_bytes
store_mod.atomic_write_bytes = stall_on_third_tensor
run_extraction(Path({run!r}), RunConfig.model_validate_json({cfg!r}))
"""


def test_sigkill_leaves_no_partial_entry_and_rerun_completes(tmp_path, loads):
    run_dir = tmp_path / "run"
    cfg = make_run(run_dir, cross_task=True)
    script = KILL_SCRIPT.format(run=str(run_dir), cfg=cfg.model_dump_json())
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "stalled"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    store = ActivationStore(run_dir / "activations")
    tensors = sorted(
        p.relative_to(store.root).as_posix() for p in store.root.rglob("*.safetensors")
    )
    assert tensors == ["base/t1.safetensors", "base/t2.safetensors"]  # all complete
    assert [m for m in store.models() for _ in store.tasks(m)] == ["base", "base"]
    assert len(list(store.root.rglob("*.tmp"))) == 1  # the killed write, invisible to the store

    run_extraction(run_dir, cfg)
    assert loads == [BASE]
    assert list(store.root.rglob("*.tmp")) == []
    assert {(m, t) for m in store.models() for t in store.tasks(m)} == set(CROSS_TASK_ENTRIES)
    for (model, task), adapter in CROSS_TASK_ENTRIES.items():
        np.testing.assert_allclose(
            store.load(model, task)[0], adapter_reference(run_dir, adapter, task), atol=TOL, rtol=0
        )
