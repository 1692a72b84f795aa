"""Evaluation: metrics against hand-computed values, batched generation against a plain
one-prompt-at-a-time greedy loop, and a task score computed end to end."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from char_models import make_llama, make_tokenizer
from mossa.inference.generation import eval_prompts, evaluate_model, generate_answers
from mossa.inference.metrics import (
    accuracy,
    aggregate,
    bleu,
    example_scores,
    normalize_answer,
    rouge_l,
    score,
)
from mossa.models.text_limits import max_chars
from mossa.tasks import Example, Task, Template

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- metrics


def test_accuracy_normalises_case_punctuation_articles_spaces():
    assert normalize_answer("  The  Cat, sat! ") == "cat sat"
    assert accuracy(["The Cat!", "dog", "a  Bird."], ["cat", "Dog.", "bird"]) == 100.0
    assert accuracy(["yes", "no", "maybe"], ["yes", "yes", "maybe"]) == pytest.approx(200 / 3)
    assert accuracy(["theater"], ["the ater"]) == 0.0  # 'the' inside a word is kept


def test_rouge_l_hand_computed():
    # LCS "the cat on the mat" = 5 of 6 tokens each way: P = R = F = 5/6
    assert rouge_l(["the cat sat on the mat"], ["the cat is on the mat"]) == pytest.approx(
        100 * 5 / 6
    )
    # Porter stems: "running dogs" -> run dog; "the dog runs" -> the dog run; LCS = 1
    # P = 1/2, R = 1/3, F = 2PR/(P+R) = 0.4; the score is the mean over examples
    assert rouge_l(
        ["the cat sat on the mat", "running dogs"], ["the cat is on the mat", "the dog runs"]
    ) == pytest.approx(100 * (5 / 6 + 0.4) / 2)


def plain_corpus_bleu(hyps: list[str], refs: list[str]) -> float:
    """BLEU-4 from its definition (Papineni et al.): clipped n-gram precisions summed over
    the corpus, geometric mean, brevity penalty. No smoothing: all precisions must be > 0."""
    matches, totals = [0] * 4, [0] * 4
    hyp_len = ref_len = 0
    for h, r in zip(hyps, refs, strict=True):
        hw, rw = h.split(), r.split()
        hyp_len, ref_len = hyp_len + len(hw), ref_len + len(rw)
        for n in range(1, 5):
            hc = Counter(tuple(hw[i : i + n]) for i in range(len(hw) - n + 1))
            rc = Counter(tuple(rw[i : i + n]) for i in range(len(rw) - n + 1))
            matches[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            totals[n - 1] += max(len(hw) - n + 1, 0)
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(log_p)


def test_bleu_hand_computed():
    # one sentence: p1..p4 = 6/7, 5/6, 4/5, 3/4 and no brevity penalty: BLEU = (3/7)^(1/4)
    assert bleu(["the cat sat on the mat today"], ["the cat sat on the mat"]) == pytest.approx(
        100 * (3 / 7) ** 0.25, abs=1e-9
    )
    hyps = ["the cat sat on the mat", "a quick brown dog jumps over it"]
    refs = ["the cat sat on a red mat", "the quick brown dog jumps over the fence"]
    expected = plain_corpus_bleu(hyps, refs)  # shorter than the references: brevity penalty
    assert expected < 60
    assert bleu(hyps, refs) == pytest.approx(expected, abs=1e-9)


def test_per_example_scores_aggregate_to_the_metric_on_any_subset():
    hyps = ["the cat sat on the mat", "a quick brown dog jumps over it", "hello world there"]
    refs = ["the cat sat on a red mat", "the quick brown dog jumps over the fence", "hello world"]
    stats = example_scores("bleu", hyps, refs)
    # a resample (with a repeat) scored from summed statistics equals BLEU of that corpus
    pick = [1, 1, 0]
    assert aggregate("bleu", [stats[i] for i in pick]) == pytest.approx(
        plain_corpus_bleu([hyps[i] for i in pick], [refs[i] for i in pick]), abs=1e-9
    )
    assert example_scores("accuracy", ["The cat.", "dog"], ["cat", "cat"]) == [1, 0]
    assert aggregate("rouge_l", example_scores("rouge_l", hyps, refs)) == pytest.approx(
        rouge_l(hyps, refs)
    )


def test_score_dispatch_and_errors():
    assert score("accuracy", ["a"], ["a"]) == 100.0
    with pytest.raises(ValueError, match="metric 'f1' unknown"):
        score("f1", ["a"], ["a"])
    with pytest.raises(ValueError, match="got 1 predictions for 2 references"):
        accuracy(["a"], ["a", "b"])


# ----------------------------------------------------------------------------- generation


def plain_greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """One prompt, no padding, argmax token by token with a full forward each time."""
    ids = tokenizer(prompt)["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(torch.tensor([ids + new])).logits[0, -1]
            token = int(logits.argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True).strip()


PROMPTS = ["a", "what is 2 plus 2?", "bc:", "the quick brown fox jumps", "q", "hello there"]


def test_batched_left_padded_generation_equals_plain_greedy():
    model, tok = make_llama().eval(), make_tokenizer()
    got = generate_answers(model, tok, PROMPTS, max_new_tokens=6, batch_size=4)
    expected = [plain_greedy(model, tok, p, 6) for p in PROMPTS]
    assert got == expected
    assert len(set(expected)) > 1  # the random model does not answer everything alike


def test_a_huge_prompt_is_cut_before_tokenising():
    model, tok = make_llama().eval(), make_tokenizer()
    seen = []

    class Spy:  # the tokenizer, recording what it is asked to tokenise
        def __call__(self, texts, **kwargs):
            seen.extend(texts)
            return tok(texts, **kwargs)

        def __getattr__(self, name):
            return getattr(tok, name)

    tail = "the quick brown fox jumps over the lazy dog"  # longer than the 20-token budget
    kwargs = {"max_new_tokens": 4, "batch_size": 2, "max_length": 24}
    got = generate_answers(model, Spy(), ["abc " * 1_250_000 + tail, "q"], **kwargs)
    assert max(len(t) for t in seen) <= max_chars(20)
    assert got == generate_answers(model, tok, [tail, "q"], **kwargs)


def test_evaluate_model_scores_the_task_metric():
    model, tok = make_llama().eval(), make_tokenizer()
    inputs = ["a", "bc", "hello", "q", "xyz", "the fox"]
    answers = [plain_greedy(model, tok, f"{x}:", 4) for x in inputs]
    # half the references are the model's own answer, half are something else
    targets = [a if i % 2 == 0 else "zzzz" for i, a in enumerate(answers)]
    examples = [Example({"x": x}, t) for x, t in zip(inputs, targets, strict=True)]
    task = Task(
        name="echo",
        cluster="summarization",
        seen=True,
        templates=(Template("{x}:"),),
        train=tuple(examples),
        validation=tuple(examples),
        test=tuple(examples),
        metric="accuracy",
        source="test",
    )
    prompts, refs = eval_prompts(task, 6, seed=0)
    assert prompts == [f"{x}:" for x in inputs] and refs == targets
    acc = evaluate_model(model, tok, task, max_examples=6, max_new_tokens=4, batch_size=4)
    assert acc.score == pytest.approx(100 * 3 / 6)
    assert acc.examples == [1, 0, 1, 0, 1, 0] and acc.n == 6  # per example, in test order
    acc4 = evaluate_model(model, tok, task, max_examples=4, max_new_tokens=4, batch_size=3)
    assert acc4.score == pytest.approx(100 * 2 / 4) and acc4.n == 4
