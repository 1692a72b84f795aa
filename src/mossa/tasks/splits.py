"""Deterministic train / validation / test splits for data that comes without them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def holdout_counts(n: int, n_validation: int, n_test: int) -> tuple[int, int, int]:
    """``(train, validation, test)`` sizes for ``n`` examples (``n >= 3``).

    Validation and test get ``n_validation`` and ``n_test`` examples, but never more than
    a tenth and a fifth of the data (at least one each), so training keeps the bulk.
    """
    if n < 3:
        raise ValueError(f"need at least 3 examples to split into train/validation/test, got {n}")
    validation = min(n_validation, max(1, n // 10))
    test = min(n_test, max(1, n // 5))
    return n - validation - test, validation, test


def holdout_split(
    items: Sequence[T], key: str, n_validation: int, n_test: int
) -> tuple[list[T], list[T], list[T]]:
    """Shuffle ``items`` with an RNG seeded by ``key`` and cut off validation and test."""
    order = random.Random(key).sample(range(len(items)), len(items))
    _, n_val, n_test_ = holdout_counts(len(items), n_validation, n_test)
    test = [items[i] for i in order[:n_test_]]
    validation = [items[i] for i in order[n_test_ : n_test_ + n_val]]
    train = [items[i] for i in order[n_test_ + n_val :]]
    return train, validation, test


def water_fill(sizes: list[int], cap: int) -> list[int]:
    """Largest per-task counts ``<= sizes`` summing to at most ``cap``, trimming big tasks first.

    Max-min fair: every task keeps ``min(size, level)`` for the highest level that fits,
    so a cluster cap never shrinks a task that is already small.
    """
    if sum(sizes) <= cap:
        return list(sizes)
    allocation = [0] * len(sizes)
    remaining, left = cap, len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        allocation[i] = min(sizes[i], remaining // left)
        remaining -= allocation[i]
        left -= 1
    return allocation
