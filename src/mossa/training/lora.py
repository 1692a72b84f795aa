"""LoRA adapters with PEFT, after checking the requested modules exist in the model."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model

from mossa.config import TrainingConfig


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Distinct leaf names of the model's ``nn.Linear`` modules (what LoRA can target)."""
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)
        }
    )


def check_target_modules(model: torch.nn.Module, targets: list[str]) -> None:
    """Raise ValueError naming missing targets and the linear modules the model does have.

    A target matches as PEFT matches it: a module's full name or its last dotted parts.
    """
    if not targets:
        raise ValueError("training.target_modules is empty; name at least one linear module")
    names = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    missing = [t for t in targets if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        raise ValueError(
            f"training.target_modules: {missing} not found in {type(model).__name__}; "
            f"its linear modules are: {', '.join(linear_module_names(model))}"
        )


def lora_config(training: TrainingConfig) -> LoraConfig:
    """The PEFT LoraConfig of a training section (reference: r=8, alpha=16, dropout=0, q/v)."""
    return LoraConfig(
        r=training.lora_r,
        lora_alpha=training.lora_alpha,
        lora_dropout=training.lora_dropout,
        target_modules=list(training.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def attach_lora(model: torch.nn.Module, training: TrainingConfig, *, seed: int):
    """Wrap ``model`` (modified in place) in a trainable PEFT LoRA model.

    The LoRA A matrices are initialised from ``seed`` without touching the global RNG.
    """
    check_target_modules(model, list(training.target_modules))
    with torch.random.fork_rng(devices=[]), quiet_peft():
        torch.manual_seed(seed)
        return get_peft_model(model, lora_config(training))


def save_adapter(model, path: Path) -> None:
    """Save the PEFT adapter of ``model`` to ``path``, byte-identical across processes.

    PEFT keeps ``target_modules`` as a set and writes it in hash order, so
    adapter_config.json (and any hash of the adapter) would change with
    PYTHONHASHSEED; set-valued config fields are made sorted lists first.
    """
    for config in model.peft_config.values():
        for key, value in list(vars(config).items()):
            if isinstance(value, set):
                setattr(config, key, sorted(value))
    # only the adapter: a LoRA on a tied lm_head must not copy the base embeddings along
    model.save_pretrained(path, safe_serialization=True, save_embedding_layers=False)


@contextlib.contextmanager
def quiet_peft():
    """Silence two PEFT warnings that say nothing to a mossa user.

    - LoRA on a tied lm_head: PEFT warns about merging, which mossa never does; adapting
      the output side only is what is wanted (hidden states stay comparable).
    - ``is_gradient_checkpointing`` is deprecated: raised by transformers when PEFT wraps
      any model, once per adapter.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield
