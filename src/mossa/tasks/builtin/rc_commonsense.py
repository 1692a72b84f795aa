"""Reading comprehension with commonsense: how story characters feel, and entity cloze."""

from __future__ import annotations

import random
from functools import lru_cache

from mossa.tasks.builtin._common import (
    NAMES,
    BuiltinSpec,
    capitalise,
    forever,
    lead,
    other_article,
    over_articles,
    plain_title,
    pronoun,
    templates,
)
from mossa.tasks.texts import Article, wiki_articles
from mossa.tasks.types import Example

EMOTIONS = ("happy", "sad", "angry", "scared", "surprised", "proud")
EMOTION_OPTIONS = ", ".join(EMOTIONS)
SETTINGS = (
    "{name} spent the afternoon at the park.",
    "{name} was walking home from school.",
    "{name} had just arrived at the office.",
    "{name} was on a trip to the seaside.",
    "{name} was cooking dinner for the family.",
    "{name} was waiting at the train station.",
    "{name} was shopping at the market.",
    "{name} was playing in the garden.",
    "{name} spent the evening at a friend's house.",
    "{name} was reading in the library.",
)  # fmt: skip
# (event, emotion); {p} is the subject pronoun, {pos} the possessive.
EVENTS = (
    ("Suddenly {p} found a twenty dollar note on the ground.", "happy"),
    ("Then {p} got a message saying {pos} best friend was coming to visit.", "happy"),
    ("{P} learned that {pos} team had won the championship.", "happy"),
    ("A kind stranger gave {obj} a free ice cream.", "happy"),
    ("Then {p} heard that {pos} old dog had died.", "sad"),
    ("{P} learned that {pos} best friend was moving far away.", "sad"),
    ("Later {p} found out that the trip {p} had waited for all year was cancelled.", "sad"),
    ("Nobody came to {pos} birthday party.", "sad"),
    ("Someone pushed in front of {obj} and then laughed at {obj}.", "angry"),
    ("{P} found that a neighbour had broken {pos} new bike on purpose.", "angry"),
    ("A waiter was rude to {obj} and refused to bring the food.", "angry"),
    ("{P} discovered that someone had lied about {obj} to the teacher.", "angry"),
    ("Suddenly a large dog ran at {obj}, barking loudly.", "scared"),
    ("The lights went out and {p} heard strange noises in the dark.", "scared"),
    ("{P} heard thunder and saw the river rising fast.", "scared"),
    ("A car raced past and nearly hit {obj}.", "scared"),
    ("Out of nowhere, {pos} brother appeared after ten years abroad.", "surprised"),
    ('{P} opened the door and all {pos} friends shouted "Surprise!"', "surprised"),
    ("{P} discovered that the quiet old man next door was a famous singer.", "surprised"),
    ("A letter arrived saying {p} had won a prize {p} had never entered for.", "surprised"),
    ("{P} finished the marathon after months of hard training.", "proud"),
    ("{P} got the best mark in the class for the project {p} had worked on for weeks.", "proud"),
    ("The mayor thanked {obj} in public for helping flood victims.", "proud"),
    ("{P} fixed the broken radio all by {self}.", "proud"),
)


def _story_emotion(rng: random.Random) -> Example:
    name = rng.choice(NAMES)
    subject = pronoun(name)
    words = {
        "p": subject,
        "P": subject.capitalize(),
        "pos": "her" if subject == "she" else "his",
        "obj": "her" if subject == "she" else "him",
        "self": "herself" if subject == "she" else "himself",
    }
    event, emotion = rng.choice(EVENTS)
    story = f"{rng.choice(SETTINGS).format(name=name)} {capitalise(event.format(**words))}"
    return Example({"story": story, "name": name}, emotion)


@lru_cache(maxsize=1)
def _cloze_articles() -> tuple[Article, ...]:
    chosen = []
    for article in wiki_articles():
        title = plain_title(article.title)
        passage = lead(article.sentences, 45)
        if passage and len(title) > 3 and _whole_word_spans(passage, title):
            chosen.append(article)
    return tuple(chosen)


