"""Translation between English and two constructed languages, Velan and Kesh.

No parallel corpus ships in a small package, so mossa makes its own: simple English
sentences from a small grammar and their word-by-word translations with a fixed lexicon
and each language's own word order. The lexicons are drawn once from fixed seeds (they
never change with the suite seed, so a language stays the same language across runs).

* Velan: subject-object-verb; adjectives after the noun; "the" is the noun suffix
  ``-en`` ("a" is unmarked); prepositions become postpositions.
* Kesh: verb-subject-object; adjectives before the noun; articles ``lu`` (the) and
  ``ka`` (a); prepositions stay in front.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from mossa.tasks.builtin._common import BuiltinSpec, capitalise, forever, templates
from mossa.tasks.types import Example

NOUNS = (
    "dog", "cat", "bird", "child", "farmer", "teacher", "river", "tree", "house", "boat",
    "horse", "king", "queen", "stone", "apple", "book", "door", "road", "garden", "fish",
    "friend", "mother", "father", "window", "mountain", "village", "table", "cup", "letter",
    "song",
)  # fmt: skip
VERBS = (
    "sees", "finds", "carries", "likes", "follows", "holds", "paints", "opens", "builds",
    "hears", "watches", "brings", "wants", "takes", "visits", "feeds",
)  # fmt: skip
ADJECTIVES = (
    "big", "small", "old", "young", "red", "green", "happy", "quiet", "brave", "tired",
    "white", "dark", "tall", "kind", "busy", "cold",
)  # fmt: skip
PREPOSITIONS = ("near", "behind", "under", "in", "beside", "above")


@dataclass(frozen=True)
class Phrase:
    determiner: str  # "the" or "a"
    adjective: str | None
    noun: str

    def english(self) -> str:
        head = self.adjective or self.noun
        article = "an" if self.determiner == "a" and head[0] in "aeiou" else self.determiner
        return " ".join(w for w in (article, self.adjective, self.noun) if w)


@dataclass(frozen=True)
class Sentence:
    subject: Phrase
    verb: str
    obj: Phrase
    preposition: str | None
    place: Phrase | None

    def english(self) -> str:
        words = [self.subject.english(), self.verb, self.obj.english()]
        if self.preposition:
            words += [self.preposition, self.place.english()]
        return capitalise(" ".join(words)) + "."


def _lexicon(seed: str, syllables: str) -> dict[str, str]:
    """English word -> invented word, unique, from a fixed seed and syllable inventory."""
    rng = random.Random(seed)
    parts = syllables.split()
    words: dict[str, str] = {}
    used: set[str] = set()
    for english in NOUNS + VERBS + ADJECTIVES + PREPOSITIONS:
        while True:
            word = "".join(rng.choice(parts) for _ in range(rng.choice((2, 2, 3))))
            if word not in used:
                used.add(word)
                words[english] = word
                break
    return words


@lru_cache(maxsize=1)
def velan_lexicon() -> dict[str, str]:
    return _lexicon("mossa-velan-v1", "ka lo mi ra te su vo ni pe da ze lu fa ri mo")


@lru_cache(maxsize=1)
def kesh_lexicon() -> dict[str, str]:
    return _lexicon("mossa-kesh-v1", "tak esh gor ul bin hra vek sil dum oth yar kez")


def velan(sentence: Sentence) -> str:
    lex = velan_lexicon()

    def phrase(p: Phrase) -> str:
        noun = lex[p.noun] + ("en" if p.determiner == "the" else "")
        return " ".join([noun] + ([lex[p.adjective]] if p.adjective else []))

    words = [phrase(sentence.subject), phrase(sentence.obj)]
    if sentence.preposition:
        words += [phrase(sentence.place), lex[sentence.preposition]]
    words.append(lex[sentence.verb])
    return capitalise(" ".join(words)) + "."


def kesh(sentence: Sentence) -> str:
    lex = kesh_lexicon()

    def phrase(p: Phrase) -> str:
        article = "lu" if p.determiner == "the" else "ka"
        return " ".join([article] + ([lex[p.adjective]] if p.adjective else []) + [lex[p.noun]])

    words = [lex[sentence.verb], phrase(sentence.subject), phrase(sentence.obj)]
    if sentence.preposition:
        words += [lex[sentence.preposition], phrase(sentence.place)]
    return capitalise(" ".join(words)) + "."


def random_sentence(rng: random.Random) -> Sentence:
    def phrase() -> Phrase:
        adjective = rng.choice(ADJECTIVES) if rng.random() < 0.5 else None
        return Phrase(rng.choice(("the", "a")), adjective, rng.choice(NOUNS))

    subject, obj = phrase(), phrase()
    if rng.random() < 0.5:
        return Sentence(subject, rng.choice(VERBS), obj, rng.choice(PREPOSITIONS), phrase())
    return Sentence(subject, rng.choice(VERBS), obj, None, None)


def _pair(source, target):
    def make(rng: random.Random) -> Example:
        sentence = random_sentence(rng)
        return Example({"sentence": source(sentence)}, target(sentence))

    return make


def _english(sentence: Sentence) -> str:
    return sentence.english()


def _templates(src: str, tgt: str):
    return templates(
        f"Translate into {tgt}: {{sentence}}",
        f"{src}: {{sentence}}\n{tgt}:",
        f'How do you say "{{sentence}}" in {tgt}?',
        f"Translate the following {src} sentence to {tgt}.\n\n{{sentence}}",
        f"{{sentence}}\n\nTranslate this sentence from {src} into {tgt}.",
        f'Q: What is the {tgt} translation of "{{sentence}}"?\nA:',
        f"Give the {tgt} version of this {src} text: {{sentence}}",
        f"Here is a sentence in {src}: {{sentence}} Please render it in {tgt}.",
        f"{src} to {tgt}. Source: {{sentence}} Target:",
        f'I need this in {tgt}, please: "{{sentence}}"',
    )


SPECS = (
    BuiltinSpec(
        "english_to_velan",
        "translation",
        "bleu",
        "procedural",
        _templates("English", "Velan"),
        forever(_pair(_english, velan)),
    ),
    BuiltinSpec(
        "velan_to_english",
        "translation",
        "bleu",
        "procedural",
        _templates("Velan", "English"),
        forever(_pair(velan, _english)),
    ),
    BuiltinSpec(
        "english_to_kesh",
        "translation",
        "bleu",
        "procedural",
        _templates("English", "Kesh"),
        forever(_pair(_english, kesh)),
    ),
)
