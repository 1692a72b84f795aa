"""Shared machinery of the built-in suite: task specs, seeded building, text helpers.

A built-in task is a :class:`BuiltinSpec`: fixed metadata and templates plus a
generator that, given a seeded ``random.Random``, yields candidate examples in random
order. :func:`build_task` keeps the first unique ones (by inputs) and cuts them into
train / validation / test, so splits never share an input and the whole task is a pure
function of ``(seed, task name, sizes)``.
"""

from __future__ import annotations

import random
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from mossa.tasks.clusters import UNSEEN_CLUSTER
from mossa.tasks.texts import Article, Tweet, tweets, wiki_articles
from mossa.tasks.types import Example, Metric, Task, Template

Generator = Callable[[random.Random], Iterable[Example]]


@dataclass(frozen=True)
class BuiltinSpec:
    """A built-in task before sampling: metadata, templates and an example generator."""

    name: str
    cluster: str
    metric: Metric
    source: str
    templates: tuple[Template, ...]
    generate: Generator


def templates(*items: str | tuple[str, str]) -> tuple[Template, ...]:
    """Templates from prompt strings or ``(prompt, target)`` pairs."""
    return tuple(Template(*item) if isinstance(item, tuple) else Template(item) for item in items)


def split_counts(n: int, n_train: int, n_validation: int, n_test: int) -> tuple[int, int, int]:
    """Split sizes for ``n`` examples: as asked when there are enough, else scaled down."""
    total = n_train + n_validation + n_test
    if n >= total:
        return n_train, n_validation, n_test
    n_val = max(1, round(n * n_validation / total))
    n_tst = max(1, round(n * n_test / total))
    return n - n_val - n_tst, n_val, n_tst


def build_task(
    spec: BuiltinSpec, *, seed: int, n_train: int, n_validation: int, n_test: int
) -> Task:
    """Sample ``spec`` into a :class:`Task` with disjoint splits, deterministically."""
    rng = random.Random(f"mossa-builtin:{seed}:{spec.name}")
    wanted = n_train + n_validation + n_test
    keys: set[tuple[tuple[str, str], ...]] = set()
    examples: list[Example] = []
    repeats = 0
    for example in spec.generate(rng):
        key = tuple(sorted(example.inputs.items()))
        if key in keys:
            repeats += 1
            if repeats > 50 * wanted + 1000:  # the generator's space is nearly exhausted
                break
            continue
        keys.add(key)
        examples.append(example)
        if len(examples) == wanted:
            break
    if len(examples) < 3:
        raise ValueError(f"built-in task {spec.name!r}: generated only {len(examples)} examples")
    tr, va, te = split_counts(len(examples), n_train, n_validation, n_test)
    if len(examples) < wanted:
        warnings.warn(
            f"built-in task {spec.name!r}: only {len(examples)} distinct examples for the "
            f"{wanted} asked; splits scaled to {tr}/{va}/{te}",
            stacklevel=2,
        )
    return Task(
        name=spec.name,
        cluster=spec.cluster,
        seen=spec.cluster != UNSEEN_CLUSTER,
        templates=spec.templates,
        train=tuple(examples[:tr]),
        validation=tuple(examples[tr : tr + va]),
        test=tuple(examples[tr + va : tr + va + te]),
        metric=spec.metric,
        source=spec.source,
    )


def shuffled(rng: random.Random, items: Sequence) -> list:
    """A seeded random permutation of ``items``."""
    return rng.sample(list(items), len(items))


def forever(make: Callable[[random.Random], Example | None]) -> Generator:
    """A generator function that calls ``make(rng)`` until the builder has enough."""

    def generate(rng: random.Random) -> Iterator[Example]:
        while True:
            example = make(rng)
            if example is not None:
                yield example

    return generate


def over_articles(
    eligible: Callable[[], Sequence[Article]],
    make: Callable[[Article, random.Random], Example | None],
) -> Generator:
    """A generator function yielding ``make(article, rng)`` over shuffled eligible articles."""

    def generate(rng: random.Random) -> Iterator[Example]:
        for article in shuffled(rng, eligible()):
            example = make(article, rng)
            if example is not None:
                yield example

    return generate


