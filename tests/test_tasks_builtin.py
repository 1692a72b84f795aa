"""The built-in suite: shape, determinism, held-out prompts, lengths, readability, caps."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from functools import lru_cache
from statistics import mean

import pytest

from mossa.tasks import (
    CLUSTER_NAMES,
    CLUSTERS,
    METRICS,
    analysis_prompts,
    load_suite,
    readability,
    task_readability,
)
from mossa.tasks.builtin import train_fraction
from mossa.tasks.splits import water_fill
from mossa.tasks.types import task_name_problem, template_fields

PAPER_CLUSTERS = [
    "Natural language inference",
    "Commonsense reasoning",
    "Closed-book QA",
    "Coreference resolution",
    "Paraphrase detection",
    "Reading comprehension",
    "Reading comprehension with commonsense",
    "Sentiment analysis",
    "Struct to text",
    "Translation",
    "Summarization",
    "Unseen",
]


@lru_cache(maxsize=4)
def suite(seed: int = 0):
    return tuple(load_suite("builtin", seed=seed))


def serialise(tasks) -> str:
    """Every task field and example, as canonical JSON."""
    return json.dumps(
        [
            {
                "name": t.name,
                "cluster": t.cluster,
                "seen": t.seen,
                "metric": t.metric,
                "source": t.source,
                "templates": [[tpl.prompt, tpl.target] for tpl in t.templates],
                **{
                    split: [[dict(ex.inputs), ex.target] for ex in getattr(t, split)]
                    for split in ("train", "validation", "test")
                },
            }
            for t in tasks
        ],
        sort_keys=True,
    )


def test_clusters_are_the_papers_twelve_in_order():
    assert len(CLUSTERS) == 12
    assert [CLUSTER_NAMES[c] for c in CLUSTERS] == PAPER_CLUSTERS


def test_suite_shape():
    tasks = suite()
    names = [t.name for t in tasks]
    assert len(tasks) >= 30
    assert len(set(names)) == len(names)
    assert [task_name_problem(n) for n in names] == [None] * len(names)  # safe file names
    per_cluster = {c: [t for t in tasks if t.cluster == c] for c in CLUSTERS}
    assert all(len(v) >= 2 for v in per_cluster.values()), {
        k: len(v) for k, v in per_cluster.items()
    }
    assert [t.cluster for t in tasks] == sorted((t.cluster for t in tasks), key=CLUSTERS.index)
    for t in tasks:
        assert len(t.templates) >= 10, t.name
        assert len({tpl.prompt for tpl in t.templates}) == len(t.templates), t.name
        assert t.seen == (t.cluster != "unseen"), t.name
        assert t.metric in METRICS
        assert (len(t.validation), len(t.test)) == (40, 80), t.name
        assert len(t.train) == max(8, round(train_fraction(t.name, 0) * 200)), t.name
    sizes = [len(t.train) for t in tasks]
    assert min(sizes) < 0.6 * max(sizes), "training sizes should vary across tasks"
    assert {t.metric for t in tasks} == set(METRICS)
    assert all(t.metric == "bleu" for t in per_cluster["translation"])


def test_every_template_uses_every_input_field():
    """So distinct inputs always render to distinct prompts under every template."""
    for t in suite():
        fields = set(t.train[0].inputs)
        for i, tpl in enumerate(t.templates):
            assert set(template_fields(tpl.prompt)) == fields, (t.name, i)
            assert tpl.prompt == tpl.prompt.strip(), (t.name, i)
        assert all(set(ex.inputs) == fields for ex in t.train + t.validation + t.test)


def test_splits_share_no_inputs():
    for t in suite():
        keys = {
            split: {tuple(sorted(ex.inputs.items())) for ex in getattr(t, split)}
            for split in ("train", "validation", "test")
        }
        sizes = len(t.train) + len(t.validation) + len(t.test)
        assert sum(map(len, keys.values())) == sizes, t.name  # no repeats inside a split
        assert not keys["test"] & (keys["train"] | keys["validation"]), t.name
        assert not keys["train"] & keys["validation"], t.name


def test_same_seed_is_byte_identical_across_processes():
    """A fresh interpreter with another hash seed must produce the very same suite."""
    here = hashlib.sha256(serialise(suite(0)).encode()).hexdigest()
    script = (
        "import hashlib, sys; sys.path.insert(0, 'tests');"
        "from test_tasks_builtin import serialise;"
        "from mossa.tasks import load_suite;"
        "print(hashlib.sha256(serialise(load_suite('builtin', seed=0)).encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == here


def test_different_seed_gives_different_examples():
    zero, one = suite(0), suite(1)
    assert serialise(zero) != serialise(one)
    for a, b in zip(zero, one, strict=True):
        assert a.name == b.name
        assert [ex.inputs for ex in a.test] != [ex.inputs for ex in b.test], a.name


def test_no_analysis_prompt_was_ever_a_training_or_validation_prompt():
    tasks = suite()
    trained = {
        t.render(ex, i)[0]
        for t in tasks
        for ex in t.train + t.validation
        for i in range(len(t.templates))
    }
    for t in tasks:
        prompts = analysis_prompts(t, 64, seed=0)
        assert len(prompts) == 64 and len(set(prompts)) == 64, t.name
        assert not trained & set(prompts), t.name
        test_renderings = {t.render(ex, i)[0] for ex in t.test for i in range(len(t.templates))}
        assert set(prompts) <= test_renderings, t.name


def test_prompts_and_targets_are_short():
    for t in suite():
        words = [len(t.render(ex, i)[0].split()) for ex in t.train for i in range(len(t.templates))]
        assert mean(words) <= 60, (t.name, mean(words))
        assert sorted(words)[int(0.9 * len(words))] <= 75, t.name
        target_words = [len(ex.target.split()) for ex in t.train + t.test]
        if t.metric == "accuracy":
            assert max(target_words) <= 8, t.name
        else:
            assert max(target_words) <= 22, t.name


def test_classification_labels_are_balanced_single_words():
    label_tasks = {
        "wiki_nli", "wiki_rte", "quantity_nli", "wiki_title_category", "wiki_paraphrase",
        "tweet_paraphrase", "question_paraphrase", "wiki_passage_category", "wiki_boolq",
        "story_emotion", "tweet_sentiment", "tweet_polarity", "review_sentiment",
        "question_type", "sentence_acceptability",
    }  # fmt: skip
    for t in suite():
        if t.name not in label_tasks:
            continue
        labels = [ex.target for ex in t.train]
        assert all(len(label.split()) == 1 for label in labels), t.name
        counts = {label: labels.count(label) for label in set(labels)}
        assert min(counts.values()) >= 0.3 * len(labels) / len(counts), (t.name, counts)


def test_readability_matches_the_formulas_with_pyphen_syllables():
    """Independent reference: FK and Coleman-Liau from plain counts and pyphen."""
    import pyphen

    dic = pyphen.Pyphen(lang="en_US")
    text = "Photosynthesis transforms electromagnetic radiation. Plants grow quickly."
    words = [w.strip(".").lower() for w in text.split()]
    syllables = sum(len(dic.positions(w)) + 1 for w in words)
    fk = 0.39 * len(words) / 2 + 11.8 * syllables / len(words) - 15.59
    letters = sum(len(w) for w in words)
    cl = 0.0588 * 100 * letters / len(words) - 0.296 * 100 * 2 / len(words) - 15.8
    got = readability([text, "The cat sat on the mat. The dog ran to the park."])
    simple_fk = 0.39 * 6 + 11.8 * 1 - 15.59
    simple_cl = 0.0588 * 100 * 35 / 12 - 0.296 * 100 * 2 / 12 - 15.8
    assert got["n"] == 2
    assert got["flesch_kincaid"] == pytest.approx((fk + simple_fk) / 2, abs=0.01)
    assert got["coleman_liau"] == pytest.approx((cl + simple_cl) / 2, abs=0.01)


def test_readability_needs_no_download_and_varies_across_tasks(monkeypatch):
    import nltk

    def no_download(*args, **kwargs):
        raise AssertionError("readability tried to download nltk data")

    monkeypatch.setattr(nltk, "download", no_download)
    grades = {t.name: task_readability(t, n=40)["flesch_kincaid"] for t in suite()}
    assert max(grades.values()) - min(grades.values()) > 8, grades
    assert grades["arithmetic_word_problems"] < 4 < 8 < grades["wiki_passage_category"]


def test_filters_and_cluster_cap():
    tasks = load_suite("builtin", clusters=["nli", "sentiment"], tasks_per_cluster=1)
    assert [(t.name, t.cluster) for t in tasks] == [
        ("wiki_nli", "nli"),
        ("tweet_sentiment", "sentiment"),
    ]
    full_sizes = [len(t.train) for t in load_suite("builtin", clusters=["nli"], n_train=100)]
    cap = sum(full_sizes) - 20
    capped = load_suite("builtin", clusters=["nli"], n_train=100, max_per_cluster=cap)
    assert [len(t.train) for t in capped] == water_fill(full_sizes, cap)
    assert sum(len(t.train) for t in capped) <= cap
    assert all((len(t.validation), len(t.test)) == (40, 80) for t in capped)
    full = {t.name: t for t in load_suite("builtin", clusters=["nli"], n_train=100)}
    for t in capped:  # the cap keeps a prefix of the uncapped training split
        assert t.train == full[t.name].train[: len(t.train)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clusters": ["qa"]}, "unknown cluster 'qa'; valid clusters: nli, commonsense"),
        ({"n_train": 0}, "n_train must be a positive integer, got 0"),
        ({"tasks_per_cluster": -1}, "tasks_per_cluster must be a positive integer"),
        ({"spec": "suite.txt"}, "expected 'real', 'synthetic', a task file ending in .jsonl"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    spec = kwargs.pop("spec", "builtin")
    with pytest.raises(ValueError, match=message):
        load_suite(spec, **kwargs)


def by_name(name: str):
    return next(t for t in suite() if t.name == name)


def all_examples(name: str):
    t = by_name(name)
    return t.train + t.validation + t.test


def test_calendar_answers_by_stepping_day_by_day():
    from mossa.tasks.builtin.commonsense import MONTHS, WEEKDAYS

    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    words = (words + "fifteen sixteen seventeen eighteen nineteen twenty").split()
    for ex in all_examples("calendar_reasoning"):
        cycle = WEEKDAYS if ex.inputs["unit"] == "day of the week" else MONTHS
        position = cycle.index(ex.inputs["start"])
        for _ in range(words.index(ex.inputs["span"].split()[0]) + 1):
            position = (position + (1 if ex.inputs["direction"] == "after" else -1)) % len(cycle)
        assert ex.target == cycle[position], ex


def test_word_problem_answers_by_replaying_the_story():
    import re

    for ex in all_examples("arithmetic_word_problems"):
        count = int(re.search(r"has (\d+)", ex.inputs["story"]).group(1))
        for verb, n in re.findall(
            r"(buys|finds|is given|wins|gives away|loses|sells|gives) (\d+)", ex.inputs["story"]
        ):
            count += int(n) if verb in ("buys", "finds", "is given", "wins") else -int(n)
        assert ex.target == str(count), ex


def test_equation_answers_satisfy_their_equations():
    for ex in all_examples("linear_equations"):
        left, right = (
            ex.inputs["equation"].replace(ex.inputs["variable"], f"({ex.target})").split("=")
        )
        assert eval(left, {"__builtins__": {}}) == eval(right, {"__builtins__": {}}), ex


def test_size_answers_follow_the_size_table():
    from mossa.tasks.builtin.commonsense import SIZES_CM

    for ex in all_examples("size_comparison"):
        a, b = (ex.inputs[k].split(" ", 1)[1] for k in ("a", "b"))
        assert ex.target in (a, b)
        other = b if ex.target == a else a
        bigger = SIZES_CM[ex.target] > SIZES_CM[other]
        assert bigger == (ex.inputs["relation"] == "bigger"), ex


def test_records_are_verbalised_with_every_value():
    for name in ("person_record_to_text", "weather_record_to_text"):
        for ex in all_examples(name):
            assert all(value in ex.target for value in ex.inputs.values()), ex


def test_constructed_languages_are_fixed_word_for_word_codes():
    from mossa.tasks.builtin.translation import kesh_lexicon, velan_lexicon

    for lexicon in (velan_lexicon(), kesh_lexicon()):
        assert len(set(lexicon.values())) == len(lexicon)  # one word per English word
    velan_words = set(velan_lexicon().values())
    for ex in all_examples("english_to_velan"):
        for word in ex.target.rstrip(".").lower().split():
            assert word in velan_words or word.removesuffix("en") in velan_words, ex
        assert len(ex.target.split()) == len(
            [w for w in ex.inputs["sentence"].split() if w.lower() not in ("the", "a", "an")]
        )
    pairs = {ex.inputs["sentence"]: ex.target for ex in all_examples("english_to_velan")}
    other_seed = {
        ex.inputs["sentence"]: ex.target
        for t in suite(1)
        if t.name == "english_to_velan"
        for ex in t.test
    }
    shared = pairs.keys() & other_seed.keys()
    assert all(pairs[s] == other_seed[s] for s in shared)  # the lexicon ignores the suite seed


def test_sentence_splitter_keeps_initials_and_abbreviations():
    from mossa.tasks.texts import split_sentences

    text = "It was written by Arthur C. Clarke in the U.S. in 1968. It sold well! Did it? Yes."
    assert split_sentences(text) == [
        "It was written by Arthur C. Clarke in the U.S. in 1968.",
        "It sold well!",
        "Did it?",
        "Yes.",
    ]


def test_package_texts_are_cleaned():
    from mossa.tasks.texts import CATEGORY_LABELS, tweets, wiki_articles

    articles = wiki_articles()
    assert len(articles) > 8000
    assert [a.title for a in articles] == sorted(a.title for a in articles)
    assert {a.category for a in articles} == set(CATEGORY_LABELS.values())
    assert all("  " not in a.text and a.description for a in articles)
    texts = tweets()
    assert len(texts) > 20000
    assert {t.label for t in texts} == {"negative", "neutral", "positive"}
    assert not any("http" in t.text or not t.text.isascii() for t in texts)
    assert len({t.text.lower() for t in texts}) == len(texts)
