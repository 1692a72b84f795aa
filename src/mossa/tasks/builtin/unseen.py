"""Unseen tasks (never in the SFT mixture): question types, acceptability, equations.

They mirror the paper's unseen cluster (TREC question classification, CoLA
acceptability, math questions) with Wikipedia titles and sentences and generated algebra.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from mossa.tasks.builtin._common import (
    BuiltinSpec,
    articles_by_category,
    forever,
    lower_first_word,
    n_words,
    plain_title,
    shuffled,
    templates,
)
from mossa.tasks.texts import wiki_articles
from mossa.tasks.types import Example

QUESTION_TYPES = ("abbreviation", "description", "entity", "human", "location", "number")
TYPE_OPTIONS = ", ".join(QUESTION_TYPES)
# label -> (question frame, slot pool); pools: category names, "common:<category>" for
# titles that are common nouns, "abbr" for initialisms of multi-word names.
_FRAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "human": (
        ("Who invented the {x}?", "common:technology"),
        ("Who first described {x}?", "common:science"),
        ("Who was the most famous student of {x}?", "people"),
        ("Who created {x}?", "arts"),
        ("Who led the country during {x}?", "history"),
    ),
    "location": (
        ("Where is {x} located?", "geography"),
        ("In which country is {x}?", "geography"),
        ("Where was {x} born?", "people"),
        ("Where did {x} take place?", "history"),
        ("Where is {x} found in nature?", "common:biology"),
    ),
    "number": (
        ("How many people live in {x}?", "geography"),
        ("In what year did {x} begin?", "history"),
        ("How old was {x} at the time of death?", "people"),
        ("How many kinds of {x} are there?", "common:biology"),
        ("How much does a {x} cost?", "common:technology"),
    ),
    "description": (
        ("What is {x}?", "science"),
        ("Why is {x} important?", "society"),
        ("How does a {x} work?", "common:technology"),
        ("What does the term {x} mean?", "common:religion"),
        ("Why did {x} happen?", "history"),
    ),
    "entity": (
        ("What language is spoken in {x}?", "geography"),
        ("What instrument did {x} play?", "people"),
        ("What does the {x} eat?", "common:biology"),
        ("Which sport is most popular in {x}?", "geography"),
        ("What material is a {x} made of?", "common:technology"),
    ),
    "abbreviation": (
        ("What does {x} stand for?", "abbr"),
        ("What is the full form of {x}?", "abbr"),
        ("What is {x} short for?", "abbr"),
        ("What do the letters {x} mean?", "abbr"),
    ),
}
_SMALL_WORDS = frozenset({"of", "the", "and", "for", "in", "on", "de", "a", "an"})


@lru_cache(maxsize=1)
def _slot_pools() -> dict[str, tuple[str, ...]]:
    pools: dict[str, list[str]] = {}
    for category, articles in articles_by_category().items():
        titles = [plain_title(a.title) for a in articles]
        pools[category] = titles
        pools[f"common:{category}"] = [
            lower_first_word(t) for t in titles if " " not in t and lower_first_word(t) != t
        ]
    abbreviations = []
    for article in wiki_articles():
        words = [w for w in plain_title(article.title).split() if w.lower() not in _SMALL_WORDS]
        if len(words) >= 2 and all(w.isalpha() and w[0].isupper() for w in words):
            abbreviations.append("".join(w[0] for w in words))
    pools["abbr"] = sorted(set(abbreviations))
    return {k: tuple(v) for k, v in pools.items()}


def _question_type(rng: random.Random) -> Example:
    label = rng.choice(QUESTION_TYPES)
    frame, pool = rng.choice(_FRAMES[label])
    slot = rng.choice(_slot_pools()[pool])
    return Example({"question": frame.format(x=slot)}, label)


@lru_cache(maxsize=1)
def _plain_sentences() -> tuple[str, ...]:
    return tuple(
        s
        for a in wiki_articles()
        for s in a.sentences
        if 6 <= n_words(s) <= 18 and s.isascii() and re.fullmatch(r"[A-Z][\w ,'-]+\.", s)
    )


_FUNCTION_WORDS = frozenset({"the", "of", "a", "to", "in", "is", "was", "and", "by", "for"})
_AGREEMENT = {"is": "are", "are": "is", "was": "were", "were": "was", "has": "have"}


def corrupt(sentence: str, rng: random.Random) -> str | None:
    """An ungrammatical version of ``sentence`` (word swap, doubling, deletion, agreement)."""
    words = sentence[:-1].split()
    interior = range(1, len(words) - 1)
    rules = ["swap", "double", "drop", "agree"]
    rng.shuffle(rules)
    for rule in rules:
        if rule == "swap":
            spots = [i for i in interior if words[i].isalpha() and words[i + 1].isalpha()]
            spots = [i for i in spots if words[i].lower() != words[i + 1].lower()]
            if spots:
                i = rng.choice(spots)
                words[i], words[i + 1] = words[i + 1], words[i]
                return " ".join(words) + "."
        elif rule == "double":
            spots = [i for i in interior if words[i].isalpha()]
            if spots:
                i = rng.choice(spots)
                return " ".join(words[: i + 1] + words[i:]) + "."
        elif rule == "drop":
            spots = [i for i in interior if words[i] in _FUNCTION_WORDS]
            if spots:
                i = rng.choice(spots)
                return " ".join(words[:i] + words[i + 1 :]) + "."
        else:
            spots = [i for i in interior if words[i] in _AGREEMENT]
            if spots:
                i = rng.choice(spots)
                words[i] = _AGREEMENT[words[i]]
                return " ".join(words) + "."
    return None


def _acceptability(rng: random.Random):
    for sentence in shuffled(rng, _plain_sentences()):
        if rng.random() < 0.5:
            yield Example({"sentence": sentence}, "acceptable")
        else:
            broken = corrupt(sentence, rng)
            if broken is not None:
                yield Example({"sentence": broken}, "unacceptable")


_VARIABLES = "abcdhkmnpqrstuvwxyz"


def _equation(rng: random.Random) -> Example:
    value, a, b = rng.randint(-12, 12), rng.randint(2, 9), rng.randint(1, 30)
    v = rng.choice(_VARIABLES)
    form = rng.randrange(4)
    if form == 0:
        equation = f"{a}*{v} + {b} = {a * value + b}"
    elif form == 1:
        equation = f"{a}*{v} - {b} = {a * value - b}"
    elif form == 2:
        equation = f"{b} + {a}*{v} = {a * value + b}"
    else:
        equation = f"{a * value - b} = {a}*{v} - {b}"
    return Example({"equation": equation, "variable": v}, str(value))


SPECS = (
    BuiltinSpec(
        "question_type",
        "unseen",
        "accuracy",
        "wikipedia",
        templates(
            "What type of answer does this question expect? Options: "
            + TYPE_OPTIONS
            + "\nQuestion: {question}",
            "Question: {question}\nAnswer type:",
            "{question}\n\nIs this question asking for an abbreviation, a description, an "
            "entity, a human, a location or a number?",
            'Classify the question "{question}" by the kind of answer it needs.',
            'Q: What kind of thing would answer "{question}"? Choose from '
            + TYPE_OPTIONS
            + ".\nA:",
            "Categories: " + TYPE_OPTIONS + "\nText: {question}\nCategory:",
            "Here is a question someone asked: {question} What is its answer category?",
            "Read the question and label the expected answer (" + TYPE_OPTIONS + ").\n{question}",
            "Question classification. {question}",
            'If you answered "{question}", would the answer be a human, location, number, '
            "entity, description or abbreviation?",
        ),
        forever(_question_type),
    ),
    BuiltinSpec(
        "sentence_acceptability",
        "unseen",
        "accuracy",
        "wikipedia",
        templates(
            "Is the following sentence grammatically acceptable?\n{sentence}\nOptions: "
            "acceptable, unacceptable",
            "Sentence: {sentence}\nGrammar:",
            "{sentence}\n\nWould a careful English speaker accept this sentence? Answer "
            "acceptable or unacceptable.",
            'Check the grammar: "{sentence}"',
            'Q: Is "{sentence}" a well-formed English sentence?\nA:',
            "Judge the linguistic acceptability of this sentence. {sentence}",
            "Options: acceptable, unacceptable\nText: {sentence}\nJudgement:",
            "Here is a sentence: {sentence} Is it grammatical (acceptable) or not (unacceptable)?",
            "Does this sentence contain a grammar error?\n\n{sentence}\n\nReply acceptable "
            "if it does not, unacceptable if it does.",
            "Rate the sentence as acceptable or unacceptable: {sentence}",
        ),
        _acceptability,
    ),
    BuiltinSpec(
        "linear_equations",
        "unseen",
        "accuracy",
        "procedural",
        templates(
            "Solve {equation} for {variable}.",
            "Q: Solve {equation} for {variable}.\nA:",
            "What is {variable} if {equation}?",
            "Find the value of {variable}: {equation}",
            "{equation}. What is {variable}?",
            "Math problem: solve the equation {equation}. Give {variable}.",
            "Let {equation}. Calculate {variable}.",
            "Equation: {equation}\nUnknown: {variable}\nSolution:",
            "Given that {equation}, what does {variable} equal?",
            "Work out {variable} from the equation below.\n{equation}",
        ),
        forever(_equation),
    ),
)
