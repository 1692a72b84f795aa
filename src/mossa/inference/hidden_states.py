"""Hidden states of prompts at every layer: one forward pass of the decoder body per batch.

``output_hidden_states=True`` gives index 0 = the embedding output and index l = the output
of block l. mossa keeps transformers' convention for the last entry: for Llama, Gemma,
GPT-2 and most decoder-only models transformers applies the final norm to it (it equals
``last_hidden_state``), while layers 0..L-1 are un-normalised residual-stream states. The
same convention holds for every model compared, and each manifest records it.

The language-model head is never run: no logits, no generation, no KV cache. Prompts are
sorted by token length so that each batch pads little; padding is on the left and position
ids count real tokens only, so a prompt's states do not depend on its batch (see
:mod:`mossa.models.lm`).
"""

from __future__ import annotations

import warnings

import torch
from tqdm.auto import tqdm

from mossa.models import lm
from mossa.models.device import autocast
from mossa.models.lm import encode_prompts, length_sorted_batches

POOLINGS = ("last", "mean")
LAYER_CONVENTION = (
    "0 = embedding output; l = output of block l as transformers' hidden_states gives it "
    "(the last entry has the model's final norm applied where transformers does so)"
)


def decoder_body(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body of a causal LM (or of a PeftModel wrapping one), without lm_head.

    LoRA layers live inside the body's modules, so the body of a PeftModel runs the
    active adapter.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.get_base_model()
    if not hasattr(model, "get_decoder"):
        raise ValueError(f"expected a transformers causal LM, got {type(model).__name__}")
    return model.get_decoder()


def _text_config(model: torch.nn.Module):
    return model.config.get_text_config()


def model_shape(model: torch.nn.Module) -> tuple[int, int]:
    """(layers + 1, hidden size) of the states :func:`extract_hidden_states` returns."""
    from mossa.models import num_layers

    return num_layers(model) + 1, int(_text_config(model).hidden_size)


def context_limit(model: torch.nn.Module, max_length: int | None = None) -> int | None:
    """Longest prompt in tokens: ``max_length`` capped by the model's position limit."""
    max_positions = getattr(_text_config(model), "max_position_embeddings", None)
    limits = [v for v in (max_length, max_positions) if v is not None]
    return min(limits) if limits else None


def _check_prompts(prompts) -> list[str]:
    if isinstance(prompts, str) or not isinstance(prompts, list | tuple):
        raise ValueError(f"prompts must be a list of str, got {type(prompts).__name__}")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p:
            raise ValueError(f"prompts[{i}] must be a non-empty str, got {p!r}")
    return list(prompts)


def _check_options(batch_size: int, pooling: str) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def warn_truncated(n_truncated: int, n_total: int, limit: int | None, where: str) -> None:
    if n_truncated:
        warnings.warn(
            f"{n_truncated} of {n_total} prompts{where} are longer than {limit} tokens and "
            "were truncated from the left",
            UserWarning,
            stacklevel=3,
        )


def _pool(hidden_states, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[L+1, B, d] from L+1 tensors [B, T, d]; pads never enter (torch.where, not products)."""
    if pooling == "last":
        return torch.stack([h[:, -1, :] for h in hidden_states]).float()
    keep = mask.bool().unsqueeze(-1)
    counts = mask.sum(dim=1, keepdim=True).to(torch.float32)
    return torch.stack(
        [torch.where(keep, h.float(), 0.0).sum(dim=1) / counts for h in hidden_states]
    )


def states_from_ids(
    model: torch.nn.Module,
    ids: list[list[int]],
    *,
    pad_id: int,
    batch_size: int = 32,
    pooling: str = "last",
    desc: str = "",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Pooled hidden states of pre-tokenised prompts; see :func:`extract_hidden_states`.

    Returns
    -------
    torch.Tensor of shape (layers + 1, n, d), float32, rows in the order of ``ids``.
    """
    _check_options(batch_size, pooling)
    if not ids:
        raise ValueError("no prompts to extract")
    empty = next((i for i, row in enumerate(ids) if not row), None)
    if empty is not None:
        raise ValueError(f"prompt {empty} has no tokens")
    body = decoder_body(model)
    device = next(body.parameters()).device
    n_layers, d = model_shape(model)
    out = torch.empty((n_layers, len(ids), d), dtype=torch.float32)
    batches = length_sorted_batches(ids, batch_size, pad_id)
    with torch.inference_mode(), autocast(device, dtype):
        for rows, batch in tqdm(
            batches, desc=desc, unit="batch", leave=False, disable=None if desc else True
        ):
            batch = {k: v.to(device) for k, v in batch.items()}
            result = body(**batch, output_hidden_states=True, use_cache=False)
            pooled = _pool(result.hidden_states, batch["attention_mask"], pooling)
            if pooled.shape != (n_layers, len(rows), d):
                raise ValueError(
                    f"{type(body).__name__} returned hidden states of shape "
                    f"{tuple(pooled.shape)}, expected {(n_layers, len(rows), d)}"
                )
            out[:, torch.tensor(rows), :] = pooled.cpu()
    return out


def extract_hidden_states(
    model: torch.nn.Module,
    tokenizer,
    prompts: list[str],
    *,
    batch_size: int = 32,
    pooling: str = "last",
    max_length: int | None = None,
    desc: str = "",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Hidden states of the prompts at every layer, pooled over each prompt.

    Parameters
    ----------
    model : transformers causal LM or peft.PeftModel
        Run in inference mode; only its decoder body is called (no lm_head).
    tokenizer : transformers tokenizer
        Adds the model's special tokens (e.g. BOS); padding is done here, on the left.
    prompts : list of str, length n
    batch_size : int
        Prompts per forward pass (after sorting by length).
    pooling : {"last", "mean"}
        ``"last"``: state at the last prompt token; ``"mean"``: mean over the prompt's
        tokens (all non-pad tokens, special tokens included).
    max_length : int, optional
        Longest prompt in tokens (capped by the model's position limit). Longer prompts
        are truncated from the left, with one warning counting them.
    desc : str
        Label of a progress bar over batches (no bar when empty).
    dtype : torch.dtype
        Autocast precision of the forward passes (float32: none); the states returned are
        cast to float32 whatever it is.

    Returns
    -------
    torch.Tensor of shape (layers + 1, n, d), float32
        Layer 0 = embeddings, layer l = block l (see the module docstring for the final
        norm); rows in the original prompt order.
    """
    prompts = _check_prompts(prompts)
    _check_options(batch_size, pooling)
    limit = context_limit(model, max_length)
    ids, n_truncated = encode_prompts(tokenizer, prompts, max_length=limit)
    warn_truncated(n_truncated, len(prompts), limit, f" ({desc})" if desc else "")
    return states_from_ids(
        model,
        ids,
        pad_id=lm.pad_id(tokenizer),
        batch_size=batch_size,
        pooling=pooling,
        desc=desc,
        dtype=dtype,
    )
