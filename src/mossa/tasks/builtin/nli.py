"""Natural language inference: Wikipedia premises with rule-built hypotheses, and counting.

Hypotheses are built from the premise's own copular clause ("X is a Y ..."): the
clause cut before its first relative or comma clause is entailed, the same clause with
the copula negated is contradicted, and the subject with a predicate the text cannot
settle ("X is discussed in many school textbooks") is neutral.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from mossa.tasks.builtin._common import (
    NAMES,
    BuiltinSpec,
    forever,
    lead,
    n_words,
    over_articles,
    plain_title,
    templates,
)
from mossa.tasks.texts import Article, wiki_articles
from mossa.tasks.types import Example

_COPULA = re.compile(r"\b(is|are|was|were)\b")
_CLAUSE_CUT = re.compile(r",|;| which | that | who | whose | where | when | and is | and was ")
_PHRASE_CUT = re.compile(r" (?:by|in|from|of the|with|for|on|at|between) ")
_PRONOUNS = {"It", "He", "She", "They"}
_DANGLING = frozenset("a an the and or of by in to for with from on at as than".split())
NEUTRAL_PREDICATES = (
    "discussed in many school textbooks",
    "the subject of a popular song",
    "well known in Japan",
    "featured in a documentary film",
    "admired by millions of people",
    "often confused with something else",
    "praised by a famous poet",
    "studied by scientists in Brazil",
    "disliked by many critics",
    "shown on a postage stamp",
    "celebrated with an annual festival",
    "mentioned in a famous novel",
    "the topic of a long debate among experts",
    "popular with teenagers",
)


@dataclass(frozen=True)
class Clause:
    """A copular clause: ``subject copula predicate`` (predicate cut before sub-clauses)."""

    subject: str
    copula: str
    predicate: str

    def entailed(self) -> str:
        return f"{self.subject} {self.copula} {self.predicate}."

    def negated(self) -> str:
        return f"{self.subject} {self.copula} not {self.predicate}."

    def neutral(self, rng: random.Random) -> str:
        return f"{self.subject} {self.copula} {rng.choice(NEUTRAL_PREDICATES)}."


def copular_clause(sentence: str, title: str) -> Clause | None:
    """The sentence's leading ``X is Y`` clause, or None if it has none that is usable."""
    match = _COPULA.search(sentence)
    if match is None:
        return None
    subject = sentence[: match.start()].strip()
    if not 1 <= n_words(subject) <= 8 or "," in subject or "(" in subject:
        return None
    if subject in _PRONOUNS:
        subject = plain_title(title)
    rest = sentence[match.end() :].strip().rstrip(".").strip()
    predicate = _CLAUSE_CUT.split(rest, maxsplit=1)[0].strip()
    if predicate == rest:  # nothing cut: drop a trailing phrase so the clause is shorter
        cut = _PHRASE_CUT.search(predicate)
        predicate = predicate[: cut.start()] if cut else predicate
    words = predicate.split()
    while words and words[-1].lower() in _DANGLING:  # "the process by" -> "the process"
        words.pop()
    predicate = " ".join(words)
    if not 2 <= n_words(predicate) <= 16 or predicate.split()[0] in ("not", "also", "no"):
        return None
    if predicate.count("(") != predicate.count(")"):
        return None
    return Clause(subject, match.group(1), predicate)


@lru_cache(maxsize=1)
def _nli_articles() -> tuple[Article, ...]:
    return tuple(
        a
        for a in wiki_articles()
        if n_words(a.sentences[0]) <= 32 and copular_clause(a.sentences[0], a.title)
    )


def _wiki_nli(article: Article, rng: random.Random) -> Example | None:
    clause = copular_clause(article.sentences[0], article.title)
    label = rng.choice(("entailment", "neutral", "contradiction"))
    if label == "entailment" and clause.entailed() == article.sentences[0]:
        return None  # a hypothesis identical to the premise teaches nothing
    hypothesis = {
        "entailment": clause.entailed,
        "contradiction": clause.negated,
        "neutral": lambda: clause.neutral(rng),
    }[label]()
    return Example({"premise": article.sentences[0], "hypothesis": hypothesis}, label)


def _wiki_rte(article: Article, rng: random.Random) -> Example | None:
    premise = lead(article.sentences, 38, min_sentences=2)
    if premise is None:
        return None
    clauses = [copular_clause(s, article.title) for s in article.sentences[:2]]
    clauses = [c for c in clauses if c is not None]
    if not clauses:
        return None
    clause = rng.choice(clauses)
    label = rng.choice(("yes", "no"))
    hypothesis = clause.entailed() if label == "yes" else clause.negated()
    return Example({"premise": premise, "hypothesis": hypothesis}, label)


_ITEMS = (
    "apples", "pears", "books", "pencils", "coins", "stamps", "marbles", "cards", "shells",
    "stickers", "cups", "plates", "keys", "candles", "balloons", "oranges",
)  # fmt: skip


