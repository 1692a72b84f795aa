"""Greedy answers of a model to a task's test prompts, scored with the task's metric.

Prompts are tokenised as extraction tokenises them (:mod:`mossa.models.lm`), rendered with
templates drawn from the run seed (the same for every model), left-padded and decoded
greedily; answers are scored by :mod:`mossa.inference.metrics`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mossa.inference.metrics import aggregate, example_scores
from mossa.models import lm
from mossa.models.device import autocast, model_device

if TYPE_CHECKING:
    import torch


def eval_prompts(task, max_examples: int, seed: int) -> tuple[list[str], list[str]]:
    """The first ``max_examples`` test examples of ``task`` as (prompts, targets).

    Each example's template is drawn from a generator seeded by ``seed`` and the task
    name, so every model sees the same prompts.
    """
    rng = random.Random(f"mossa-eval:{seed}:{task.name}")
    pairs = [task.render(ex, rng.randrange(len(task.templates))) for ex in task.test[:max_examples]]
    return [p for p, _ in pairs], [t for _, t in pairs]


def generate_answers(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    max_length: int | None = None,
    dtype: torch.dtype | None = None,
) -> list[str]:
    """Greedy answers to ``prompts`` (new tokens only, special tokens dropped, stripped).

    Prompts are tokenised like training prompts, truncated from the left to leave room
    for ``max_new_tokens`` within ``max_length`` (cut to the characters that budget can
    use before tokenising), sorted by length and left-padded. Decoding runs on the model's
    device under autocast to ``dtype`` (None or float32: none).
    """
    import torch
    from transformers import GenerationConfig

    pad_id = lm.pad_id(tokenizer)
    budget = None if max_length is None else max(1, max_length - max_new_tokens)
    ids, _ = lm.encode_prompts(tokenizer, list(prompts), max_length=budget)
    gen = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    answers: list[str] = [""] * len(ids)
    was_training = model.training
    model.eval()
    device = model_device(model)
    with torch.no_grad(), autocast(device, dtype or torch.float32):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = lm.left_padded([ids[i] for i in rows], pad_id)
            width = batch["input_ids"].shape[1]
            out = model.generate(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                generation_config=gen,
            )
            texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
            for i, text in zip(rows, texts, strict=True):
                answers[i] = text.strip()
    model.train(was_training)
    return answers


@dataclass(frozen=True)
class Evaluation:
    """A model's task metric (0-100) and its per-example scores (see ``example_scores``)."""

    score: float
    examples: list

    @property
    def n(self) -> int:
        return len(self.examples)


def evaluate_model(
    model,
    tokenizer,
    task,
    *,
    max_examples: int,
    max_new_tokens: int,
    batch_size: int,
    seed: int = 0,
    max_length: int | None = None,
    dtype: torch.dtype | None = None,
) -> Evaluation:
    """The task metric of ``model`` on the first ``max_examples`` test examples, per example too.

    When no reference spans several lines, an answer is cut at its first line break
    (a model that has not learnt to stop would otherwise be scored on its rambling).
    """
    prompts, targets = eval_prompts(task, max_examples, seed)
    if not prompts:
        raise ValueError(f"task {task.name!r} has no test examples to evaluate")
    answers = generate_answers(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        max_length=max_length,
        dtype=dtype,
    )
    if not any("\n" in t.strip() for t in targets):
        answers = [a.split("\n", 1)[0].strip() for a in answers]
    examples = example_scores(task.metric, answers, [t.strip() for t in targets])
    return Evaluation(aggregate(task.metric, examples), examples)
