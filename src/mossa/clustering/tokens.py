"""Word-level tokenizer and tensor encoding of ``[instruction; SEP; input; output]`` sequences.

Every instruction word, input token and output token is one token, so no subword tokenizer
is needed. Sequences are right-padded: with causal attention, padding after a position
cannot change that position's hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mossa.clustering.regex_tasks import Instance, RegexTaskSuite

PAD = "<pad>"
SEP = "<sep>"


class WordTokenizer:
    """Maps word tokens to ids; ``PAD`` is id 0 and ``SEP`` id 1."""

    def __init__(self, suite: RegexTaskSuite) -> None:
        self.vocab = (
            PAD,
            SEP,
            *suite.instruction_words,
            *suite.input_tokens,
            *suite.output_tokens,
        )
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.sep_id = self.ids[PAD], self.ids[SEP]

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, words: list[str] | tuple[str, ...]) -> list[int]:
        try:
            return [self.ids[w] for w in words]
        except KeyError as exc:
            raise ValueError(f"token {exc.args[0]!r} is not in the vocabulary") from None


@dataclass(frozen=True)
class EncodedInstances:
    """Instances as tensors.

    Attributes
    ----------
    input_ids : LongTensor [n, seq_len]  right-padded with ``PAD``
    attention_mask : LongTensor [n, seq_len]
    sep_pos : LongTensor [n]  index of ``SEP``, i.e. the instruction's length; the last
        instruction word is at ``sep_pos - 1``
    predict_pos : LongTensor [n]  index of the input token (``sep_pos + 1``), whose
        next-token logits predict the output
    target : LongTensor [n]  id of the output token
    task : LongTensor [n]  task index (the clustering labels)
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    sep_pos: torch.Tensor
    predict_pos: torch.Tensor
    target: torch.Tensor
    task: torch.Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def subset(self, index: torch.Tensor) -> EncodedInstances:
        return EncodedInstances(
            self.input_ids[index],
            self.attention_mask[index],
            self.sep_pos[index],
            self.predict_pos[index],
            self.target[index],
            self.task[index],
        )


def encode_instances(
    instances: list[Instance], tokenizer: WordTokenizer, seq_len: int
) -> EncodedInstances:
    """Encode instances as ``instruction + [SEP, input, output]``, right-padded to ``seq_len``."""
    if not instances:
        raise ValueError("no instances to encode")
    ids = np.full((len(instances), seq_len), tokenizer.pad_id, dtype=np.int64)
    lengths = np.empty(len(instances), dtype=np.int64)
    for row, inst in enumerate(instances):
        seq = tokenizer.encode([*inst.instruction, SEP, inst.input, inst.output])
        if len(seq) > seq_len:
            raise ValueError(f"sequence of {len(seq)} tokens exceeds seq_len={seq_len}")
        ids[row, : len(seq)] = seq
        lengths[row] = len(seq)
    input_ids = torch.from_numpy(ids)
    positions = torch.arange(seq_len)
    return EncodedInstances(
        input_ids=input_ids,
        attention_mask=(positions[None, :] < torch.from_numpy(lengths)[:, None]).long(),
        sep_pos=torch.from_numpy(lengths - 3),
        predict_pos=torch.from_numpy(lengths - 2),
        target=input_ids[torch.arange(len(instances)), torch.from_numpy(lengths - 1)],
        task=torch.tensor([inst.task for inst in instances], dtype=torch.long),
    )


def sample_per_task(encoded: EncodedInstances, n_per_task: int, seed: int) -> EncodedInstances:
    """A fixed random subset with ``min(n_per_task, available)`` instances of every task."""
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for task in torch.unique(encoded.task):
        rows = torch.nonzero(encoded.task == task).flatten()
        keep.append(rows[torch.randperm(len(rows), generator=gen)[:n_per_task]])
    return encoded.subset(torch.sort(torch.cat(keep)).values)
