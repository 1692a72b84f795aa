"""Training examples as token ids, and the batches the loop feeds the model.

An example is its prompt tokens followed by its target tokens and the EOS token. The
prompt is tokenised on its own (with the tokenizer's special tokens), exactly as
evaluation and extraction tokenise it, so the model is trained on the same prompt
tokens whose last hidden state is later analysed. The target's tokens are those that
``prompt + separator + target`` has beyond the prompt's, so the answer is tokenised as it
would be in running text (" positive" after "negative?", not a word-initial "positive"
glued to the "?"); when the joint tokenisation merges tokens across the boundary, the
target is tokenised alone instead. Loss falls only on the target and EOS
(labels are -100 on prompt and padding). Examples longer than ``max_length`` lose
prompt tokens from the LEFT (the end of the prompt, next to the answer, is kept; a
leading BOS token is kept too). Prompts and targets are cut to the characters that
budget can use before tokenising (:mod:`mossa.models.text_limits`), so a huge field costs
no more than a normal one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mossa.models.lm import truncate_prompt
from mossa.models.text_limits import clip_prompt, clip_target

IGNORE_INDEX = -100
BUCKET_BATCHES = 32  # batches per length-sorted bucket: less padding, order still random


@dataclass(frozen=True)
class Encoded:
    """One tokenised example: ``ids`` = prompt tokens + target tokens (+ EOS)."""

    ids: tuple[int, ...]
    n_prompt: int

    def __len__(self) -> int:
        return len(self.ids)


def target_ids(prompt_ids: list[int], full_ids: list[int], alone_ids: list[int]) -> list[int]:
    """The target's tokens: ``full_ids`` beyond ``prompt_ids`` when it extends them,
    else ``alone_ids`` (the target tokenised on its own)."""
    n = len(prompt_ids)
    if len(full_ids) > n and full_ids[:n] == prompt_ids:
        return full_ids[n:]
    return alone_ids


def joined_target(prompt: str, target: str, separator: str) -> str:
    """``separator + target``, without the separator when the prompt already ends in
    whitespace or the target starts with it."""
    if not prompt or prompt[-1].isspace() or not target or target[0].isspace():
        return target
    return separator + target


def encode_items(
    items: Sequence, tokenizer, max_length: int, separator: str = " "
) -> list[Encoded]:
    """Tokenise ``(prompt, target)`` items into :class:`Encoded` examples.

    Parameters
    ----------
    items : sequence
        Objects with ``.prompt`` and ``.target`` strings (``mossa.tasks.TrainItem``).
    tokenizer : transformers tokenizer
        Must define an EOS token.
    max_length : int
        Maximum prompt + target + EOS tokens; at least 2 (one prompt, one target token).
    separator : str
        Text between prompt and target (see :func:`joined_target`).
    """
    if max_length < 2:
        raise ValueError(
            f"max_length must be >= 2 (one prompt and one target token), got {max_length}"
        )
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no EOS token; set eos_token")
    if not items:
        return []
    texts = [clip_prompt(it.prompt, max_length) for it in items]
    answers = [
        clip_target(joined_target(t, it.target, separator), max_length)
        for t, it in zip(texts, items, strict=True)
    ]
    prompts = tokenizer(texts, add_special_tokens=True)["input_ids"]
    fulls = tokenizer(
        [t + a for t, a in zip(texts, answers, strict=True)], add_special_tokens=True
    )["input_ids"]
    alone = tokenizer(answers, add_special_tokens=False)["input_ids"]
    encoded = []
    for prompt_ids, full_ids, alone_ids in zip(prompts, fulls, alone, strict=True):
        answer_ids = [*target_ids(prompt_ids, full_ids, alone_ids), eos][: max_length - 1]
        prompt_ids = truncate_prompt(
            prompt_ids, max_length - len(answer_ids), tokenizer.bos_token_id
        )
        if not prompt_ids:  # an empty prompt still needs one position to predict from
            prompt_ids = [tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos]
        encoded.append(Encoded(tuple(prompt_ids + answer_ids), len(prompt_ids)))
    return encoded


def batch_order(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices of one epoch's batches: shuffled, then length-bucketed, then shuffled again.

    The order is a pure function of ``(seed, epoch)``, so a resumed run only needs the
    epoch and the position inside it to continue with exactly the same batches.

    Parameters
    ----------
    lengths : sequence of int, shape [n]
        Token count of every example.
    batch_size : int
    seed, epoch : int

    Returns
    -------
    list of list of int
        ``ceil(n / batch_size)`` batches covering every index once (the last may be short
        when ``n`` is not a multiple of ``batch_size``).
    """
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths)
    perm = rng.permutation(len(lengths))
    bucket = batch_size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(perm), bucket):
        chunk = perm[start : start + bucket]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(examples: Sequence[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 off target).

    Right padding keeps every example's positions 0..n-1, as when it is alone.

    Returns
    -------
    dict of torch.Tensor, each shape [B, T] with T the longest example.
    """
    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        ids = torch.tensor(e.ids, dtype=torch.long)
        input_ids[row, : len(e)] = ids
        mask[row, : len(e)] = 1
        labels[row, e.n_prompt : len(e)] = ids[e.n_prompt :]
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
