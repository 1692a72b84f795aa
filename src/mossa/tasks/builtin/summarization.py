"""Summarization of Wikipedia leads: the opening sentence, the title, the short description.

The lead summary task follows XSum's recipe: the article's first sentence, which
summarises the topic, is the target and is removed from the input paragraph.
"""

from __future__ import annotations

import random
from functools import lru_cache

from mossa.tasks.builtin._common import (
    BuiltinSpec,
    lead,
    n_words,
    over_articles,
    plain_title,
    templates,
)
from mossa.tasks.texts import Article, wiki_articles
from mossa.tasks.types import Example


@lru_cache(maxsize=1)
def _lead_summary_articles() -> tuple[Article, ...]:
    return tuple(
        a for a in wiki_articles() if len(a.sentences) >= 3 and 8 <= n_words(a.sentences[0]) <= 22
    )


def _lead_summary(article: Article, rng: random.Random) -> Example | None:
    rest = lead(article.sentences[1:], 45)
    if rest is None or n_words(rest) < 15:
        return None
    return Example({"text": rest}, article.sentences[0])


def _title(article: Article, rng: random.Random) -> Example | None:
    passage = lead(article.sentences, 45)
    return None if passage is None else Example({"text": passage}, plain_title(article.title))


def _description(article: Article, rng: random.Random) -> Example | None:
    passage = lead(article.sentences, 45)
    if passage is None or not 2 <= n_words(article.description) <= 10:
        return None
    return Example({"text": passage}, article.description)


SPECS = (
    BuiltinSpec(
        "wiki_lead_summary",
        "summarization",
        "rouge_l",
        "wikipedia",
        templates(
            "{text}\n\nWrite a one-sentence summary of the topic of this text.",
            "Summarize in one sentence: {text}",
            "Text: {text}\nOne-sentence summary:",
            "Read the paragraph and write the opening sentence of the encyclopedia article "
            "it comes from.\n{text}",
            "What is this paragraph about? Answer with a single sentence.\n\n{text}",
            "Q: {text} Can you sum that up in one sentence?\nA:",
            'Here is part of an article: "{text}" Write a sentence that introduces its subject.',
            "Give a brief summary (one sentence) of the following.\n{text}",
            "Condense this into one sentence: {text}",
            "Paragraph: {text}\nTL;DR in one sentence:",
        ),
        over_articles(_lead_summary_articles, _lead_summary),
    ),
    BuiltinSpec(
        "wiki_title_generation",
        "summarization",
        "rouge_l",
        "wikipedia",
        templates(
            "{text}\n\nWhat is a good title for this article?",
            "Write a title for the following text.\n{text}",
            "Text: {text}\nTitle:",
            "Give this encyclopedia paragraph a short heading. {text}",
            'Q: What would you call an article that begins "{text}"?\nA:',
            "Suggest the name of the article this paragraph opens.\n\n{text}",
            "Read the passage and name its subject in a few words: {text}",
            "Headline for this text, please: {text}",
            "Here is the start of an article: {text} What is the article's title?",
            "Generate a title.\nArticle: {text}",
        ),
        over_articles(wiki_articles, _title),
    ),
    BuiltinSpec(
        "wiki_description_generation",
        "summarization",
        "rouge_l",
        "wikipedia",
        templates(
            "{text}\n\nDescribe the subject of this paragraph in a few words.",
            "Write a short description (under ten words) of what this text is about: {text}",
            "Text: {text}\nShort description:",
            "Summarize the subject of the following paragraph as a brief phrase.\n{text}",
            "Q: In a few words, what is described here? {text}\nA:",
            "Read the paragraph and write the kind of one-line caption an encyclopedia would "
            "use for its subject.\n\n{text}",
            'Here is an article opening: "{text}" Give a brief description of its subject.',
            "Sum up what the subject is in a short phrase: {text}",
            "{text}\nWhat is this? Answer with a short phrase.",
            "Paragraph: {text}\nDescribe the topic in one phrase:",
        ),
        over_articles(wiki_articles, _description),
    ),
)
