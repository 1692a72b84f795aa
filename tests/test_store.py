"""Activation store and atomic writes: round trips, refusals, and no half-written files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

import mossa.io as io_mod
import mossa.store as store_mod
from mossa.io import atomic_write_bytes, atomic_write_text
from mossa.store import ActivationStore, prompt_hash

PROMPTS = ["first prompt", "second", "a third, longer prompt", "x"]


def _hidden(seed: int = 0, layers: int = 3, n: int = 4, d: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((layers, n, d)).astype(np.float32)


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_prompt_hash_is_sha256_of_utf8():
    assert prompt_hash("héllo") == hashlib.sha256("héllo".encode()).hexdigest()
    assert prompt_hash("a") != prompt_hash("a ")


def test_round_trip_float32_exact_with_manifest(tmp_path):
    store = ActivationStore(tmp_path)
    hidden = _hidden()
    path = store.save("sft", "sum", hidden, prompts=PROMPTS, meta={"base": "tiny"})
    assert path == tmp_path / "sft" / "sum.safetensors"
    assert store.has("sft", "sum") and not store.has("base", "sum")
    loaded, manifest = store.load("sft", "sum")
    np.testing.assert_array_equal(loaded, hidden)
    assert loaded.dtype == np.float32
    assert manifest["prompt_hashes"] == [hashlib.sha256(p.encode()).hexdigest() for p in PROMPTS]
    assert (manifest["layers"], manifest["n"], manifest["d"]) == (3, 4, 5)
    assert manifest["model"] == "sft" and manifest["task"] == "sum" and manifest["base"] == "tiny"
    assert manifest["dtype"] == "float32" and manifest["pooling"] == "last"
    assert "mossa_version" in manifest
    on_disk = json.loads((tmp_path / "sft" / "sum.json").read_text())
    assert on_disk == manifest


def test_float16_storage_and_torch_input(tmp_path):
    store = ActivationStore(tmp_path)
    hidden = torch.from_numpy(_hidden(1))
    store.save("base", "t", hidden, prompts=PROMPTS, meta={"dtype": "float16", "pooling": "mean"})
    with safe_open(str(store.path("base", "t")), framework="np") as fh:
        assert fh.get_tensor("hidden").dtype == np.float16
    loaded, manifest = store.load("base", "t")
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, hidden.numpy(), rtol=1e-3, atol=1e-3)
    assert not np.array_equal(loaded, hidden.numpy())  # really went through float16
    assert manifest["dtype"] == "float16" and manifest["pooling"] == "mean"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_refused_naming_model_task_first_bad_layer(tmp_path, bad):
    hidden = _hidden(layers=5)
    hidden[2, 1, 3] = bad
    hidden[4, 0, 0] = bad
    store = ActivationStore(tmp_path)
    with pytest.raises(ValueError, match=r"model 'control', task 'qa' at layer 2 "):
        store.save("control", "qa", hidden, prompts=PROMPTS, meta={})
    assert _files(tmp_path) == []


def test_float16_overflow_refused(tmp_path):
    hidden = _hidden()
    hidden[1, 0, 0] = 1e6
    store = ActivationStore(tmp_path)
    with pytest.raises(ValueError, match=r"overflow float16 at layer 1"):
        store.save("sft", "t", hidden, prompts=PROMPTS, meta={"dtype": "float16"})


def test_bad_shapes_and_names_refused(tmp_path):
    store = ActivationStore(tmp_path)
    with pytest.raises(ValueError, match=r"\[layers\+1, n, d\]"):
        store.save("sft", "t", np.zeros((4, 5)), prompts=PROMPTS, meta={})
    with pytest.raises(ValueError, match="3 prompts for 4 rows"):
        store.save("sft", "t", _hidden(), prompts=PROMPTS[:3], meta={})
    with pytest.raises(ValueError, match="dtype"):
        store.save("sft", "t", _hidden(), prompts=PROMPTS, meta={"dtype": "bfloat16"})
    with pytest.raises(ValueError, match="task name"):
        store.path("sft", "../escape")


def test_load_pair_aligned_and_misaligned(tmp_path):
    store = ActivationStore(tmp_path)
    store.save("base", "t", _hidden(0), prompts=PROMPTS, meta={})
    store.save("sft", "t", _hidden(1), prompts=PROMPTS, meta={})
    a, b = store.load_pair("base", "sft", "t")
    np.testing.assert_array_equal(a, _hidden(0))
    np.testing.assert_array_equal(b, _hidden(1))

    swapped = [PROMPTS[1], PROMPTS[0], *PROMPTS[2:]]
    store.save("control", "t", _hidden(2), prompts=swapped, meta={})
    with pytest.raises(ValueError, match=r"base/t\.json and .*control/t\.json .*row 0"):
        store.load_pair("base", "control", "t")
    store.save("control", "t", _hidden(2, n=3), prompts=PROMPTS[:3], meta={})
    with pytest.raises(ValueError, match="4 vs 3 prompts"):
        store.load_pair("base", "control", "t")
    store.save("control", "t", _hidden(2), prompts=PROMPTS, meta={"pooling": "mean"})
    with pytest.raises(ValueError, match="different pooling"):
        store.load_pair("base", "control", "t")


def test_listing_ignores_incomplete_entries(tmp_path):
    store = ActivationStore(tmp_path)
    assert store.models() == [] and store.tasks("sft") == []
    store.save("sft", "b", _hidden(), prompts=PROMPTS, meta={})
    store.save("sft", "a", _hidden(), prompts=PROMPTS, meta={})
    store.save("base", "a", _hidden(), prompts=PROMPTS, meta={})
    store.manifest_path("base", "a").unlink()  # tensor without manifest: incomplete
    (tmp_path / "sft" / ".c.safetensors.abc.tmp").write_bytes(b"partial")
    assert store.tasks("sft") == ["a", "b"]
    assert store.models() == ["sft"]
    assert not store.has("base", "a")
    with pytest.raises(FileNotFoundError, match="model 'base', task 'a'"):
        store.load("base", "a")
    removed = store.remove_temp_files()
    assert [p.name for p in removed] == [".c.safetensors.abc.tmp"]


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "old")
    assert target.read_text() == "old"

    def boom(fd):
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of a write

    monkeypatch.setattr(io_mod.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new content")
    assert target.read_text() == "old"
    assert _files(tmp_path) == ["sub/f.txt"]


def test_interrupted_resave_never_pairs_new_tensor_with_old_manifest(tmp_path, monkeypatch):
    store = ActivationStore(tmp_path)
    store.save("sft", "t", _hidden(0), prompts=PROMPTS, meta={})
    calls = []
    real = store_mod.atomic_write_bytes

    def tensor_then_die(path, data):
        calls.append(path)
        real(path, data)
        raise KeyboardInterrupt  # killed after the tensor file, before the manifest

    monkeypatch.setattr(store_mod, "atomic_write_bytes", tensor_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.save("sft", "t", _hidden(1), prompts=PROMPTS[::-1], meta={})
    assert calls == [store.path("sft", "t")]
    assert not store.has("sft", "t")  # resume will recompute it
