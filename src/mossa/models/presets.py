"""Tiny random-init models for tests: ``random:<preset>``.

Each preset is a few-layer model with hidden size 64 and a byte-level tokenizer (one token
per byte, so no training is needed), initialised from a fixed seed: the same preset gives
the same weights on every call. Built once into the cache like any other base model.

- ``llama-tiny``: LlamaForCausalLM, 4 layers, q/k/v/o_proj, own pad token.
- ``gemma3-tiny``: Gemma3ForCausalLM, 4 layers (3 sliding-window + 1 global attention),
  tied embeddings, embeddings scaled by sqrt(hidden): Gemma's quirks at test size.
- ``gpt2-tiny``: GPT2LMHeadModel, 4 layers, fused ``c_attn`` (no q_proj/v_proj) and, like
  GPT-2, no pad token (the loader then pads with the eos token).
"""

from __future__ import annotations

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


PRESETS: dict[str, Preset] = {
    "llama-tiny": Preset("LlamaForCausalLM", _llama_tiny),
    "gemma3-tiny": Preset("Gemma3ForCausalLM", _gemma3_tiny),
    "gpt2-tiny": Preset("GPT2LMHeadModel", _gpt2_tiny),
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
    if name not in PRESETS:
        raise ValueError(
            f"unknown random preset {name!r}; available: "
            + ", ".join(f"random:{known}" for known in PRESETS)
        )
    return PRESETS[name]


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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            model = preset.model()
        model.save_pretrained(tmp)
        _tokenizer(name).save_pretrained(tmp)

    path, _ = ensure_entry(Path(cache_dir), entry_name(name), build)
    return path
