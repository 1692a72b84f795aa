"""Data-parallel training over ``torch.distributed``: each worker one slice of every batch.

Every worker holds the same base and the same LoRA weights (same seed) and takes rows
``rank, rank + world, ...`` of each global batch. Its loss is the sum of its target
tokens' cross-entropy divided by the global batch's target-token count, so the summed
gradients (one all-reduce of all LoRA gradients, flattened) equal the gradient of the
one-process loss on the whole batch: the same update within float tolerance, whatever
the number of workers. Validation is split by batches the same way and its sums reduced,
so every worker takes the same early-stopping decision. The process group is the
caller's (Ray Train's TorchTrainer sets it up: gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DataParallel:
    """This process's place among ``world`` data-parallel workers.

    ``rank`` 0 is the main worker: the only one that writes files (log, checkpoints,
    snapshots, the adapter).
    """

    rank: int
    world: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank must be in [0, {self.world}), got {self.rank}")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, items: Sequence) -> list:
        """This worker's share of one global batch (rows rank, rank + world, ...)."""
        return list(items[self.rank :: self.world])

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all workers (float64)."""
        t = torch.tensor(list(values), dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return t.tolist()

    def sum_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its sum over all workers (one all-reduce)."""
        grads = [p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def target_tokens(examples: Sequence) -> int:
    """Tokens that carry a loss in a batch of :class:`mossa.training.data.Encoded`
    (every position after the prompt: the answer and its end-of-sequence token)."""
    return sum(len(e) - e.n_prompt for e in examples)
