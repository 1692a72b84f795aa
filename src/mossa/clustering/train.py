"""Training loop (nanoGPT-short): AdamW, linear warmup then cosine decay, pauses at checkpoints.

``train_with_checkpoints`` is a generator: it yields at every configured checkpoint step
(0 = before the first update) with the model in eval mode, so the caller can measure it;
training resumes when the caller asks for the next checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import GPT2LMHeadModel, get_cosine_schedule_with_warmup

from mossa.clustering.config import TrainConfig
from mossa.clustering.tokens import EncodedInstances


@dataclass(frozen=True)
class Checkpoint:
    """A pause in training: the step reached and the mean training loss since the last pause."""

    step: int
    train_loss: float  # NaN at step 0


def lm_labels(data: EncodedInstances, loss_on: str) -> torch.Tensor:
    """Labels for ``GPT2LMHeadModel`` (which shifts them): every real token, or the output only."""
    if loss_on == "all":
        return data.input_ids.masked_fill(data.attention_mask == 0, -100)
    labels = torch.full_like(data.input_ids, -100)
    rows = torch.arange(len(data))
    labels[rows, data.predict_pos + 1] = data.target
    return labels


def _adamw(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, LayerNorm gains)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2))


def train_with_checkpoints(
    model: GPT2LMHeadModel, data: EncodedInstances, cfg: TrainConfig, seed: int
) -> Iterator[Checkpoint]:
    """Train ``model`` in place on random batches of ``data``; yield at each checkpoint step."""
    labels = lm_labels(data, cfg.loss_on)
    optimizer = _adamw(model, cfg)
    schedule = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    batches = torch.Generator().manual_seed(seed)
    checkpoints = set(cfg.checkpoints)
    loss_sum, loss_count = 0.0, 0
    model.train()
    with tqdm(total=cfg.steps, desc="train GPT-2", unit="step", disable=None) as bar:
        for step in range(cfg.steps + 1):
            if step in checkpoints:
                model.eval()
                yield Checkpoint(step, loss_sum / loss_count if loss_count else float("nan"))
                model.train()
                loss_sum, loss_count = 0.0, 0
            if step == cfg.steps:
                break
            index = torch.randint(len(data), (cfg.batch_size,), generator=batches)
            out = model(
                input_ids=data.input_ids[index],
                attention_mask=data.attention_mask[index],
                labels=labels[index],
            )
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum, loss_count = loss_sum + out.loss.item(), loss_count + 1
            bar.update(1)
            bar.set_postfix(loss=f"{out.loss.item():.3f}")
