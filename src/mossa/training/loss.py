"""Cross-entropy on target tokens only, with the LM head applied only where it is needed.

A causal LM's usual forward computes logits for every position: a ``[B, T, V]`` tensor
that, with Gemma 3's 262k-token vocabulary, costs more than the rest of the model. The
loss needs logits only where a label is set, so this runs the model body to hidden
states, gathers the rows that predict a target token and applies the head to those rows
alone. The value equals the plain ``model(input_ids, labels=labels).loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mossa.training.data import IGNORE_INDEX


def causal_lm_of(model):
    """The transformers ``*ForCausalLM`` inside ``model`` (unwraps a PEFT model)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def head_logits(causal_lm, hidden: torch.Tensor) -> torch.Tensor:
    """Float32 logits of the LM head for hidden rows ``[N, d]`` -> ``[N, V]``.

    Applies the final logit soft-capping of architectures that have it (Gemma 2/3).
    """
    logits = causal_lm.get_output_embeddings()(hidden).float()
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits


def target_only_loss(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose label is not -100.

    Parameters
    ----------
    model : transformers causal LM or PEFT model wrapping one
    input_ids, attention_mask, labels : torch.Tensor, shape [B, T]
        ``labels`` is aligned with ``input_ids`` (the shift happens here), -100 where no
        loss is taken. At least one label must be set.

    Returns
    -------
    torch.Tensor
        Scalar loss (float32), averaged over target tokens.
    """
    causal_lm = causal_lm_of(model)
    body = causal_lm.get_decoder()
    hidden = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
    next_labels = labels[:, 1:]
    where = next_labels != IGNORE_INDEX
    if not bool(where.any()):
        raise ValueError("batch has no target tokens (every label is -100)")
    rows = hidden[:, :-1][where]
    return F.cross_entropy(head_logits(causal_lm, rows), next_labels[where])