def _whole_word_spans(text: str, phrase: str) -> list[tuple[int, int]]:
    """Start and end of every occurrence of ``phrase`` not inside a longer word."""
    spans, start = [], text.find(phrase)
    while start >= 0:
        end = start + len(phrase)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() or before == "_" or after.isalnum() or after == "_"):
            spans.append((start, end))
        start = text.find(phrase, end)
    return spans


def _blank_out(text: str, phrase: str) -> str:
    """``text`` with every whole-word ``phrase`` replaced by ``___``."""
    out, last = [], 0
    for start, end in _whole_word_spans(text, phrase):
        out += [text[last:start], "___"]
        last = end
    return "".join(out) + text[last:]


def _wiki_cloze(article: Article, rng: random.Random) -> Example | None:
    title = plain_title(article.title)
    passage = lead(article.sentences, 45)
    blanked = _blank_out(passage, title)
    options = [title]
    while len(options) < 3:
        other = plain_title(other_article(rng, article).title)
        if other not in options and other.lower() not in passage.lower():
            options.append(other)
    rng.shuffle(options)
    fields = {"passage": blanked, "option1": options[0], "option2": options[1]}
    fields["option3"] = options[2]
    return Example(fields, title)


SPECS = (
    BuiltinSpec(
        "story_emotion",
        "reading_comprehension_commonsense",
        "accuracy",
        "procedural",
        templates(
            "{story}\nHow did {name} most likely feel? Options: " + EMOTION_OPTIONS,
            "Read the story and say how {name} felt.\n{story}\nFeeling:",
            "Story: {story}\nQuestion: What emotion did {name} probably have? ("
            + EMOTION_OPTIONS
            + ")",
            "How would {name} feel after this? {story}",
            "{story} Which word best describes {name}'s feelings: " + EMOTION_OPTIONS + "?",
            "Q: {story} How does {name} feel?\nA:",
            "Use common sense. {story} Choose {name}'s likely emotion from: "
            + EMOTION_OPTIONS
            + ".",
            "Here is what happened to {name}: {story} In one word, how did {name} feel?",
            "Emotions: " + EMOTION_OPTIONS + "\nStory: {story}\nCharacter: {name}\nEmotion:",
            "After the events below, was {name} "
            + EMOTION_OPTIONS.replace(", ", " or ")
            + "?\n{story}",
        ),
        forever(_story_emotion),
    ),
    BuiltinSpec(
        "wiki_cloze",
        "reading_comprehension_commonsense",
        "accuracy",
        "wikipedia",
        templates(
            "{passage}\n\nWhat fills the blank (___)? Options: {option1}, {option2}, {option3}",
            "Fill in the blank in the passage.\n{passage}\nChoices: {option1} | {option2} | "
            "{option3}\nAnswer:",
            "Passage with a missing name: {passage}\nWhich of these is missing: {option1}, "
            "{option2} or {option3}?",
            "Candidates: {option1}; {option2}; {option3}.\nText: {passage}\nThe blank stands for:",
            "Read the text and pick the word or name that belongs in the gap ___.\n{passage}\n"
            "A) {option1} B) {option2} C) {option3}",
            'Q: In "{passage}", what is ___?\nOptions: {option1}, {option2}, {option3}\nA:',
            "{option1}, {option2} or {option3}: which one completes this paragraph? {passage}",
            "The following paragraph has the same thing hidden as ___ each time. {passage} "
            "Is it {option1}, {option2} or {option3}?",
            "Restore the missing term (one of {option1}, {option2}, {option3}).\n\n{passage}",
            "{passage}\nThe blank refers to which option: {option1}, {option2}, {option3}?",
        ),
        over_articles(_cloze_articles, _wiki_cloze),
    ),
)
