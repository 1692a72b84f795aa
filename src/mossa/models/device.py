"""Where models run and in which precision: the ``compute`` config section made concrete.

:func:`resolve_compute` turns ``compute.device`` and ``compute.dtype`` into a torch device
and dtype, refusing (ValueError, before any work) a device this machine lacks or a
quantised load without bitsandbytes. Training, evaluation and extraction all go through
it: the base is loaded in that dtype onto that device, and :func:`autocast` runs its
forward passes in that dtype while LoRA weights, optimizer state and the loss stay
float32. With float32 (the CPU default) nothing changes: no autocast, the same kernels.
"""

from __future__ import annotations

import contextlib
import importlib.util

import torch

from mossa.config import ComputeConfig, ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
GPU_EXTRA = "pip install 'mossa[gpu]'"


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"compute.device={spec}: CUDA is not available on this machine (torch "
                f"{torch.__version__}); use compute.device=cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"compute.device={spec}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), numbered from 0"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"compute.device={spec}: MPS (Apple GPU) is not available on this machine; "
            "use compute.device=cpu or auto"
        )
    return device


def resolve_compute(compute: ComputeConfig) -> tuple[torch.device, torch.dtype]:
    """(device, dtype) of a ``compute`` section; ValueError naming the key when impossible.

    ``auto`` device: CUDA where present, else CPU. ``auto`` dtype: bfloat16 on CUDA,
    float32 elsewhere. ``load_in`` needs bitsandbytes (the ``gpu`` extra) and CUDA.
    """
    device = _device(compute.device)
    if compute.dtype == "auto":
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    else:
        dtype = DTYPES[compute.dtype]
    if compute.load_in is not None:
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError(
                f"compute.load_in={compute.load_in} needs bitsandbytes, which is not installed: "
                f"{GPU_EXTRA}"
            )
        if device.type != "cuda":
            raise ValueError(
                f"compute.load_in={compute.load_in}: quantised bases run on CUDA only, but "
                f"compute.device resolves to {device}"
            )
    return device, dtype


def precision(compute: ComputeConfig) -> str:
    """The dtype name ``compute`` resolves to here, without refusing anything (for hashes:
    ``auto`` is bfloat16 where it would run on CUDA, float32 elsewhere)."""
    if compute.dtype != "auto":
        return compute.dtype
    cuda = compute.device.startswith("cuda") or (
        compute.device == "auto" and torch.cuda.is_available()
    )
    return "bfloat16" if cuda else "float32"


def quantization_config(load_in: str | None, dtype: torch.dtype):
    """transformers' BitsAndBytesConfig for ``compute.load_in`` (None when unquantised).

    4-bit is QLoRA's NF4 with double quantisation, computing in ``dtype``.
    """
    if load_in is None:
        return None
    from transformers import BitsAndBytesConfig

    if load_in == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def autocast(device: torch.device, dtype: torch.dtype):
    """Autocast to ``dtype`` on ``device``; a no-op for float32, so CPU defaults are unchanged."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's (first) parameters."""
    return next(model.parameters()).device


def load_placed(spec, model_cfg: ModelConfig, compute: ComputeConfig):
    """Base model and tokenizer of ``spec`` on the ``compute`` device and dtype, with that
    (device, dtype) pair: what evaluation and extraction run on."""
    from mossa.models.loading import load_base

    device, dtype = resolve_compute(compute)
    model, tokenizer = load_base(
        spec,
        trust_remote_code=model_cfg.trust_remote_code,
        dtype=dtype,
        device=device,
        load_in=compute.load_in,
    )
    return model, tokenizer, device, dtype
