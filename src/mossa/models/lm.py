"""Language-model plumbing that evaluation and extraction share, so both see the same tokens.

- :func:`encode_prompts`: prompts cut to the characters the token budget can use, tokenised
  with the tokenizer's special tokens, left-truncated keeping BOS;
- :func:`pad_id` and :func:`left_padded`: left padding with position ids that count real
  tokens only;
- :func:`length_sorted_batches`: batches of similar length (little padding);
- :class:`AdapterSlot`: one base model with LoRA adapters switched in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from mossa.models.text_limits import clip_prompt

MAX_PADDING = 0.25  # a batch holds at most this many pad tokens per real token


def encode_prompts(tokenizer, prompts: list[str], *, max_length: int | None) -> tuple[list, int]:
    """Token ids of each prompt (with the tokenizer's special tokens), left-truncated.

    Prompts are first cut to the characters ``max_length`` tokens can use
    (:func:`mossa.models.text_limits.clip_prompt`), so a huge prompt is never tokenised
    whole; then each prompt keeps its last tokens, and a leading BOS token
    (:func:`truncate_prompt`), as tokenising with left truncation would give.

    Returns
    -------
    ids : list of list of int
        One id list per prompt, in prompt order, none longer than ``max_length``.
    n_truncated : int
        How many prompts were longer than ``max_length`` and lost tokens on the left.
    """
    if max_length is None:
        return tokenizer(list(prompts), add_special_tokens=True, verbose=False)["input_ids"], 0
    clipped = [clip_prompt(p, max_length) for p in prompts]
    cut_chars = {i for i, (p, c) in enumerate(zip(prompts, clipped, strict=True)) if p != c}
    ids = tokenizer(clipped, add_special_tokens=True, verbose=False)["input_ids"]
    long = {i for i, row in enumerate(ids) if len(row) > max_length}
    ids = [truncate_prompt(row, max_length, tokenizer.bos_token_id) for row in ids]
    return ids, len(cut_chars | long)


def truncate_prompt(ids: Sequence[int], budget: int, bos_id: int | None) -> list[int]:
    """Keep the last ``budget`` prompt tokens, and a leading BOS token when there is one.

    Parameters
    ----------
    ids : sequence of int
        Prompt token ids as the tokenizer returned them.
    budget : int
        Number of prompt tokens that fit (>= 1).
    bos_id : int or None
        The tokenizer's BOS id; kept in front when ``ids`` starts with it.
    """
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    if bos_id is not None and ids and ids[0] == bos_id and budget > 1:
        return [ids[0], *ids[len(ids) - budget + 1 :]]
    return ids[len(ids) - budget :]


def pad_id(tokenizer) -> int:
    """The id padded positions get: the pad token, else EOS, else 0 (they are masked out)."""
    for tok_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tok_id is not None:
            return int(tok_id)
    return 0


def left_padded(rows: list[list[int]], pad: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` and ``position_ids`` of token rows padded on the left.

    Position ids count real tokens only, so a left-padded prompt sees the positions it
    would see alone.
    """
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        input_ids[b, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[b, width - len(row) :] = 1
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {"input_ids": input_ids, "attention_mask": mask, "position_ids": position_ids}


def _group(order: list[int], lengths: list[int], batch_size: int) -> list[list[int]]:
    """Consecutive groups of ``order`` (longest first), each at most ``batch_size`` long.

    A group also ends before a prompt that would make its padding exceed
    ``MAX_PADDING`` times its real tokens, so mixed lengths do not waste compute on pads.
    """
    groups, group, real = [], [], 0
    for i in order:
        if group:
            width = lengths[group[0]]
            too_padded = (len(group) + 1) * width > (1 + MAX_PADDING) * (real + lengths[i])
            if len(group) == batch_size or too_padded:
                groups.append(group)
                group, real = [], 0
        group.append(i)
        real += lengths[i]
    return [*groups, group] if group else groups


def length_sorted_batches(ids: list[list[int]], batch_size: int, pad_id: int):
    """Batches of prompts sorted by length (longest first), padded on the left.

    Yields
    ------
    rows : list of int
        Indices into ``ids`` of the batch's prompts (at most ``batch_size``).
    batch : dict of torch.Tensor, each of shape (len(rows), longest)
        See :func:`left_padded`.
    """
    lengths = [len(row) for row in ids]
    order = sorted(range(len(ids)), key=lambda i: (-lengths[i], i))
    for rows in _group(order, lengths, batch_size):
        yield rows, left_padded([ids[i] for i in rows], pad_id)


class AdapterSlot:
    """The base model with at most one LoRA adapter active, switched in place.

    The first adapter wraps the base in a PeftModel; later ones are loaded into the same
    PeftModel, made active, and the previous one is deleted, so the base is never
    reloaded and at most two adapters are in memory at once.
    """

    def __init__(self, base: torch.nn.Module):
        self.base = base
        self.peft = None
        self.active: str | None = None

    def use(self, adapter: str, path: Path) -> torch.nn.Module:
        """The model with ``adapter`` (a PEFT adapter directory at ``path``) active."""
        if adapter == self.active:
            return self.peft
        if self.peft is None:
            from peft import PeftModel

            from mossa.training.lora import quiet_peft

            with quiet_peft():
                self.peft = PeftModel.from_pretrained(
                    self.base, str(path), adapter_name=adapter, is_trainable=False
                )
        else:
            self.peft.load_adapter(str(path), adapter_name=adapter, is_trainable=False)
            self.peft.set_adapter(adapter)
            self.peft.delete_adapter(self.active)
        self.peft.eval()
        self.active = adapter
        return self.peft

    @contextlib.contextmanager
    def disabled(self) -> Iterator[torch.nn.Module]:
        """The base model's behaviour with the active adapter switched off for the block."""
        if self.peft is None:
            yield self.base
            return
        with self.peft.disable_adapter():
            yield self.peft
