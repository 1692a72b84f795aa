"""Coreference resolution: pronouns in Wikipedia leads and Winograd-style sentences.

Winograd-style items follow the schema's idea: two candidates of the same kind (both
objects, or two people of the same gender) and a final clause whose meaning alone
decides which one the pronoun refers to.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from mossa.tasks.builtin._common import (
    FEMALE_NAMES,
    MALE_NAMES,
    BuiltinSpec,
    forever,
    n_words,
    other_article,
    over_articles,
    plain_title,
    templates,
)
from mossa.tasks.builtin.commonsense import SIZES_CM
from mossa.tasks.texts import Article, wiki_articles
from mossa.tasks.types import Example

_PRONOUN_START = re.compile(r"^(It|He|She|They) ")
_NAME = re.compile(r"\b[A-Z][a-z]+(?: (?:of |the |de |von )?[A-Z][a-z]+)+\b")


@lru_cache(maxsize=1)
def _pronoun_articles() -> tuple[Article, ...]:
    return tuple(
        a
        for a in wiki_articles()
        if len(a.sentences) >= 2
        and _PRONOUN_START.match(a.sentences[1])
        and n_words(a.sentences[0]) + n_words(a.sentences[1]) <= 42
    )


def _distractor(article: Article, rng: random.Random) -> str:
    """Another name in the first sentence (not part of the title), else another title."""
    title = plain_title(article.title)
    first = article.sentences[0]
    copula = re.search(r"\b(?:is|are|was|were)\b", first)
    start = copula.end() if copula else len(first)  # names before it are often aliases
    names = [
        m.group(0)
        for m in _NAME.finditer(first, start)
        if m.group(0) not in title and title not in m.group(0)
    ]
    if names:
        return max(names, key=len)
    while True:
        other = plain_title(other_article(rng, article).title)
        if other != title:
            return other


def _wiki_pronoun(article: Article, rng: random.Random) -> Example:
    title = plain_title(article.title)
    options = [title, _distractor(article, rng)]
    rng.shuffle(options)
    passage = f"{article.sentences[0]} {article.sentences[1]}"
    pronoun = _PRONOUN_START.match(article.sentences[1]).group(1)
    fields = {"passage": passage, "pronoun": pronoun, "option1": options[0]}
    fields["option2"] = options[1]
    return Example(fields, title)


_CONTAINABLE = tuple(sorted(k for k in SIZES_CM if k != "mountain"))
# (sentence with {big} and {small}, which one "it" is): the bigger thing does not fit.
_OBJECT_FRAMES = (
    ("The {big} does not fit into the {small} because it is too big.", "big"),
    ("The {big} does not fit into the {small} because it is too small.", "small"),
    ("The {small} cannot hold the {big} because it is too small.", "small"),
    ("The {small} cannot hold the {big} because it is too large.", "big"),
    ("We could not put the {big} inside the {small}, since it was too large.", "big"),
    ("We could not put the {big} inside the {small}, since it was too little.", "small"),
)


def _winograd_objects(rng: random.Random) -> Example | None:
    a, b = rng.sample(_CONTAINABLE, 2)
    big, small = (a, b) if SIZES_CM[a] > SIZES_CM[b] else (b, a)
    if SIZES_CM[big] / SIZES_CM[small] < 2:
        return None
    frame, role = rng.choice(_OBJECT_FRAMES)
    sentence = frame.format(big=big, small=small)
    options = [big, small]
    rng.shuffle(options)
    answer = big if role == "big" else small
    return Example({"sentence": sentence, "option1": options[0], "option2": options[1]}, answer)


# (sentence with {a}, {b} and pronoun {p}, who {p} is): "a" is the subject, "b" the object.
_PEOPLE_FRAMES = (
    ("{a} called {b} because {p} needed advice.", "a"),
    ("{a} called {b} because {p} always gave good advice.", "b"),
    ("{a} paid {b} because {p} had fixed the roof.", "b"),
    ("{a} paid {b} because {p} owed money.", "a"),
    ("{a} apologised to {b} because {p} had been rude.", "a"),
    ("{a} apologised to {b} because {p} was upset.", "b"),
    ("{a} visited {b} in hospital because {p} was ill.", "b"),
    ("{a} congratulated {b} because {p} had won the race.", "b"),
    ("{a} envied {b} because {p} was so talented.", "b"),
    ("{a} helped {b} because {p} was struggling.", "b"),
    ("{a} waited for {b} because {p} was late.", "b"),
    ("{a} waited for {b} because {p} was early.", "a"),
    ("{a} lent {b} a book because {p} had already finished it.", "a"),
    ("{a} lent {b} a book because {p} wanted to read it.", "b"),
    ("{a} beat {b} at chess because {p} played better.", "a"),
    ("{a} beat {b} at chess because {p} made a mistake.", "b"),
    ("{a} asked {b} for directions because {p} was lost.", "a"),
    ("{a} asked {b} for directions because {p} knew the town.", "b"),
    ("{a} thanked {b} because {p} had been so helpful.", "b"),
    ("{a} thanked {b} because {p} was grateful.", "a"),
)


def _winograd_people(rng: random.Random) -> Example:
    names, p = rng.choice(((FEMALE_NAMES, "she"), (MALE_NAMES, "he")))
    a, b = rng.sample(names, 2)
    frame, role = rng.choice(_PEOPLE_FRAMES)
    options = [a, b]
    rng.shuffle(options)
    fields = {"sentence": frame.format(a=a, b=b, p=p), "pronoun": p, "option1": options[0]}
    fields["option2"] = options[1]
    return Example(fields, a if role == "a" else b)


SPECS = (
    BuiltinSpec(
        "wiki_pronoun_resolution",
        "coreference",
        "accuracy",
        "wikipedia",
        templates(
            '{passage}\n\nIn the second sentence, who or what does "{pronoun}" refer to? '
            "Options: {option1}, {option2}",
            'Passage: {passage}\nQuestion: The pronoun "{pronoun}" at the start of the '
            "second sentence means {option1} or {option2}?\nAnswer:",
            'Resolve the pronoun "{pronoun}" in this text. Choose {option1} or {option2}.\n'
            "{passage}",
            'Options: {option1} / {option2}\nText: {passage}\nWhich option is "{pronoun}"?',
            'Q: {passage} Here, "{pronoun}" refers to which one: {option1} or {option2}?\nA:',
            'Coreference question. In "{passage}", what is the referent of "{pronoun}"? '
            "Pick {option1} or {option2}.",
            'Read: {passage}\nDoes "{pronoun}" stand for {option1} or for {option2}?',
            '{option1} or {option2}? Decide what "{pronoun}" points back to in the '
            "following text.\n{passage}",
            "Text: {passage}\nPronoun: {pronoun}\nCandidates: {option1}, {option2}\nReferent:",
            'Which entity is meant by "{pronoun}" in the second sentence below, {option1} '
            "or {option2}?\n\n{passage}",
        ),
        over_articles(_pronoun_articles, _wiki_pronoun),
    ),
    BuiltinSpec(
        "winograd_objects",
        "coreference",
        "accuracy",
        "procedural",
        templates(
            '{sentence}\nWhat does "it" refer to? Options: {option1}, {option2}',
            'Sentence: {sentence}\nQuestion: Is "it" the {option1} or the {option2}?\nAnswer:',
            'In the sentence "{sentence}", which thing is "it": {option1} or {option2}?',
            "Resolve the pronoun. {sentence} (it = {option1} or {option2}?)",
            'Q: {sentence} Here "it" means the {option1} or the {option2}?\nA:',
            'Choose the referent of "it".\nText: {sentence}\nA: {option1}\nB: {option2}',
            '{option1} or {option2}: which one does "it" point to in this sentence? {sentence}',
            'Use common sense to decide what "it" is. {sentence} Answer {option1} or {option2}.',
            'Text: {sentence}\nCandidates: {option1}, {option2}\n"it" refers to:',
            'Read the sentence and say what "it" is.\n\n{sentence}\n\nChoices: {option1}; '
            "{option2}",
        ),
        forever(_winograd_objects),
    ),
    BuiltinSpec(
        "winograd_people",
        "coreference",
        "accuracy",
        "procedural",
        templates(
            '{sentence}\nWho does "{pronoun}" refer to? Options: {option1}, {option2}',
            'Sentence: {sentence}\nQuestion: In this sentence, is "{pronoun}" {option1} or '
            "{option2}?\nAnswer:",
            'Who is "{pronoun}" in "{sentence}"? Choose {option1} or {option2}.',
            '{option1} or {option2}? Work out who "{pronoun}" is. {sentence}',
            'Q: {sentence} Who does the word "{pronoun}" mean: {option1} or {option2}?\nA:',
            'Read the sentence and resolve the pronoun "{pronoun}".\n{sentence}\nCandidates: '
            "{option1}, {option2}",
            "Text: {sentence}\nPronoun: {pronoun}\nPossible referents: {option1}, "
            "{option2}\nReferent:",
            'In the following sentence, "{pronoun}" refers to one person. {sentence} Name '
            "that person ({option1} or {option2}).",
            'Think about who would do what. {sentence} Is "{pronoun}" {option1} or {option2}?',
            'Winograd question: {sentence}\nWho is "{pronoun}"? Answer {option1} or {option2}.',
        ),
        forever(_winograd_people),
    ),
)
