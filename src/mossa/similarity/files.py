"""Read an activation array ([n, d] or [L, n, d]) from a .npy, .npz or .safetensors file.

Archives holding several arrays must name the one to use "hidden" (the tensor name of
mossa's activation store). Errors name the file and say what was expected.
"""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

SUFFIXES = (".npy", ".npz", ".safetensors")
KEY = "hidden"
#: What numpy, zipfile and zlib raise on unreadable, garbled or truncated files
#: (safetensors' own error is turned into ValueError where it is raised).
_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    MemoryError,
    NotImplementedError,
    tokenize.TokenError,
    zipfile.BadZipFile,
    zlib.error,
)


def load_activations(path: str | Path) -> np.ndarray:
    """Load activations as a numpy float array of shape [n, d] or [L, n, d].

    bfloat16 and float8 tensors (safetensors) become float32, integer arrays float64;
    pickled objects are never loaded.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Unknown extension, unreadable file, missing or ambiguous key, non-numeric data,
        or a rank other than 2 or 3 (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such activation file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"{path}: unsupported extension {path.suffix!r}; expected one of {SUFFIXES}"
        )
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            array = _load_npz(path)
        else:
            array = _load_safetensors(path)
    except _READ_ERRORS as exc:
        if str(exc).startswith(str(path)):
            raise
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"{path}: cannot read activations ({detail})") from exc
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    elif array.dtype.kind != "f":
        raise ValueError(f"{path}: activations must be real numbers; got dtype {array.dtype}")
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{path}: activations must be [n, d] or [L, n, d]; got shape {tuple(array.shape)}"
        )
    return array


def _pick(path: Path, keys: list[str]) -> str:
    if len(keys) == 1:
        return keys[0]
    if KEY in keys:
        return KEY
    raise ValueError(
        f"{path}: holds {len(keys)} arrays {sorted(keys)}; expected a single array or one "
        f"named {KEY!r}"
    )


def _load_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        return archive[_pick(path, list(archive.files))]


def _load_safetensors(path: Path) -> np.ndarray:
    import torch  # safetensors' numpy backend cannot hold bfloat16
    from safetensors import SafetensorError, safe_open

    numpy_floats = (torch.float16, torch.float32, torch.float64)
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensor = handle.get_tensor(_pick(path, list(handle.keys())))
    except SafetensorError as exc:
        raise ValueError(str(exc)) from exc
    if tensor.is_floating_point() and tensor.dtype not in numpy_floats:
        tensor = tensor.to(torch.float32)  # bfloat16 and float8 have no numpy dtype
    return tensor.numpy()
