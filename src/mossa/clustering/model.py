"""A small GPT-2 built from scratch, and its hidden states at chosen positions of a sequence.

Layer convention (``output_hidden_states=True`` of ``GPT2LMHeadModel``): layer 0 is the
embedding output (token + position embedding); layer ``l`` for ``1 <= l < n_layer`` is the
residual stream after block ``l``; layer ``n_layer`` is the output of the last block *with the
final LayerNorm ``ln_f`` applied*, i.e. exactly what the LM head reads. Positions of a
sequence ``instruction SEP input output``: ``separator`` (SEP), ``last_word`` (the last
instruction word), ``input`` (the input token, whose logits predict the output) and
``instruction_mean`` (the mean over the instruction words).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import GPT2Config as HFGPT2Config
from transformers import GPT2LMHeadModel

from mossa.clustering.config import GPT2Config
from mossa.clustering.tokens import EncodedInstances


def build_model(cfg: GPT2Config, vocab_size: int, seq_len: int, seed: int) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2; the same seed gives the same weights (global RNG untouched)."""
    config = HFGPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
        loss_type="ForCausalLM",  # named explicitly: transformers warns when it is left unset
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config)


def _at_position(hidden: torch.Tensor, batch: EncodedInstances, position: str) -> torch.Tensor:
    """States ``[B, d]`` of one layer's ``hidden [B, T, d]`` at a named position."""
    rows = torch.arange(len(batch))
    if position == "separator":
        return hidden[rows, batch.sep_pos]
    if position == "last_word":
        return hidden[rows, batch.sep_pos - 1]
    if position == "input":
        return hidden[rows, batch.predict_pos]
    if position == "instruction_mean":
        words = torch.arange(hidden.shape[1])[None, :] < batch.sep_pos[:, None]
        return (hidden * words[:, :, None]).sum(1) / batch.sep_pos[:, None]
    raise ValueError(f"unknown position {position!r}")


@torch.no_grad()
def states_and_predictions(
    model: GPT2LMHeadModel,
    data: EncodedInstances,
    positions: list[str],
    batch_size: int = 512,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Hidden states of every layer at each position, and the output predictions.

    Parameters
    ----------
    model : GPT2LMHeadModel, used in eval mode (restored afterwards)
    data : EncodedInstances with n rows
    positions : names from ``separator``, ``last_word``, ``input``, ``instruction_mean``

    Returns
    -------
    states : {position: float32 array [n_layer + 1, n, n_embd]}  (layer 0 = embeddings,
        last = after ln_f)
    predictions : int64 array [n]  argmax token id of the logits at the input token
    """
    was_training = model.training
    model.eval()
    states: dict[str, list[torch.Tensor]] = {p: [] for p in positions}
    predictions = []
    for start in range(0, len(data), batch_size):
        batch = data.subset(torch.arange(start, min(start + batch_size, len(data))))
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            output_hidden_states=True,
        )
        for position in positions:
            states[position].append(
                torch.stack([_at_position(h, batch, position) for h in out.hidden_states])
            )
        predictions.append(out.logits[torch.arange(len(batch)), batch.predict_pos].argmax(-1))
    model.train(was_training)
    return (
        {p: torch.cat(s, dim=1).float().numpy() for p, s in states.items()},
        torch.cat(predictions).numpy(),
    )
