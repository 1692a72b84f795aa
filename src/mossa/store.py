"""The activation store: hidden states per (model, task), written atomically, checked on read.

The activation store keeps one safetensors file per (model, task) under
``RUN/activations/<model>/<task>.safetensors`` with a single tensor ``"hidden"`` of shape
``[layers + 1, n_prompts, d]`` and a JSON manifest next to it (``<task>.json``) naming the
model, the task, the SHA-256 of every prompt in row order, the shape, dtype, pooling,
mossa version and the SHA-256 of the stored tensor's bytes, checked on every load so
that damaged values are never analysed. A save removes any old manifest, writes the
tensor file, then the manifest, so a manifest is present only next to its own complete
tensor file: :meth:`ActivationStore.has` is the resume test.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from mossa.io import atomic_write_bytes, atomic_write_text, corrupt, read_json, remove_temp_files

TENSOR_KEY = "hidden"
STORE_DTYPES = ("float32", "float16")
STAGE = "extract"  # the pipeline stage that writes the store (named in rebuild hints)


def mossa_version() -> str:
    """The installed mossa version (``"unknown"`` when running from an uninstalled tree)."""
    try:
        return version("mossa")
    except PackageNotFoundError:
        return "unknown"


def prompt_hash(prompt: str) -> str:
    """SHA-256 hex digest of the UTF-8 encoded prompt (identifies a row of the store)."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a str, got {type(prompt).__name__}")
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _as_numpy(hidden) -> np.ndarray:
    if hasattr(hidden, "detach"):  # torch tensor, without importing torch here
        hidden = hidden.detach().cpu().float().numpy()
    return np.asarray(hidden)


def _tensor_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array's raw bytes (C order): the checksum kept in each manifest."""
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def _first_bad_layer(hidden: np.ndarray) -> int | None:
    bad = ~np.isfinite(hidden).reshape(hidden.shape[0], -1).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