def stratified(
    eligible: Callable[[], dict[str, Sequence[Article]]],
    make: Callable[[Article, random.Random], Example | None],
) -> Generator:
    """Like :func:`over_articles`, but cycling through the groups (e.g. labels) in turn."""

    def generate(rng: random.Random) -> Iterator[Example]:
        groups = eligible()
        queues = {k: shuffled(rng, groups[k]) for k in sorted(groups)}
        while any(queues.values()):
            for key in sorted(queues):
                if queues[key]:
                    example = make(queues[key].pop(), rng)
                    if example is not None:
                        yield example

    return generate


def n_words(text: str) -> int:
    return len(text.split())


def lead(sentences: Sequence[str], max_words: int, min_sentences: int = 1) -> str | None:
    """The first sentences that fit in ``max_words`` (None if fewer than ``min_sentences`` fit)."""
    kept: list[str] = []
    count = 0
    for sentence in sentences:
        count += n_words(sentence)
        if count > max_words:
            break
        kept.append(sentence)
    return " ".join(kept) if len(kept) >= min_sentences else None


def plain_title(title: str) -> str:
    """Title without a trailing disambiguation: ``Division (mathematics)`` -> ``Division``."""
    return re.sub(r"\s*\([^)]*\)$", "", title)


def a_or_an(phrase: str) -> str:
    """``phrase`` with the indefinite article English expects in front of it."""
    word = phrase.split()[0].lower() if phrase.split() else ""
    vowel = word[:1] in "aeiou" and not word.startswith(("uni", "use", "eu", "one"))
    vowel = vowel or bool(re.match(r"(8|11|18)(\D|$)", word))
    return f"{'an' if vowel else 'a'} {phrase}"


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


_INNER_WORD = re.compile(r"(?<=\s)[A-Za-z]+")


@lru_cache(maxsize=1)
def _word_case_counts() -> tuple[Counter, Counter]:
    """How often each word is written lower-case / capitalised inside Wikipedia sentences."""
    counts = Counter(_INNER_WORD.findall("\n".join(a.text for a in wiki_articles())))
    lower, upper = Counter(), Counter()
    for token, n in counts.items():
        (lower if token[0].islower() else upper)[token.lower()] += n
    return lower, upper


def lower_first_word(phrase: str) -> str:
    """Lower-case the first word when Wikipedia text mostly writes it in lower case."""
    first = phrase.split()[0] if phrase.split() else ""
    if not first[:1].isupper() or not first[1:].islower():
        return phrase
    lower, upper = _word_case_counts()
    if lower[first.lower()] > upper[first.lower()]:
        return first.lower() + phrase[len(first) :]
    return phrase


@lru_cache(maxsize=1)
def articles_by_category() -> dict[str, tuple[Article, ...]]:
    groups: dict[str, list[Article]] = {}
    for article in wiki_articles():
        groups.setdefault(article.category, []).append(article)
    return {k: tuple(v) for k, v in sorted(groups.items())}


def other_article(rng: random.Random, article: Article, same_category: bool = True) -> Article:
    """A different article, from the same category when asked."""
    pool = articles_by_category()[article.category] if same_category else wiki_articles()
    while True:
        other = pool[rng.randrange(len(pool))]
        if other.title != article.title:
            return other


@lru_cache(maxsize=1)
def tweets_by_label() -> dict[str, tuple[Tweet, ...]]:
    """Tweets of at most 30 words, grouped by sentiment label (labels sorted)."""
    groups: dict[str, list[Tweet]] = {}
    for tweet in tweets():
        if n_words(tweet.text) <= 30:
            groups.setdefault(tweet.label, []).append(tweet)
    return {k: tuple(v) for k, v in sorted(groups.items())}


FEMALE_NAMES = (
    "Anna", "Maria", "Sofia", "Emma", "Lucy", "Grace", "Chloe", "Hannah", "Julia", "Laura",
    "Nora", "Olivia", "Rosa", "Sarah", "Tara", "Vera", "Zoe", "Ella", "Mia", "Ruth",
)  # fmt: skip
MALE_NAMES = (
    "Adam", "Ben", "Carlos", "David", "Ethan", "Felix", "George", "Henry", "Ivan", "Jack",
    "Leo", "Marco", "Noah", "Oscar", "Paul", "Omar", "Sam", "Tom", "Victor", "Hugo",
)  # fmt: skip
NAMES = FEMALE_NAMES + MALE_NAMES
SURNAMES = (
    "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka",
    "Weber", "Young",
)  # fmt: skip
NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
)  # fmt: skip


def pronoun(name: str) -> str:
    """Subject pronoun for one of the built-in first names."""
    return "she" if name in FEMALE_NAMES else "he"
