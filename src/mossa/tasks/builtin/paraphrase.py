"""Paraphrase detection: rewritten Wikipedia sentences and tweets, and question pairs.

A positive pair is a sentence and its rewrite (synonyms substituted, a fronted
time phrase moved to the end, tweet markup dropped); a negative pair is the sentence
and a different sentence on the same subject (or a tweet with the same sentiment), or a
rewrite whose copula was negated.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

from mossa.tasks.builtin._common import (
    NAMES,
    BuiltinSpec,
    capitalise,
    forever,
    n_words,
    over_articles,
    templates,
    tweets_by_label,
)
from mossa.tasks.texts import Article, wiki_articles
from mossa.tasks.types import Example

SYNONYMS: dict[str, str] = {
    "large": "big", "big": "large", "small": "tiny", "began": "started", "started": "began",
    "many": "numerous", "numerous": "many", "often": "frequently", "frequently": "often",
    "famous": "well-known", "well-known": "famous", "located": "situated",
    "situated": "located", "built": "constructed", "constructed": "built",
    "main": "principal", "principal": "main", "important": "significant",
    "significant": "important", "usually": "typically", "typically": "usually",
    "largest": "biggest", "biggest": "largest", "includes": "contains",
    "contains": "includes", "country": "nation", "nation": "country", "mostly": "mainly",
    "mainly": "mostly", "primarily": "chiefly", "modern": "contemporary",
    "ancient": "very old", "such as": "like", "throughout": "across", "region": "area",
    "area": "region", "various": "different", "developed": "created",
    "created": "developed", "died": "passed away", "became": "turned into",
    "helped": "assisted", "great": "excellent", "good": "fine", "bad": "poor",
    "thanks": "thank you", "love": "adore", "hate": "detest", "awesome": "great",
    "terrible": "awful", "awful": "terrible", "flight": "trip", "plane": "aircraft",
    "car": "vehicle", "cars": "vehicles", "now": "right now", "really": "truly",
    "very": "extremely", "happy": "glad", "angry": "furious", "please": "kindly",
}  # fmt: skip
_SYNONYM = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SYNONYMS), key=len)[::-1]) + r")\b")
_FRONTED = re.compile(r"^(In|During|By|After|Before|Since|From) ([^,]{3,40}), (.+?)([.!?])$")
_COPULA = re.compile(r"\b(is|are|was|were)\b")


def _swap_synonyms(text: str, rng: random.Random) -> str:
    """Replace a random non-empty subset (at most three) of the known synonyms."""
    matches = list(_SYNONYM.finditer(text))
    if not matches:
        return text
    chosen = set(rng.sample(range(len(matches)), min(len(matches), rng.randint(1, 3))))
    out, last = [], 0
    for i, m in enumerate(matches):
        if i not in chosen:
            continue
        word = m.group(0)
        new = SYNONYMS[word.lower()]
        out += [text[last : m.start()], capitalise(new) if word[0].isupper() else new]
        last = m.end()
    return "".join(out) + text[last:]


def rewrite_sentence(sentence: str, rng: random.Random) -> str:
    """A meaning-preserving rewrite (may equal the input when no rule applies)."""
    text = _swap_synonyms(sentence, rng)
    fronted = _FRONTED.match(text)
    if fronted and rng.random() < 0.7:
        prep, phrase, rest, end = fronted.groups()
        text = f"{capitalise(rest)} {prep.lower()} {phrase}{end}"
    return text


@lru_cache(maxsize=1)
def _paraphrase_articles() -> tuple[Article, ...]:
    return tuple(
        a
        for a in wiki_articles()
        if len(a.sentences) >= 2 and all(6 <= n_words(s) <= 28 for s in a.sentences[:2])
    )


def _wiki_paraphrase(article: Article, rng: random.Random) -> Example | None:
    first, second = article.sentences[:2]
    rewritten = rewrite_sentence(first, rng)
    if rewritten == first:
        return None
    if rng.random() < 0.5:
        return Example({"sentence1": first, "sentence2": rewritten}, "yes")
    if rng.random() < 0.6 or not _COPULA.search(rewritten):
        return Example({"sentence1": first, "sentence2": second}, "no")
    negated = _COPULA.sub(lambda m: f"{m.group(1)} not", rewritten, count=1)
    return Example({"sentence1": first, "sentence2": negated}, "no")


def rewrite_tweet(text: str, rng: random.Random) -> str:
    """The tweet without leading mentions, hashtag signs or repeated punctuation, re-worded."""
    text = re.sub(r"^(@\w+[:,]?\s+)+", "", text)
    text = text.replace("#", "")
    text = re.sub(r"([!?.])\1+", r"\1", text)
    return _swap_synonyms(text, rng).strip()


def _tweet_paraphrase(rng: random.Random) -> Example | None:
    groups = tweets_by_label()
    label = rng.choice(sorted(groups))
    tweet = rng.choice(groups[label])
    if rng.random() < 0.5:
        other = rewrite_tweet(tweet.text, rng)
        if other == tweet.text or n_words(other) < 3:
            return None
        return Example({"tweet1": tweet.text, "tweet2": other}, "yes")
    other = rng.choice(groups[label])
    if other.text == tweet.text:
        return None
    return Example({"tweet1": tweet.text, "tweet2": rewrite_tweet(other.text, rng)}, "no")


# Families of questions that ask the same thing; {x} is a person's name.
QUESTION_FAMILIES = (
    ("How old is {x}?", "What is the age of {x}?", "What age is {x}?"),
    ("Where does {x} live?", "What is {x}'s home town?", "In which town does {x} live?"),
    ("What does {x} do for a living?", "What is {x}'s job?", "What is the occupation of {x}?"),
    ("How tall is {x}?", "What is {x}'s height?", "What height is {x}?"),
    ("When is {x}'s birthday?", "On what date was {x} born?", "What is {x}'s date of birth?"),
    ("What is {x}'s favourite food?", "Which food does {x} like most?"),
    ("How many siblings does {x} have?", "How many brothers and sisters does {x} have?"),
    ("Does {x} have a pet?", "Does {x} own any pets?", "Is there a pet in {x}'s home?"),
    ("What languages does {x} speak?", "Which languages can {x} speak?"),
    ("How does {x} get to work?", "How does {x} travel to work?"),
    ("Who is {x}'s best friend?", "Who is the closest friend of {x}?"),
    ("What music does {x} like?", "Which kind of music does {x} enjoy?"),
)  # fmt: skip


def _question_paraphrase(rng: random.Random) -> Example:
    family = rng.randrange(len(QUESTION_FAMILIES))
    name = rng.choice(NAMES)
    first, second = rng.sample(QUESTION_FAMILIES[family], 2)
    kind = rng.choice(("same", "same", "other_topic", "other_person"))
    if kind == "other_topic":
        other = rng.choice([i for i in range(len(QUESTION_FAMILIES)) if i != family])
        second = rng.choice(QUESTION_FAMILIES[other])
    other_name = rng.choice([n for n in NAMES if n != name]) if kind == "other_person" else name
    label = "yes" if kind == "same" else "no"
    return Example(
        {"question1": first.format(x=name), "question2": second.format(x=other_name)}, label
    )


SPECS = (
    BuiltinSpec(
        "wiki_paraphrase",
        "paraphrase",
        "accuracy",
        "wikipedia",
        templates(
            "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nDo these two sentences mean "
            "the same thing? yes or no",
            '"{sentence1}" and "{sentence2}"\nAre these paraphrases of each other?',
            "Is the second sentence a paraphrase of the first?\n{sentence1}\n{sentence2}",
            "Check whether both sentences express the same meaning.\nA: {sentence1}\nB: "
            "{sentence2}\nAnswer (yes/no):",
            "{sentence2}\nDoes that say the same as this: {sentence1}",
            'Q: Do "{sentence1}" and "{sentence2}" have the same meaning?\nA:',
            "First: {sentence1} Second: {sentence2} Same meaning? Reply yes or no.",
            "Paraphrase detection.\nOriginal: {sentence1}\nCandidate: {sentence2}\nIs the "
            "candidate a paraphrase?",
            'Would a reader learn the same facts from "{sentence1}" as from "{sentence2}"?',
            "Here are two sentences:\n{sentence1}\n{sentence2}\nAre they equivalent? Options: "
            "yes, no",
        ),
        over_articles(_paraphrase_articles, _wiki_paraphrase),
    ),
    BuiltinSpec(
        "tweet_paraphrase",
        "paraphrase",
        "accuracy",
        "tweets",
        templates(
            "Tweet A: {tweet1}\nTweet B: {tweet2}\nDo the two tweets say the same thing? yes or no",
            'Is "{tweet2}" a rewording of "{tweet1}"?',
            "{tweet1}\n{tweet2}\nSame message? Answer yes or no.",
            "Do these posts mean the same? First post: {tweet1} Second post: {tweet2}",
            'Q: Does "{tweet1}" express the same content as "{tweet2}"?\nA:',
            "Compare the two messages and tell me if one paraphrases the other.\n1. {tweet1}\n"
            "2. {tweet2}",
            "Second tweet: {tweet2}\nFirst tweet: {tweet1}\nParaphrase? (yes/no)",
            'Someone tweeted "{tweet1}". Someone else wrote "{tweet2}". Is it the same '
            "tweet in other words?",
            "Message 1: {tweet1}\nMessage 2: {tweet2}\nAre they equivalent? OPTIONS: yes, no",
            'Decide if these two short texts have the same meaning: "{tweet1}" / "{tweet2}"',
        ),
        forever(_tweet_paraphrase),
    ),
    BuiltinSpec(
        "question_paraphrase",
        "paraphrase",
        "accuracy",
        "procedural",
        templates(
            "Question 1: {question1}\nQuestion 2: {question2}\nDo these questions ask the "
            "same thing? yes or no",
            'Are "{question1}" and "{question2}" duplicates?',
            'Would "{question1}" and "{question2}" have the same answer? Reply yes or no.',
            "{question1}\n{question2}\nSame question? Options: yes, no",
            'Q: Is "{question2}" a paraphrase of "{question1}"?\nA:',
            "Check for duplicate questions.\nFirst: {question1}\nSecond: {question2}\nDuplicate:",
            'Two users asked "{question1}" and "{question2}". Are they asking the same thing?',
            "Do these two questions mean the same? {question1} / {question2}",
            "Second question: {question2}\nFirst question: {question1}\nEquivalent? (yes/no)",
            'Could one answer serve for both "{question1}" and "{question2}"?',
        ),
        forever(_question_paraphrase),
    ),
)
