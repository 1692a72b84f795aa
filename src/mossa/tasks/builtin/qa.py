"""Closed-book QA (title only) and reading comprehension (with the lead paragraph).

Both use Wikipedia: the topic category of an article (the data's own title -> category
map), its short description, and the years mentioned in its lead.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from mossa.tasks.builtin._common import (
    BuiltinSpec,
    articles_by_category,
    lead,
    n_words,
    other_article,
    over_articles,
    plain_title,
    stratified,
    templates,
)
from mossa.tasks.texts import CATEGORY_LABELS, Article, wiki_articles
from mossa.tasks.types import Example

CATEGORY_OPTIONS = ", ".join(sorted(CATEGORY_LABELS.values()))
_YEAR = re.compile(r"(?<![\d,.])(1[0-9]{3}|20[0-2][0-9])(?![\d,])")


def _short_description(article: Article) -> bool:
    return 2 <= n_words(article.description) <= 10


@lru_cache(maxsize=1)
def _described() -> tuple[Article, ...]:
    return tuple(a for a in wiki_articles() if _short_description(a))


def _title_category(article: Article, rng: random.Random) -> Example:
    return Example({"title": article.title}, article.category)


def _title_description(article: Article, rng: random.Random) -> Example:
    return Example({"title": article.title}, article.description)


def _passage_category(article: Article, rng: random.Random) -> Example | None:
    passage = lead(article.sentences, 45)
    return None if passage is None else Example({"passage": passage}, article.category)


def _boolq(article: Article, rng: random.Random) -> Example | None:
    passage = lead(article.sentences, 40)
    if passage is None:
        return None
    if rng.random() < 0.5:
        description, label = article.description, "yes"
    else:
        other = other_article(rng, article)
        if other.description.lower() == article.description.lower():
            return None
        description, label = other.description, "no"
    return Example(
        {"passage": passage, "title": plain_title(article.title), "description": description},
        label,
    )


def _earliest_year(article: Article, rng: random.Random) -> Example | None:
    passage = lead(article.sentences, 50)
    if passage is None:
        return None
    years = sorted({int(y) for y in _YEAR.findall(passage)})
    if len(years) < 2:
        return None
    return Example({"passage": passage}, str(years[0]))


SPECS = (
    BuiltinSpec(
        "wiki_title_category",
        "closed_book_qa",
        "accuracy",
        "wikipedia",
        templates(
            'Which topic category does the encyclopedia article "{title}" belong to? '
            f"Options: {CATEGORY_OPTIONS}",
            f"Categories: {CATEGORY_OPTIONS}.\nArticle title: {{title}}\nCategory:",
            'What is "{title}" mainly about? Answer with one of: ' + CATEGORY_OPTIONS + ".",
            "Q: In which subject area would you file an article called {title}?\nA:",
            "{title}\n\nWhich of these topics fits this title best? " + CATEGORY_OPTIONS,
            'Classify the Wikipedia title "{title}" into a topic (' + CATEGORY_OPTIONS + ").",
            'You see a book chapter titled "{title}". Which topic is it about? Pick from '
            + CATEGORY_OPTIONS
            + ".",
            "Topic of {title}? Choose: " + CATEGORY_OPTIONS,
            "Without any other context, assign the subject {title} to a category. Options: "
            + CATEGORY_OPTIONS,
            "Title: {title}\nWhat kind of topic is this? Answer with a single word.",
        ),
        stratified(articles_by_category, _title_category),
    ),
    BuiltinSpec(
        "wiki_title_description",
        "closed_book_qa",
        "rouge_l",
        "wikipedia",
        templates(
            "What is {title}?",
            "Give a short description of {title}.",
            "Q: What is {title} best described as?\nA:",
            'In a few words, what is "{title}"?',
            "Describe {title} in one short phrase.",
            "{title} is what? Answer briefly.",
            'Write the short encyclopedia description for the entry "{title}".',
            "Explain in under ten words what {title} is.",
            "Entry: {title}\nShort description:",
            'Someone asks you: "What is {title}?" Reply with a brief phrase.',
        ),
        over_articles(_described, _title_description),
    ),
    BuiltinSpec(
        "wiki_passage_category",
        "reading_comprehension",
        "accuracy",
        "wikipedia",
        templates(
            "{passage}\n\nWhich topic category is this article in? Options: " + CATEGORY_OPTIONS,
            "Read the article and name its topic (" + CATEGORY_OPTIONS + ").\n{passage}",
            "Article: {passage}\nTopic:",
            "What is the following text about? Choose one of "
            + CATEGORY_OPTIONS
            + ".\n\n{passage}",
            "Text: {passage}\nQuestion: Which subject area does this text belong to?",
            'Here is an encyclopedia paragraph: "{passage}" Its category is',
            "Categories: " + CATEGORY_OPTIONS + "\nParagraph: {passage}\nBest category:",
            "{passage}\nQ: What kind of topic does this paragraph cover? Answer in one word.",
            "Classify this passage by topic.\n{passage}",
            'After reading "{passage}", which category would you put it in?',
        ),
        stratified(articles_by_category, _passage_category),
    ),
    BuiltinSpec(
        "wiki_boolq",
        "reading_comprehension",
        "accuracy",
        "wikipedia",
        templates(
            '{passage}\n\nBased on the passage, can {title} be described as "{description}"? '
            "Yes or no?",
            'Passage: {passage}\nQuestion: Can {title} be described as "{description}"?\nAnswer:',
            "Read the text and answer yes or no.\n{passage}\nIs {title} best described as "
            "{description}?",
            'Does the passage support describing {title} as "{description}"?\n{passage}',
            "Description: {description}\nSubject: {title}\nText: {passage}\nDoes the "
            "description fit the subject according to the text?",
            '{passage} Question: would "{description}" be a fair short description of '
            "{title}? Answer yes or no.",
            'Q: Given "{passage}", is {title} correctly described as "{description}"?\nA:',
            'Is this a correct description of {title}: "{description}"? Use the passage '
            "to decide.\n{passage}",
            'Text: {passage}\nClaim: {title} is described as "{description}".\nTrue? (yes/no)',
            '{title}: "{description}"? Check it against this paragraph: {passage}',
        ),
        over_articles(_described, _boolq),
    ),
    BuiltinSpec(
        "wiki_earliest_year",
        "reading_comprehension",
        "accuracy",
        "wikipedia",
        templates(
            "{passage}\n\nWhat is the earliest year mentioned in the passage?",
            "Read the text and give the earliest year it mentions.\n{passage}",
            "Passage: {passage}\nQuestion: Which year mentioned here comes first in time?\nAnswer:",
            "Which is the oldest date (year) in this paragraph? {passage}",
            "Text: {passage}\nEarliest year:",
            "Find all years in the following text and report the smallest one. {passage}",
            "Q: {passage} What is the first year, chronologically, named above?\nA:",
            'Here is a paragraph: "{passage}" Name the earliest year that appears in it.',
            "Looking at the years in this passage, which one is earliest?\n\n{passage}",
            "{passage}\nOf the years mentioned, which is the earliest? Answer with the year.",
        ),
        over_articles(wiki_articles, _earliest_year),
    ),
)
