"""A small GPT-2 built from scratch, and its hidden states at the output-predicting position.

Layer convention (``output_hidden_states=True`` of ``GPT2LMHeadModel``): layer 0 is the
embedding output (token + position embedding); layer ``l`` for ``1 <= l < n_layer`` is the
residual stream after block ``l``; layer ``n_layer`` is the output of the last block *with the
final LayerNorm ``ln_f`` applied*, i.e. exactly what the LM head reads. Hidden states are taken
at the input-token position, whose next-token logits predict the output token.
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


@torch.no_grad()
def states_and_predictions(
    model: GPT2LMHeadModel, data: EncodedInstances, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Hidden states of every layer at the output-predicting position, and the predictions.

    Parameters
    ----------
    model : GPT2LMHeadModel, used in eval mode (restored afterwards)
    data : EncodedInstances with n rows

    Returns
    -------
    states : float32 array [n_layer + 1, n, n_embd]  (layer 0 = embeddings, last = after ln_f)
    predictions : int64 array [n]  argmax token id of the logits at that position
    """
    was_training = model.training
    model.eval()
    states, predictions = [], []
    for start in range(0, len(data), batch_size):
        batch = data.subset(torch.arange(start, min(start + batch_size, len(data))))
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            output_hidden_states=True,
        )
        rows = torch.arange(len(batch))
        states.append(torch.stack([h[rows, batch.predict_pos] for h in out.hidden_states]))
        predictions.append(out.logits[rows, batch.predict_pos].argmax(-1))
    model.train(was_training)
    return torch.cat(states, dim=1).float().numpy(), torch.cat(predictions).numpy()
