"""Task metrics on a 0-100 scale, as the paper reports them (Tables 3 and 4).

- ``accuracy``: exact match after normalisation (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), in percent;
- ``rouge_l``: mean ROUGE-L F-measure (rouge-score, Porter stemming) x 100;
- ``bleu``: corpus BLEU (sacrebleu defaults).

Each metric is also kept per example (:func:`example_scores`), so that the analysis can put
intervals on it by resampling examples: the metric is :func:`aggregate` of its examples.
For accuracy an example is 1 (hit) or 0, for ROUGE-L its F-measure x 100, for BLEU its
sentence statistics (hypothesis and reference length, matching and total n-grams, n = 1..4),
whose sum gives corpus BLEU.
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


def _hits(predictions: Sequence[str], references: Sequence[str]) -> list[int]:
    return [
        int(normalize_answer(p) == normalize_answer(r))
        for p, r in zip(predictions, references, strict=True)
    ]


def _rouge_l(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [
        100.0 * scorer.score(r, p)["rougeL"].fmeasure
        for p, r in zip(predictions, references, strict=True)
    ]


def _bleu_stats(predictions: Sequence[str], references: Sequence[str]) -> list[list[int]]:
    # sacrebleu's own per-sentence statistics (pinned version; a test checks their sum
    # reproduces corpus_bleu), so that resampled corpora are scored without re-tokenising.
    from sacrebleu.metrics import BLEU

    return [[int(v) for v in row] for row in BLEU()._extract_corpus_statistics(
        list(predictions), [list(references)]
    )]  # fmt: skip


def bleu_from_stats(stats) -> float:
    """Corpus BLEU (sacrebleu defaults) from summed sentence statistics [10]."""
    from sacrebleu.metrics import BLEU

    return float(BLEU()._compute_score_from_stats([int(v) for v in stats]).score)


PER_EXAMPLE = {"accuracy": _hits, "rouge_l": _rouge_l, "bleu": _bleu_stats}


def example_scores(metric: str, predictions: Sequence[str], references: Sequence[str]) -> list:
    """Per-example scores of ``metric``: 0/1 hits, ROUGE-L x 100, or BLEU statistics."""
    if metric not in PER_EXAMPLE:
        raise ValueError(f"metric {metric!r} unknown; expected one of {list(PER_EXAMPLE)}")
    _check_pairs(predictions, references)
    return PER_EXAMPLE[metric](predictions, references)


def aggregate(metric: str, examples) -> float:
    """The metric (0-100) of a set of examples from their :func:`example_scores`."""
    values = np.asarray(examples, dtype=np.float64)
    if len(values) == 0:
        raise ValueError("no examples to aggregate")
    if metric == "bleu":
        return bleu_from_stats(values.sum(axis=0))
    scale = 100.0 if metric == "accuracy" else 1.0
    return scale * float(values.mean())


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of predictions equal to their reference after :func:`normalize_answer`."""
    return aggregate("accuracy", example_scores("accuracy", predictions, references))


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure x 100 (rouge-score, with stemming)."""
    return aggregate("rouge_l", example_scores("rouge_l", predictions, references))


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU of the predictions against one reference each (sacrebleu, 0-100)."""
    return aggregate("bleu", example_scores("bleu", predictions, references))


METRIC_FUNCTIONS = {"accuracy": accuracy, "rouge_l": rouge_l, "bleu": bleu}


def score(metric: str, predictions: Sequence[str], references: Sequence[str]) -> float:
    """Score with the metric named ``metric`` (accuracy, rouge_l or bleu)."""
    if metric not in METRIC_FUNCTIONS:
        raise ValueError(f"metric {metric!r} unknown; expected one of {list(METRIC_FUNCTIONS)}")
    return METRIC_FUNCTIONS[metric](predictions, references)
