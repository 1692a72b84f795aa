"""Commonsense reasoning, generated: sizes of everyday things, the calendar, word problems."""

from __future__ import annotations

import random

from mossa.tasks.builtin._common import (
    NAMES,
    NUMBER_WORDS,
    BuiltinSpec,
    a_or_an,
    capitalise,
    forever,
    pronoun,
    templates,
)
from mossa.tasks.types import Example

# Typical length of everyday things in centimetres (order of magnitude is what matters).
SIZES_CM: dict[str, float] = {
    "ant": 0.5, "bee": 1.5, "grape": 2, "coin": 2.5, "butterfly": 6, "egg": 6, "key": 6,
    "tennis ball": 7, "mouse": 8, "apple": 8, "cup": 10, "spoon": 15, "crab": 15,
    "pencil": 18, "banana": 20, "football": 22, "book": 25, "shoe": 28, "watermelon": 30,
    "laptop": 35, "pumpkin": 40, "cat": 45, "pillow": 50, "dog": 70, "chair": 90,
    "guitar": 100, "sheep": 120, "table": 150, "bicycle": 170, "bathtub": 170,
    "refrigerator": 180, "bed": 200, "door": 200, "sofa": 210, "horse": 240, "cow": 250,
    "car": 450, "giraffe": 500, "elephant": 600, "bus": 1200, "house": 1500,
    "whale": 2500, "airplane": 4000, "ship": 10000, "mountain": 300000,
}  # fmt: skip
MIN_SIZE_RATIO = 2.5  # pairs closer than this are ambiguous and are not asked about

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def _size_comparison(rng: random.Random) -> Example | None:
    a, b = rng.sample(sorted(SIZES_CM), 2)
    big, small = (a, b) if SIZES_CM[a] > SIZES_CM[b] else (b, a)
    if SIZES_CM[big] / SIZES_CM[small] < MIN_SIZE_RATIO:
        return None
    relation = rng.choice(("bigger", "smaller"))
    answer = big if relation == "bigger" else small
    return Example({"relation": relation, "a": a_or_an(a), "b": a_or_an(b)}, answer)


def _calendar(rng: random.Random) -> Example:
    unit, cycle, noun = rng.choice(
        (("day of the week", WEEKDAYS, "day"), ("month", MONTHS, "month"))
    )
    start = rng.randrange(len(cycle))
    offset = rng.randint(1, 20)
    direction = rng.choice(("after", "before"))
    span = f"{NUMBER_WORDS[offset]} {noun}{'s' if offset > 1 else ''}"
    answer = cycle[(start + (offset if direction == "after" else -offset)) % len(cycle)]
    return Example(
        {"unit": unit, "span": span, "direction": direction, "start": cycle[start]}, answer
    )


_GAINS = ("buys {n} more", "finds {n} more", "is given {n} more", "wins {n} more")
_LOSSES = ("gives away {n}", "loses {n}", "sells {n}", "gives {n} to a friend")
_COUNTABLES = ("marbles", "stickers", "apples", "books", "coins", "shells", "pencils", "cookies")


def _word_problem(rng: random.Random) -> Example:
    name = rng.choice(NAMES)
    things = rng.choice(_COUNTABLES)
    count = rng.randint(2, 20)
    sentences = [f"{name} has {count} {things}."]
    for step in range(rng.choice((1, 1, 2))):
        n = rng.randint(1, 9)
        if rng.random() < 0.5 or count - n < 0:
            verb, count = rng.choice(_GAINS), count + n
        else:
            verb, count = rng.choice(_LOSSES), count - n
        subject = capitalise(pronoun(name)) if step == 0 else "Then " + pronoun(name)
        sentences.append(f"{subject} {verb.format(n=n)}.")
    question = f"How many {things} does {name} have now?"
    return Example({"story": " ".join(sentences), "question": question}, str(count))


SPECS = (
    BuiltinSpec(
        "size_comparison",
        "commonsense",
        "accuracy",
        "procedural",
        templates(
            "Which is {relation}, {a} or {b}?",
            "Question: Of {a} and {b}, which one is {relation}?\nAnswer:",
            "Think about everyday objects. Is {a} or {b} {relation}? Name it.",
            "Between {a} and {b}, which is usually {relation}?",
            "Pick the {relation} thing.\nOption 1: {a}\nOption 2: {b}",
            "Using common sense, tell me which is {relation}: {a} or {b}.",
            "Compare {a} with {b}. Which is {relation}?",
            "Q: What is {relation}, {b} or {a}?\nA:",
            "I have {a} and {b} in front of me. Which one is {relation}?",
            "Answer with one word. The {relation} of {a} and {b} is the",
        ),
        forever(_size_comparison),
    ),
    BuiltinSpec(
        "calendar_reasoning",
        "commonsense",
        "accuracy",
        "procedural",
        templates(
            "Which {unit} is {span} {direction} {start}?",
            "Question: What {unit} comes {span} {direction} {start}?\nAnswer:",
            "Count {span} {direction} {start}. Which {unit} do you reach?",
            "If it is {start} now, which {unit} is it {span} {direction}?",
            "Name the {unit} that is {span} {direction} {start}.",
            "{start} is the starting point. Moving {span} {direction} it, which {unit} do "
            "we land on?",
            "Calendar question: {span} {direction} {start} is which {unit}?",
            "Starting from {start}, go {span} {direction}. Give the {unit}.",
            "Q: {span} {direction} {start}, what {unit} is it?\nA:",
            "Work out the {unit}: {start}, then {span} {direction}.",
        ),
        forever(_calendar),
    ),
    BuiltinSpec(
        "arithmetic_word_problems",
        "commonsense",
        "accuracy",
        "procedural",
        templates(
            "{story} {question}",
            "Solve this word problem. {story} {question} Answer with a number.",
            "Story: {story}\nQuestion: {question}\nAnswer:",
            "{question} Here is what happened: {story}",
            "Read carefully and count. {story}\n{question}",
            "Math story: {story} {question} Give only the number.",
            "Q: {story} {question}\nA:",
            "Here is a short story. {story} Now answer: {question}",
            "{story}\n\n{question} Use the story to answer.",
            "Work it out step by step in your head. {story} {question}",
        ),
        forever(_word_problem),
    ),
)
