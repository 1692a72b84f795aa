"""Base model specs -> local directories -> (model, tokenizer), the same way for every model.

A spec is one of: ``tiny`` (built by mossa), ``gemma-3-270m`` (converted from the optional
GGUF package), ``random:<preset>`` (test models), a local Hugging Face model directory, or
a hub name. Every spec resolves to a local directory holding ``config.json``, safetensors
weights and tokenizer files; loading never runs repository code unless
``trust_remote_code`` is turned on, and reads only safetensors.

Tokenizers always pad on the left (the last position is then every prompt's last token,
which extraction reads) and truncate on the left (prompts keep their end). When a
tokenizer has no pad token, its eos token is used: this adds no token and leaves the
model's weights untouched, and padded positions are masked out by the attention mask (and
must be excluded from losses by the mask, not by comparing ids with ``pad_token_id``).
Only when there is no eos token either is a ``<pad>`` token added and the embedding
matrix resized, with a warning, since that changes the model.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from mossa.models import gemma
from mossa.models.cache import cache_root
from mossa.models.presets import build_random, is_random_init, materialise
from mossa.models.tiny import build_tiny

TINY_SPEC = "tiny"
RANDOM_PREFIX = "random:"
HUB_TIMEOUT_S = 10.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_HUB_FILES = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.tiktoken"]
_TRUTHY = {"1", "ON", "YES", "TRUE"}

logger = logging.getLogger(__name__)


def _looks_local(spec: str) -> bool:
    """True for specs that can only mean a filesystem path (hub names are ``[owner/]name``)."""
    return (
        spec in {".", ".."}
        or spec.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or spec.count("/") > 1
        or "\\" in spec
        or bool(re.match(r"^[A-Za-z]:[\\/]", spec))
    )


def check_model_dir(path: Path) -> Path:
    """Absolute ``path`` if it is a model directory, else ValueError saying what is missing."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ValueError(f"model path is not a directory: {path}")
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} has no config.json: not a Hugging Face model directory")
    if not any(path.glob("*.safetensors")):
        raise ValueError(
            f"{path} has no *.safetensors weights: mossa loads only safetensors "
            "(re-save .bin checkpoints with save_pretrained in a trusted environment)"
        )
    return path.resolve()


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = (os.environ.get(name, "").upper() for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(value in _TRUTHY for value in env)


def _from_hub(spec: str, trust_remote_code: bool) -> Path:
    """Local snapshot of a hub model: the HF cache first, then the hub (bounded wait)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    if not _HUB_ID.match(spec):
        raise ValueError(
            f"base model {spec!r} is not a local directory, a bundled model (tiny, "
            f"{gemma.SPEC}, random:<preset>) or a hub name (owner/name)"
        )
    patterns = _HUB_FILES + (["*.py"] if trust_remote_code else [])
    try:
        return check_model_dir(
            Path(snapshot_download(spec, allow_patterns=patterns, local_files_only=True))
        )
    except LocalEntryNotFoundError:
        pass
    if _hub_offline():
        raise ValueError(
            f"base model {spec!r} is not a local directory nor in the Hugging Face cache, and "
            "the hub is offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set)"
        )
    try:
        HfApi().model_info(spec, timeout=HUB_TIMEOUT_S)
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise ValueError(
            f"base model {spec!r}: no accessible model of that name on the hub"
        ) from exc
    except Exception as exc:  # transport errors come from several libraries; all mean the same
        raise ValueError(
            f"base model {spec!r} is not a local directory and the Hugging Face hub is "
            f"unreachable ({type(exc).__name__}: {exc}); use a local model directory or a "
            f"bundled model (tiny, {gemma.SPEC}, random:<preset>)"
        ) from exc
    return check_model_dir(
        Path(snapshot_download(spec, allow_patterns=patterns, etag_timeout=HUB_TIMEOUT_S))
    )


def resolve_base(
    spec: str | os.PathLike, *, cache_dir: Path | None = None, trust_remote_code: bool = False
) -> Path:
    """Local Hugging Face causal-LM directory for a base model spec, building it if needed.

    Parameters
    ----------
    spec : ``tiny``, ``gemma-3-270m``, ``random:<preset>``, a local directory, or a hub name.
    cache_dir : where mossa keeps built models (default :func:`cache_root`).
    trust_remote_code : also download a hub model's Python files (only used for hub names).

    Returns
    -------
    Absolute path of a directory with ``config.json``, safetensors weights and tokenizer.
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"base model spec must be a non-empty string, got {spec!r}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    if spec == TINY_SPEC:
        return build_tiny(cache_dir=root).path
    if spec == gemma.SPEC:
        return gemma.resolve_gemma(root)
    if spec.startswith(RANDOM_PREFIX):
        return build_random(spec[len(RANDOM_PREFIX) :], root)
    path = Path(spec).expanduser()
    if path.exists():
        return check_model_dir(path)
    if _looks_local(spec):
        raise ValueError(f"model path not found: {spec}")
    return _from_hub(spec, trust_remote_code)


def _ensure_pad(tokenizer) -> str:
    """Set left padding/truncation and a pad token; return where the pad token came from."""
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is not None:
        return "own"
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        logger.info(
            "tokenizer has no pad token: padding with its eos token %r", tokenizer.eos_token
        )
        return "eos"
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    return "added"


def load_tokenizer(
    path_or_spec: str | os.PathLike,
    *,
    cache_dir: Path | None = None,
    trust_remote_code: bool = False,
):
    """The tokenizer of a model directory or spec, left-padded and with a pad token."""
    from transformers import AutoTokenizer

    path = Path(path_or_spec).expanduser()
    if not path.is_dir():
        path = resolve_base(path_or_spec, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if _ensure_pad(tokenizer) == "added":
        logger.warning(
            "tokenizer of %s has neither pad nor eos token: added '<pad>' (id %d); "
            "load_base resizes the embeddings to match",
            path,
            tokenizer.pad_token_id,
        )
    return tokenizer


def load_base(
    spec: str | os.PathLike,
    *,
    cache_dir: Path | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    load_in: str | None = None,
):
    """Model (eval mode) and tokenizer (left padding, pad token set) for a base model spec.

    Parameters
    ----------
    spec : anything :func:`resolve_base` accepts.
    cache_dir : where mossa keeps built models (default :func:`cache_root`).
    trust_remote_code : allow the model directory's own Python code (off by default).
    dtype : floating dtype of the weights (the compute dtype of a quantised load).
    device : where the weights go (see :func:`mossa.models.device.resolve_compute`).
    load_in : ``"4bit"`` or ``"8bit"`` to quantise the base through bitsandbytes (CUDA).
    """
    from transformers import AutoModelForCausalLM

    from mossa.models.device import quantization_config

    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    device = torch.device(device)
    path = resolve_base(spec, cache_dir=cache_dir, trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    if is_random_init(path):
        model = materialise(path, device=device, dtype=dtype)
    else:
        quantized = quantization_config(load_in, dtype)
        # off the CPU, accelerate's device_map reads the weights straight onto the device
        direct = quantized is not None or device.type != "cpu"
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
            use_safetensors=True,
            trust_remote_code=trust_remote_code,
            quantization_config=quantized,
            device_map={"": device} if direct else None,
        )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def meta_model(path: str | os.PathLike, *, trust_remote_code: bool = False):
    """The causal LM of a model directory built on the meta device: its modules and config
    without reading a weight (cheap even for 7B bases)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def num_layers(model) -> int:
    """Number of transformer blocks L of a (possibly PEFT-wrapped) model.

    ``output_hidden_states=True`` returns L + 1 tensors: the embeddings, then each block.
    """
    config = getattr(model, "config", None)
    if config is None:
        raise ValueError(
            f"expected a transformers model with a .config, got {type(model).__name__}"
        )
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    n = getattr(text_config, "num_hidden_layers", None)
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"{type(model).__name__} config has no positive num_hidden_layers: {n!r}")
    return n
