"""Struct to text: records and triples to a sentence, concept sets to a Wikipedia sentence.

The templates show the same record in different notations (``key: value`` lists,
E2E-style ``key[value]``, WebNLG-style triples, JSON-like), as Flan's templates do.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from mossa.tasks.builtin._common import (
    NAMES,
    SURNAMES,
    BuiltinSpec,
    a_or_an,
    forever,
    lower_first_word,
    n_words,
    plain_title,
    shuffled,
    templates,
)
from mossa.tasks.texts import wiki_articles
from mossa.tasks.types import Example

CITIES = (
    "Oslo", "Lisbon", "Nairobi", "Lima", "Osaka", "Toronto", "Krakow", "Cairo", "Dublin",
    "Hanoi", "Quito", "Perth", "Munich", "Seville", "Tunis", "Bergen", "Porto", "Accra",
)  # fmt: skip
OCCUPATIONS = (
    "architect", "baker", "chemist", "dentist", "engineer", "farmer", "journalist",
    "librarian", "nurse", "painter", "pilot", "teacher", "translator", "violinist",
    "gardener", "electrician", "surgeon", "historian",
)  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SKIES = ("sunny", "rainy", "cloudy", "windy", "snowy", "foggy", "stormy")
TOPIC_PHRASES = {
    "arts": "the arts",
    "biology": "biology and health",
    "everyday": "everyday life",
    "geography": "geography",
    "history": "history",
    "mathematics": "mathematics",
    "people": "biography",
    "religion": "philosophy and religion",
    "science": "the physical sciences",
    "society": "the social sciences",
    "technology": "technology",
}
_STOPWORDS = frozenset(
    "about after also although among another around because been before being between "
    "both came come could during each even every from have having into its many more "
    "most much must only other over same several since some such than that their them "
    "then there these they this those through under until upon very were what when where "
    "which while will with within would your known used called made became include "
    "includes including".split()
)


def _person(rng: random.Random) -> Example:
    name = f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}"
    born, city, job = str(rng.randint(1920, 2005)), rng.choice(CITIES), rng.choice(OCCUPATIONS)
    target = f"{name} is {a_or_an(job)} from {city} who was born in {born}."
    return Example({"name": name, "born": born, "city": city, "occupation": job}, target)


def _weather(rng: random.Random) -> Example:
    low = rng.randint(-10, 20)
    high = low + rng.randint(2, 12)
    fields = {
        "city": rng.choice(CITIES),
        "day": rng.choice(WEEKDAYS),
        "sky": rng.choice(SKIES),
        "high": str(high),
        "low": str(low),
    }
    target = (
        f"On {fields['day']}, {fields['city']} will be {fields['sky']} with a high of "
        f"{high} and a low of {low} degrees."
    )
    return Example(fields, target)


@lru_cache(maxsize=1)
def _short_sentences() -> tuple[str, ...]:
    return tuple(
        s
        for a in wiki_articles()
        for s in a.sentences
        if 6 <= n_words(s) <= 16 and s.endswith(".") and s.isascii()
    )


def _concepts(rng: random.Random):
    for sentence in shuffled(rng, _short_sentences()):
        words = sorted({w for w in re.findall(r"\b[a-z]{4,}\b", sentence) if w not in _STOPWORDS})
        if len(words) < 3:
            continue
        chosen = sorted(rng.sample(words, min(len(words), rng.choice((3, 4)))))
        yield Example({"concepts": ", ".join(chosen)}, sentence)


@lru_cache(maxsize=1)
def _triple_articles() -> tuple:
    """Articles whose description reads as a singular noun phrase ("Edible berry")."""
    chosen = []
    for article in wiki_articles():
        words = article.description.split()
        first = words[0].lower() if words else ""
        plural = first.endswith("s") and not first.endswith(("ss", "us", "is"))
        if 2 <= len(words) <= 8 and not plural and first not in ("the", "a", "an"):
            chosen.append(article)
    return tuple(chosen)


def _triples(rng: random.Random):
    for article in shuffled(rng, _triple_articles()):
        subject = plain_title(article.title)
        description = lower_first_word(article.description)
        topic = TOPIC_PHRASES[article.category]
        target = f"{subject} is {a_or_an(description)}, a topic in {topic}."
        if n_words(target) <= 20:
            yield Example({"subject": subject, "description": description, "topic": topic}, target)


SPECS = (
    BuiltinSpec(
        "person_record_to_text",
        "struct_to_text",
        "rouge_l",
        "procedural",
        templates(
            "name: {name} | born: {born} | city: {city} | occupation: {occupation}\n"
            "Write a sentence describing this person.",
            "Turn this record into one sentence.\nName = {name}; Year of birth = {born}; "
            "Home city = {city}; Job = {occupation}",
            "name[{name}], born[{born}], city[{city}], job[{occupation}]\nDescribe the person "
            "in words:",
            "Write a short biography line for {name} ({occupation}, {city}, born {born}).",
            'Data: {{"name": "{name}", "born": {born}, "city": "{city}", "job": '
            '"{occupation}"}}\nSentence:',
            "{name} | occupation | {occupation}\n{name} | birth year | {born}\n{name} | "
            "hometown | {city}\nVerbalise these facts in one sentence.",
            "Here are some facts: the person is called {name}, works as {occupation}, comes "
            "from {city} and was born in {born}. Say it as one natural sentence.",
            "Generate text from the table row: {name}, {born}, {city}, {occupation} (columns: "
            "name, born, city, occupation).",
            "Profile -> sentence. Occupation: {occupation}. City: {city}. Born: {born}. "
            "Name: {name}.",
            "Describe {name} in a sentence, given: born {born}; lives in {city}; job {occupation}.",
        ),
        forever(_person),
    ),
    BuiltinSpec(
        "weather_record_to_text",
        "struct_to_text",
        "rouge_l",
        "procedural",
        templates(
            "city[{city}], day[{day}], sky[{sky}], high[{high}], low[{low}]\nWrite the "
            "forecast as a sentence.",
            "Turn this forecast data into a sentence. City: {city}; Day: {day}; Weather: "
            "{sky}; High: {high}; Low: {low}",
            "Forecast for {city} on {day}: {sky}, {low} to {high} degrees. Say it as a full "
            "sentence.",
            'Data: {{"city": "{city}", "day": "{day}", "sky": "{sky}", "high": '
            '{high}, "low": {low}}}\nSentence:',
            "Write one sentence for a weather report using: {day} | {city} | {sky} | high "
            "{high} | low {low}",
            "{city} | {day} | {sky} | {high} | {low}\nColumns are city, day, sky, high and "
            "low. Describe the forecast.",
            "Verbalise the record: day={day}, city={city}, condition={sky}, max={high}, min={low}.",
            "Weather table row -> text.\nCity: {city}\nDay: {day}\nConditions: {sky}\n"
            "Highest: {high}\nLowest: {low}",
            "You are a weather presenter. In one sentence, tell viewers about {city} on "
            "{day}: {sky}, high {high}, low {low}.",
            "Generate a forecast sentence from: low {low}, high {high}, sky {sky}, day {day}, "
            "city {city}.",
        ),
        forever(_weather),
    ),
    BuiltinSpec(
        "wiki_concepts_to_sentence",
        "struct_to_text",
        "rouge_l",
        "wikipedia",
        templates(
            "Concepts: {concepts}\nWrite a sentence that uses all of these concepts.",
            "Make an encyclopedia-style sentence containing these words: {concepts}",
            "Write one sentence using every word in this list: {concepts}.",
            "Q: What sentence could include the words {concepts}?\nA:",
            "{concepts}\n\nCombine the words above into a single factual sentence.",
            "Keywords: {concepts}. Sentence:",
            "Generate a sentence about a real topic that mentions {concepts}.",
            "Here is a set of concepts: {concepts}. Write a sentence with all of them.",
            "Create a sentence from the following words (any order): {concepts}",
            'Use the words "{concepts}" in one informative sentence.',
        ),
        _concepts,
    ),
    BuiltinSpec(
        "wiki_triples_to_text",
        "struct_to_text",
        "rouge_l",
        "wikipedia",
        templates(
            "{subject} | instance of | {description}\n{subject} | topic | {topic}\nWrite "
            "these facts as one sentence.",
            "Triples: ({subject}, is a, {description}); ({subject}, belongs to, {topic}).\n"
            "Sentence:",
            "Describe {subject} in one sentence, given its type ({description}) and its "
            "field ({topic}).",
            "subject[{subject}], type[{description}], field[{topic}]\nVerbalise:",
            'Data: {{"subject": "{subject}", "type": "{description}", "field": '
            '"{topic}"}}\nWrite a sentence:',
            "Convert to text: {subject} -> {description} -> {topic}",
            "Knowledge graph facts:\n- {subject} is of type {description}\n- {subject} is "
            "studied in {topic}\nExpress them in a single sentence.",
            "Entity: {subject}\nDescription: {description}\nArea: {topic}\nText:",
            "Write a sentence about {subject} (type: {description}; field: {topic}).",
            "From these facts, write one sentence. Field: {topic}. What it is: {description}. "
            "Name: {subject}.",
        ),
        _triples,
    ),
)