class ActivationStore:
    """Hidden states per (model, task) under ``root`` (normally ``RUN/activations``).

    Parameters
    ----------
    root : Path
        Directory holding one sub-directory per model name (``base``, ``sft``,
        ``control``, ``control__<task>``).
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, model: str, task: str) -> Path:
        """Tensor file of (model, task); its manifest has the same stem and suffix ``.json``."""
        for what, name in (("model", model), ("task", task)):
            if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
                raise ValueError(f"{what} name must be a non-empty file-safe string, got {name!r}")
        return self.root / model / f"{task}.safetensors"

    def manifest_path(self, model: str, task: str) -> Path:
        """Manifest JSON of (model, task)."""
        return self.path(model, task).with_suffix(".json")

    def has(self, model: str, task: str) -> bool:
        """True when both the tensor file and its manifest exist (the entry is complete)."""
        return self.path(model, task).is_file() and self.manifest_path(model, task).is_file()

    def save(self, model: str, task: str, hidden, *, prompts: list[str], meta: dict) -> Path:
        """Store hidden states of ``prompts`` (rows in this order) for (model, task).

        Parameters
        ----------
        model, task : str
            Store names, e.g. ``("sft", "sentiment")``.
        hidden : torch.Tensor or np.ndarray of shape (layers + 1, n, d)
            Layer 0 is the embedding output, layer l the output of block l.
        prompts : list of str, length n
            The prompts of the rows, in row order; only their hashes are stored.
        meta : dict
            Extra JSON-serialisable manifest fields. ``meta["dtype"]`` (``"float32"``
            default, or ``"float16"``) sets the stored dtype and ``meta["pooling"]``
            (default ``"last"``) is recorded.

        Returns
        -------
        Path
            The tensor file written.

        Raises
        ------
        ValueError
            On a wrong shape, a prompt count that does not match n, an unknown dtype, or
            NaN/Inf values (the message names model, task and the first bad layer).
        """
        target = self.path(model, task)
        hidden = _as_numpy(hidden)
        if hidden.ndim != 3:
            raise ValueError(
                f"hidden for model {model!r}, task {task!r} must have shape [layers+1, n, d], "
                f"got shape {hidden.shape}"
            )
        if len(prompts) != hidden.shape[1]:
            raise ValueError(
                f"model {model!r}, task {task!r}: {len(prompts)} prompts for "
                f"{hidden.shape[1]} rows of hidden states"
            )
        dtype = meta.get("dtype", "float32")
        if dtype not in STORE_DTYPES:
            raise ValueError(f"meta['dtype'] must be one of {STORE_DTYPES}, got {dtype!r}")
        bad = _first_bad_layer(hidden)
        if bad is not None:
            raise ValueError(
                f"non-finite hidden states (NaN or Inf) for model {model!r}, task {task!r} "
                f"at layer {bad} (0 = embeddings)"
            )
        with np.errstate(over="ignore"):  # overflow is reported below, by layer
            stored = np.ascontiguousarray(hidden, dtype=np.dtype(dtype))
        bad = _first_bad_layer(stored)
        if bad is not None:
            raise ValueError(
                f"hidden states for model {model!r}, task {task!r} overflow {dtype} at layer "
                f"{bad} (0 = embeddings); store them as float32"
            )
        manifest = {
            **meta,
            "model": model,
            "task": task,
            "prompt_hashes": [prompt_hash(p) for p in prompts],
            "n": int(hidden.shape[1]),
            "layers": int(hidden.shape[0]),
            "d": int(hidden.shape[2]),
            "dtype": dtype,
            "pooling": meta.get("pooling", "last"),
            "mossa_version": mossa_version(),
            "sha256": _tensor_sha256(stored),
        }
        # Drop an old manifest first: a kill between the two writes must not pair a new
        # tensor file with a stale manifest.
        self.manifest_path(model, task).unlink(missing_ok=True)
        atomic_write_bytes(target, save({TENSOR_KEY: stored}))
        atomic_write_text(self.manifest_path(model, task), json.dumps(manifest, indent=1) + "\n")
        return target

    def manifest(self, model: str, task: str) -> dict:
        """The manifest of a complete entry (FileNotFoundError naming the file otherwise)."""
        path = self.manifest_path(model, task)
        if not self.has(model, task):
            raise FileNotFoundError(
                f"no complete activations for model {model!r}, task {task!r}: {path}"
            )
        return read_json(path, dict, stage=STAGE, run_dir=self.root.parent)

    def load(self, model: str, task: str) -> tuple[np.ndarray, dict]:
        """Hidden states as float32 ``[layers + 1, n, d]`` and the manifest of (model, task).

        Raises
        ------
        CorruptRunFile (a ValueError)
            When the tensor file cannot be read, lacks the tensor, has another shape than
            its manifest, or its bytes do not match the manifest's checksum; the message
            names the file and the command that rebuilds it.
        """
        manifest = self.manifest(model, task)
        path = self.path(model, task)
        run_dir = self.root.parent
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise corrupt(
                path, f"not a readable safetensors file ({exc})", STAGE, run_dir
            ) from None
        if TENSOR_KEY not in tensors:
            raise corrupt(
                path, f"no tensor {TENSOR_KEY!r} (found {sorted(tensors)})", STAGE, run_dir
            )
        stored = tensors[TENSOR_KEY]
        expected = tuple(manifest.get(k) for k in ("layers", "n", "d"))
        if stored.shape != expected:
            raise corrupt(
                path,
                f"tensor shape {stored.shape} does not match its manifest {expected}",
                STAGE,
                run_dir,
            )
        if manifest.get("sha256") != _tensor_sha256(stored):
            problem = (
                "values do not match the checksum in its manifest"
                if "sha256" in manifest
                else "its manifest has no checksum (written by an older mossa)"
            )
            raise corrupt(path, problem, STAGE, run_dir)
        return stored.astype(np.float32, copy=False), manifest

    def intact(self, model: str, task: str) -> bool:
        """True when the entry is complete and loads with a matching checksum."""
        try:
            self.load(model, task)
        except (ValueError, FileNotFoundError):
            return False
        return True

    def load_pair(self, model_a: str, model_b: str, task: str) -> tuple[np.ndarray, np.ndarray]:
        """Hidden states of two models on ``task``, checked to hold the same prompts in order.

        Raises
        ------
        ValueError
            When the manifests differ in prompts (set or order) or pooling; the message
            names both files and the first differing row.
        """
        ha, ma = self.load(model_a, task)
        hb, mb = self.load(model_b, task)
        fa, fb = self.manifest_path(model_a, task), self.manifest_path(model_b, task)
        pa, pb = ma["prompt_hashes"], mb["prompt_hashes"]
        if pa != pb:
            if len(pa) != len(pb):
                detail = f"{len(pa)} vs {len(pb)} prompts"
            else:
                row = next(i for i, (a, b) in enumerate(zip(pa, pb, strict=True)) if a != b)
                detail = f"first different prompt at row {row}"
            raise ValueError(
                f"{fa} and {fb} do not hold the same prompts in the same order: {detail}"
            )
        if ma.get("pooling") != mb.get("pooling"):
            pooling = (ma.get("pooling"), mb.get("pooling"))
            raise ValueError(
                f"{fa} and {fb} use different pooling: {pooling[0]!r} vs {pooling[1]!r}"
            )
        return ha, hb

    def models(self) -> list[str]:
        """Model names with at least one complete entry, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.tasks(p.name))

    def tasks(self, model: str) -> list[str]:
        """Task names with a complete entry for ``model``, sorted."""
        folder = self.root / model
        if not folder.is_dir():
            return []
        return sorted(
            p.stem
            for p in folder.glob("*.safetensors")
            if not p.name.startswith(".") and p.with_suffix(".json").is_file()
        )

    def remove_temp_files(self) -> list[Path]:
        """Delete temporary files left by a killed writer; returns what was removed."""
        return remove_temp_files(self.root)
