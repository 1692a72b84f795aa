"""Task metrics on a 0-100 scale, as the paper reports them (Tables 3 and 4).

- ``accuracy``: exact match after normalisation (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), in percent;
- ``rouge_l``: mean ROUGE-L F-measure (rouge-score, Porter stemming) x 100;
- ``bleu``: corpus BLEU (sacrebleu defaults).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

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
