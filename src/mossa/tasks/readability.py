"""Reading difficulty of a task's prompts: Flesch-Kincaid grade and Coleman-Liau index.

Scores come from textstat. Its English syllable counter needs the CMU pronouncing
dictionary, which it downloads through nltk on first use; with no internet that fails.
mossa therefore asks textstat for language ``en-US``, which textstat does not map to the
CMU dictionary and so counts syllables with pyphen's en_US hyphenation patterns (textstat's
behaviour before 0.7.4). Only the syllable source differs, and it is the same on every
machine, so scores are reproducible offline.

Flesch-Kincaid is textstat's (0.39 words/sentence + 11.8 syllables/word - 15.59).
Coleman-Liau is computed here from textstat's letter, word and sentence counts with the
published coefficient 0.0588 (textstat 0.7.13 uses 0.058, which lowers the index by
about 0.5 grade on typical text).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from mossa.tasks.mixing import analysis_prompts
from mossa.tasks.types import Task

TEXTSTAT_LANG = "en-US"


@lru_cache(maxsize=1)
def _textstat():
    from textstat.textstat import textstatistics

    stats = textstatistics()
    stats.set_lang(TEXTSTAT_LANG)
    return stats


def _coleman_liau(stats, text: str) -> float:
    """0.0588 L - 0.296 S - 15.8 (L letters, S sentences per 100 words); 0.0 without words."""
    words = stats.lexicon_count(text)
    if words == 0:
        return 0.0
    letters = 100 * stats.letter_count(text) / words
    sentences = 100 * stats.sentence_count(text) / words
    return 0.0588 * letters - 0.296 * sentences - 15.8


def readability(texts: Sequence[str]) -> dict:
    """Mean Flesch-Kincaid grade and Coleman-Liau index over ``texts`` (NaN when empty).

    Returns
    -------
    dict
        ``{"flesch_kincaid": float, "coleman_liau": float, "n": int}``
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        return {"flesch_kincaid": float("nan"), "coleman_liau": float("nan"), "n": 0}
    stats = _textstat()
    fk = [stats.flesch_kincaid_grade(t) for t in texts]
    cl = [_coleman_liau(stats, t) for t in texts]
    return {
        "flesch_kincaid": sum(fk) / len(fk),
        "coleman_liau": sum(cl) / len(cl),
        "n": len(texts),
    }


def task_readability(task: Task, *, n: int = 100, seed: int = 0) -> dict:
    """Readability of up to ``n`` of the task's analysis prompts (see :func:`readability`)."""
    return readability(analysis_prompts(task, n, seed=seed))
