"""Tiny random-init models for tests: ``random:<preset>``.

Each preset is a few-layer model with hidden size 64 and a byte-level tokenizer (one token
per byte, so no training is needed), initialised from a fixed seed: the same preset gives
the same weights on every call. Built once into the cache like any other base model.

- ``llama-tiny``: LlamaForCausalLM, 4 layers, q/k/v/o_proj, own pad token.
- ``gemma3-tiny``: Gemma3ForCausalLM, 4 layers (3 sliding-window + 1 global attention),
  tied embeddings, embeddings scaled by sqrt(hidden): Gemma's quirks at test size.
- ``gpt2-tiny``: GPT2LMHeadModel, 4 layers, fused ``c_attn`` (no q_proj/v_proj) and, like
  GPT-2, no pad token (the loader then pads with the eos token).

Real-shape presets (:data:`SHAPED`) have a published model's architecture and sizes with
random weights, to measure speed and memory without downloading anything:
``llama-2-7b`` (6.74B parameters) and ``gemma-3-1b`` (1.0B). Their cache directory holds
only config.json, the byte-level tokenizer and a ``random_init.json`` marker: no weights.
:func:`meta_model` builds one on the meta device (no memory) for plans;
:func:`materialise` allocates it on the target device and initialises it there from
``SEED`` (values differ between devices, since each has its own generator).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mossa.models.bpe import BOS, EOS, PAD, byte_level_bpe, prepend_bos, to_transformers
from mossa.models.cache import config_hash, ensure_entry

SEED = 0
MAX_POSITIONS = 512
GPT2_EOS = "<|endoftext|>"
_LLAMA_SPECIALS = [PAD, BOS, EOS]  # ids 0, 1, 2; bytes follow
_BYTE_VOCAB = len(_LLAMA_SPECIALS) + 256
RANDOM_INIT_FILE = "random_init.json"


@dataclass(frozen=True)
class Preset:
    """A transformers model class (by name, imported only when needed) and its config."""

    model_class: str
    make_config: Callable[[], object]

    def model(self):
        """A freshly initialised model (seed torch before calling for fixed weights)."""
        import transformers

        return getattr(transformers, self.model_class)(self.make_config())


# shape and special tokens shared by the Llama-family presets
_DECODER = dict(
    vocab_size=_BYTE_VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    max_position_embeddings=MAX_POSITIONS,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


def _llama_tiny():
    from transformers import LlamaConfig

    return LlamaConfig(**_DECODER, num_key_value_heads=4)


def _gemma3_tiny():
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        **_DECODER,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=16,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
    )


def _gpt2_tiny():
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=1 + 256,
        n_positions=MAX_POSITIONS,
        n_embd=64,
        n_layer=4,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
    )


def _llama_2_7b():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


def _gemma_3_1b():
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=262144,
        hidden_size=1152,
        intermediate_size=6912,
        num_hidden_layers=26,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=256,
        query_pre_attn_scalar=256,
        sliding_window=512,
        max_position_embeddings=32768,
        layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 4
        + ["sliding_attention"] * 2,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )


PRESETS: dict[str, Preset] = {
    "llama-tiny": Preset("LlamaForCausalLM", _llama_tiny),
    "gemma3-tiny": Preset("Gemma3ForCausalLM", _gemma3_tiny),
    "gpt2-tiny": Preset("GPT2LMHeadModel", _gpt2_tiny),
}
#: Real architectures and sizes with random weights (never saved: see the module docstring).
SHAPED: dict[str, Preset] = {
    "llama-2-7b": Preset("LlamaForCausalLM", _llama_2_7b),
    "gemma-3-1b": Preset("Gemma3ForCausalLM", _gemma_3_1b),
}


def _tokenizer(preset: str):
    if preset == "gpt2-tiny":
        tokenizer = byte_level_bpe([GPT2_EOS])
        return to_transformers(
            tokenizer, model_max_length=MAX_POSITIONS, bos=GPT2_EOS, eos=GPT2_EOS, pad=None
        )
    tokenizer = byte_level_bpe(_LLAMA_SPECIALS)
    prepend_bos(tokenizer)
    return to_transformers(tokenizer, model_max_length=MAX_POSITIONS, bos=BOS, eos=EOS, pad=PAD)


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError naming the known ones otherwise."""
    known = PRESETS | SHAPED
    if name not in known:
        raise ValueError(
            f"unknown random preset {name!r}; available: " + ", ".join(f"random:{k}" for k in known)
        )
    return known[name]


def entry_name(name: str) -> str:
    """Cache directory name of a preset, keyed by its full config (incl. transformers version)."""
    preset = get_preset(name)
    key = config_hash(
        {"config": preset.make_config().to_dict(), "class": preset.model_class, "seed": SEED}
    )
    return f"random-{name}-{key}"


def build_random(name: str, cache_dir: Path) -> Path:
    """Directory of the random preset in ``cache_dir``, created on first use (seed ``SEED``)."""
    import torch

    preset = get_preset(name)

    def build(tmp: Path) -> None:
        if name in SHAPED:  # weights are made at load time (materialise), never stored
            preset.make_config().save_pretrained(tmp)
            marker = {"model_class": preset.model_class, "seed": SEED}
            (tmp / RANDOM_INIT_FILE).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(SEED)
                model = preset.model()
            model.save_pretrained(tmp)
        _tokenizer(name).save_pretrained(tmp)

    path, _ = ensure_entry(Path(cache_dir), entry_name(name), build)
    return path


def meta_model(name: str):
    """The preset's model on the meta device: real shapes, no memory, no initialisation."""
    import torch

    with torch.device("meta"):
        return get_preset(name).model()


def is_random_init(path: Path) -> bool:
    """True for a real-shape preset's directory, whose weights :func:`materialise` makes."""
    return (Path(path) / RANDOM_INIT_FILE).is_file()


def materialise(path: Path, *, device, dtype):
    """The model of a real-shape preset directory, allocated on ``device`` in ``dtype`` and
    initialised there from its seed (built on the meta device first: no CPU copy)."""
    import torch
    import transformers

    marker = json.loads((Path(path) / RANDOM_INIT_FILE).read_text(encoding="utf-8"))
    config = transformers.AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = getattr(transformers, marker["model_class"])(config)
    device = torch.device(device)
    model.to(dtype).to_empty(device=device)
    forked = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked, device_type=device.type):
        torch.manual_seed(marker["seed"])
        model.init_weights()
    return model