def _quantity_nli(rng: random.Random) -> Example:
    name, other = rng.sample(NAMES, 2)
    first, second = rng.sample(_ITEMS, 2)
    a, b = rng.sample(range(2, 16), 2)
    premise = f"{name} has {a} {first} and {b} {second}."
    label = rng.choice(("yes", "no", "maybe"))
    kind = rng.choice(("compare", "at_least", "exactly"))
    if label == "maybe":
        hypothesis = rng.choice(
            (
                f"{name} has more {first} than {other}.",
                f"{name} bought the {second} last week.",
                f"{other} has {a} {first}.",
                f"{name} keeps the {first} in a box.",
            )
        )
    elif kind == "compare":
        more = (a > b) == (label == "yes")
        hypothesis = f"{name} has {'more' if more else 'fewer'} {first} than {second}."
    elif kind == "at_least":
        k = rng.randint(1, a) if label == "yes" else rng.randint(a + 1, a + 6)
        hypothesis = f"{name} has at least {k} {first}."
    else:
        k = a if label == "yes" else rng.choice([x for x in range(1, 20) if x != a])
        hypothesis = f"{name} has exactly {k} {first}."
    return Example({"premise": premise, "hypothesis": hypothesis}, label)


SPECS = (
    BuiltinSpec(
        "wiki_nli",
        "nli",
        "accuracy",
        "wikipedia",
        templates(
            "Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail the "
            "hypothesis? Options: entailment, neutral, contradiction",
            '{premise}\n\nBased on the sentence above, is "{hypothesis}" entailment, '
            "neutral or contradiction?",
            "Read the two sentences and label their relation (entailment, neutral or "
            "contradiction).\nA: {premise}\nB: {hypothesis}",
            "Sentence 1: {premise}\nSentence 2: {hypothesis}\nIf sentence 1 is true, is "
            "sentence 2 true (entailment), false (contradiction) or unknown (neutral)?",
            'Given that "{premise}", what can be said about "{hypothesis}"? Answer '
            "entailment, neutral or contradiction.",
            "Hypothesis: {hypothesis}\nPremise: {premise}\nRelation of the premise to the "
            "hypothesis (entailment/neutral/contradiction):",
            "Decide the inference label.\n{premise}\nClaim: {hypothesis}\nLabel:",
            "Text: {premise}\nDoes this text support, contradict or say nothing about the "
            'claim "{hypothesis}"? Reply entailment, contradiction or neutral.',
            'NLI task. Premise: "{premise}" Hypothesis: "{hypothesis}" Which label fits: '
            "entailment, neutral, contradiction?",
            'Can we infer "{hypothesis}" from "{premise}"? Choose entailment, neutral or '
            "contradiction.",
        ),
        over_articles(_nli_articles, _wiki_nli),
    ),
    BuiltinSpec(
        "wiki_rte",
        "nli",
        "accuracy",
        "wikipedia",
        templates(
            '{premise}\nQuestion: Does this imply that "{hypothesis}"? Yes or no?',
            "Read the passage: {premise}\nIs the following statement true according to the "
            "passage? {hypothesis}\nAnswer yes or no.",
            "Passage: {premise}\nStatement: {hypothesis}\nDoes the passage entail the "
            "statement? (yes/no)",
            "Decide if the second text follows from the first.\nFirst: {premise}\nSecond: "
            "{hypothesis}\nAnswer:",
            "Statement: {hypothesis}\nEvidence: {premise}\nIs the statement supported by the "
            "evidence? yes or no",
            "{premise} Based on that paragraph, can we conclude that {hypothesis} Reply yes or no.",
            'Here is a short text: "{premise}" Is it correct to say "{hypothesis}"?',
            "Given the text below, answer yes if the claim follows and no otherwise.\nClaim: "
            "{hypothesis}\nText: {premise}",
            'Q: If "{premise}" is true, is "{hypothesis}" also true?\nA (yes/no):',
            "Recognising textual entailment.\nT: {premise}\nH: {hypothesis}\nEntailed?",
        ),
        over_articles(_nli_articles, _wiki_rte),
    ),
    BuiltinSpec(
        "quantity_nli",
        "nli",
        "accuracy",
        "procedural",
        templates(
            "{premise} Based on this, is it true that {hypothesis} Answer yes, no or maybe.",
            "Premise: {premise}\nHypothesis: {hypothesis}\nDoes the premise entail the "
            "hypothesis? Options: yes, no, maybe",
            "Fact: {premise}\nClaim: {hypothesis}\nIs the claim true (yes), false (no) or "
            "impossible to tell (maybe)?",
            "If {premise} then is this true: {hypothesis}",
            "Read: {premise}\nQuestion: {hypothesis} True? yes/no/maybe",
            "Claim: {hypothesis}\nWhat we know: {premise}\nDoes what we know prove the "
            "claim, disprove it, or neither? Answer yes, no or maybe.",
            'Given "{premise}", can we say "{hypothesis}"? yes, no, or maybe?',
            "{premise}\nDoes it follow that {hypothesis}\nOPTIONS: yes | no | maybe",
            "Check the statement against the information.\nInformation: {premise}\n"
            "Statement: {hypothesis}\nVerdict (yes, no, maybe):",
            "Suppose {premise} Then, {hypothesis} Yes, no, or maybe?",
        ),
        forever(_quantity_nli),
    ),
)
