"""Task-metric evaluation of the base model, the SFT model and each task's control.

Each model answers the task's test prompts by greedy decoding (left padding, prompts
rendered with templates drawn from the run seed, the same for every model), and the
answers are scored with the task's metric, all on a 0-100 scale:

- ``accuracy``: exact match after normalisation (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), in percent;
- ``rouge_l``: mean ROUGE-L F-measure (rouge-score, Porter stemming) x 100;
- ``bleu``: corpus BLEU (sacrebleu defaults).

The base is loaded once; the SFT adapter and the controls are switched in place.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mossa.config import RunConfig

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and articles, collapse whitespace (SQuAD-style)."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions for {len(references)} references; "
            "expected one prediction per reference"
        )
    if not references:
        raise ValueError("no references to score")


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of predictions equal to their reference after :func:`normalize_answer`."""
    _check_pairs(predictions, references)
    hits = [
        normalize_answer(p) == normalize_answer(r)
        for p, r in zip(predictions, references, strict=True)
    ]
    return 100.0 * sum(hits) / len(hits)


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure x 100 (rouge-score, with stemming)."""
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [
        scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)
    ]
    return 100.0 * float(np.mean(scores))


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU of the predictions against one reference each (sacrebleu, 0-100)."""
    import sacrebleu

    _check_pairs(predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


METRIC_FUNCTIONS = {"accuracy": accuracy, "rouge_l": rouge_l, "bleu": bleu}


def score(metric: str, predictions: Sequence[str], references: Sequence[str]) -> float:
    """Score with the metric named ``metric`` (accuracy, rouge_l or bleu)."""
    if metric not in METRIC_FUNCTIONS:
        raise ValueError(f"metric {metric!r} unknown; expected one of {list(METRIC_FUNCTIONS)}")
    return METRIC_FUNCTIONS[metric](predictions, references)


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
) -> list[str]:
    """Greedy answers to ``prompts`` (new tokens only, special tokens dropped, stripped).

    Prompts are tokenised like training prompts, truncated from the left to leave room
    for ``max_new_tokens`` within ``max_length`` (cut to the characters that budget can
    use before tokenising), sorted by length and left-padded.
    """
    import torch
    from transformers import GenerationConfig

    from mossa.models.text_limits import clip_prompt
    from mossa.training.data import pad_id_of, truncate_prompt

    pad_id = pad_id_of(tokenizer)
    if max_length is None:
        ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    else:
        budget = max(1, max_length - max_new_tokens)
        clipped = [clip_prompt(p, budget) for p in prompts]
        ids = tokenizer(clipped, add_special_tokens=True)["input_ids"]
        ids = [truncate_prompt(x, budget, tokenizer.bos_token_id) for x in ids]
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
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, width - len(ids[i]) :] = torch.tensor(ids[i])
                mask[r, width - len(ids[i]) :] = 1
            out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gen)
            texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
            for i, text in zip(rows, texts, strict=True):
                answers[i] = text.strip()
    model.train(was_training)
    return answers


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
) -> float:
    """The task metric (0-100) of ``model`` on the first ``max_examples`` test examples.

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
    )
    if not any("\n" in t.strip() for t in targets):
        answers = [a.split("\n", 1)[0].strip() for a in answers]
    return score(task.metric, answers, [t.strip() for t in targets])


def run_evaluation(run_dir: Path, cfg: RunConfig, tasks: list) -> None:
    """Evaluate base, SFT and each task's control; write ``RUN/eval/task_metrics.json``.

    Records: ``{"task", "cluster", "metric", "base", "sft", "control"}`` per task;
    ``control`` is null for a task without a control adapter (``controls: seen``).
    """
    from peft import PeftModel
    from tqdm.auto import tqdm

    from mossa.models import load_base, resolve_base
    from mossa.store import atomic_write_text
    from mossa.training.loop import adapter_complete, check_adapter
    from mossa.training.lora import quiet_peft

    adapters = Path(run_dir) / "adapters"
    expected = [adapters / "sft"] + [
        adapters / f"control__{t.name}" for t in tasks if t.seen or cfg.training.controls == "all"
    ]
    for path in expected:
        check_adapter(path, Path(run_dir))
    base_path = resolve_base(cfg.model.base, trust_remote_code=cfg.model.trust_remote_code)
    base, tokenizer = load_base(base_path, trust_remote_code=cfg.model.trust_remote_code)
    with quiet_peft():
        model = PeftModel.from_pretrained(base, adapters / "sft", adapter_name="sft")
    ev = cfg.evaluation
    kwargs = {
        "max_examples": ev.max_examples,
        "max_new_tokens": ev.max_new_tokens,
        "batch_size": ev.batch_size,
        "seed": cfg.seed,
        "max_length": cfg.model.max_length,
    }
    records = []
    for task in tqdm(tasks, desc="evaluate"):
        with model.disable_adapter():
            base_score = evaluate_model(model, tokenizer, task, **kwargs)
        model.set_adapter("sft")
        sft_score = evaluate_model(model, tokenizer, task, **kwargs)
        control_score = None
        control_dir = adapters / f"control__{task.name}"
        if adapter_complete(control_dir):
            name = f"control__{task.name}"
            model.load_adapter(control_dir, adapter_name=name)
            model.set_adapter(name)
            control_score = evaluate_model(model, tokenizer, task, **kwargs)
            model.set_adapter("sft")
            model.delete_adapter(name)
        records.append(
            {
                "task": task.name,
                "cluster": task.cluster,
                "metric": task.metric,
                "base": base_score,
                "sft": sft_score,
                "control": control_score,
            }
        )
    atomic_write_text(
        Path(run_dir) / "eval" / "task_metrics.json", json.dumps(records, indent=2) + "\n"
    )
