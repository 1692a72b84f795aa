"""Tokenised training examples, batches, and the target-only loss.

The loss reference is the plain transformers path: ``model(input_ids, labels=...).loss``
with full logits at every position.
"""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch

import mossa.training.data as data
from mossa.config import TrainingConfig
from mossa.models import load_base
from mossa.models.lm import truncate_prompt
from mossa.models.text_limits import clip_prompt, clip_target, max_chars
from mossa.training.data import IGNORE_INDEX, batch_order, collate, encode_items
from mossa.training.lora import attach_lora, linear_module_names
from mossa.training.loss import target_only_loss

pytestmark = pytest.mark.usefixtures("one_thread")

Item = namedtuple("Item", "prompt target")


def make_llama():
    """Random 4-layer Llama with a byte-level tokenizer that prepends BOS."""
    return load_base("random:llama-tiny")


def make_gemma3():
    """Random Gemma 3 (tied, scaled embeddings, sliding window) with final logit
    soft-capping switched on and logits large enough for the cap to bite."""
    model, tok = load_base("random:gemma3-tiny")
    model.config.final_logit_softcapping = 3.0
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20)
    return model, tok


ITEMS = [
    Item("what is 2 plus 2?", " 4"),
    Item("spell cat:", " c a t"),
    Item("a", " b"),
    Item("the quick brown fox jumps over the lazy dog. repeat the last word:", " dog"),
]


def test_encode_appends_eos_and_masks_prompt():
    _, tok = make_llama()
    enc = encode_items(ITEMS, tok, max_length=128)
    for item, e in zip(ITEMS, enc, strict=True):
        prompt = tok(item.prompt)["input_ids"]
        target = tok(item.target, add_special_tokens=False)["input_ids"]
        assert list(e.ids) == prompt + target + [tok.eos_token_id]
        assert e.n_prompt == len(prompt)
    batch = collate(enc, pad_id=tok.pad_token_id)
    for row, e in enumerate(enc):
        labels = batch["labels"][row].tolist()
        assert labels[: e.n_prompt] == [IGNORE_INDEX] * e.n_prompt
        assert labels[e.n_prompt : len(e)] == list(e.ids[e.n_prompt :])
        assert labels[len(e) :] == [IGNORE_INDEX] * (batch["labels"].shape[1] - len(e))
        assert batch["attention_mask"][row].sum() == len(e)


def bpe_tokenizer():
    """A byte-level BPE that has learnt ' positive' and 'ab' as single tokens."""
    from mossa.models.bpe import BOS, EOS, PAD, byte_level_bpe, prepend_bos, to_transformers

    corpus = ["Is it good? positive", "so positive, very positive", "ab ab abab"] * 20
    tok = byte_level_bpe([PAD, BOS, EOS], corpus, vocab_size=300)
    prepend_bos(tok)
    return to_transformers(tok, model_max_length=64, bos=BOS, eos=EOS, pad=PAD)


def test_target_is_tokenised_as_in_running_text():
    tok = bpe_tokenizer()
    eos = [tok.eos_token_id]
    glued, spaced = (
        tok(t, add_special_tokens=False)["input_ids"] for t in ("positive", " positive")
    )
    assert len(spaced) == 1 and glued != spaced  # the case the separator is for

    (e,) = encode_items([Item("Is it good?", "positive")], tok, max_length=64)
    assert list(e.ids[e.n_prompt :]) == spaced + eos
    assert list(e.ids[: e.n_prompt]) == tok("Is it good?")["input_ids"]
    # a prompt ending in whitespace, or a target starting with it, gets no separator
    (e,) = encode_items([Item("Is it good?\n", "positive")], tok, max_length=64)
    assert list(e.ids[e.n_prompt :]) == glued + eos
    (e,) = encode_items([Item("Is it good?", " positive")], tok, max_length=64)
    assert list(e.ids[e.n_prompt :]) == spaced + eos
    # "a" + "b" merges into one token jointly: the target is then tokenised alone
    (e,) = encode_items([Item("a", "b")], tok, max_length=64, separator="")
    assert (
        list(e.ids) == tok("a")["input_ids"] + tok("b", add_special_tokens=False)["input_ids"] + eos
    )


def test_long_prompt_truncated_from_the_left_keeping_bos():
    _, tok = make_llama()
    item = Item("abcdefghijklmnopqrstuvwxyz", " ok")
    (e,) = encode_items([item], tok, max_length=10)
    target = tok(" ok", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert len(e) == 10
    assert list(e.ids[-len(target) :]) == target
    kept = tok("abcdefghijklmnopqrstuvwxyz")["input_ids"]
    assert list(e.ids[: e.n_prompt]) == [tok.bos_token_id] + kept[-(10 - len(target) - 1) :]
    assert list(e.ids[1 : e.n_prompt]) == tok("vwxyz", add_special_tokens=False)["input_ids"]
    assert truncate_prompt([5, 6, 7], 2, bos_id=None) == [6, 7]


class SpyTokenizer:
    """A tokenizer that records every text it is asked to tokenise."""

    def __init__(self, tokenizer):
        self.tokenizer, self.texts = tokenizer, []

    def __call__(self, texts, **kwargs):
        self.texts += [texts] if isinstance(texts, str) else list(texts)
        return self.tokenizer(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_clip_keeps_the_end_of_a_prompt_and_the_start_of_a_target():
    text = "".join(chr(ord("a") + i % 26) for i in range(10_000))
    n = max_chars(5)
    assert clip_prompt(text, 5) == text[-n:] and clip_target(text, 5) == text[:n]
    assert clip_prompt("short", 5) == "short" == clip_target("short", 5)


def test_normal_examples_reach_the_tokenizer_whole():
    spy = SpyTokenizer(bpe_tokenizer())
    items = [Item("Is it good?", "positive"), Item("ab ab abab", " ab")]
    encode_items(items, spy, max_length=64)
    assert spy.texts == [
        "Is it good?", "ab ab abab",  # prompts
        "Is it good? positive", "ab ab abab ab",  # prompt + answer
        " positive", " ab",  # answers alone
    ]  # fmt: skip


def repeated(text: str, n: int) -> str:
    """``text`` repeated to ``n`` characters or more: fields that differ only in length."""
    return text * (n // len(text) + 1)


def test_huge_fields_are_cut_before_tokenising(monkeypatch):
    tok, max_length = bpe_tokenizer(), 24
    tail = "the quick brown fox jumps over the lazy dog. repeat the last word:"
    head, answer = "so positive, very positive. ", " positive"

    def items(n: int) -> list:  # a prompt with an n-character head, an n-character target
        return [Item(repeated(head, n) + tail, " dog"), Item("Is it good?", repeated(answer, n))]

    spy = SpyTokenizer(tok)
    huge = encode_items(items(5_000_000), spy, max_length)
    assert max(len(t) for t in spy.texts) <= 2 * max_chars(max_length)
    # the same as the full tokenisation truncated (shown on 20k characters: affordable)
    medium = encode_items(items(20_000), tok, max_length)
    monkeypatch.setattr(data, "clip_prompt", lambda text, n: text)
    monkeypatch.setattr(data, "clip_target", lambda text, n: text)
    assert huge == medium == encode_items(items(20_000), tok, max_length)
    assert len(huge[0]) == len(huge[1]) == max_length


def test_batch_order_is_a_seeded_partition():
    lengths = [(i * 7) % 23 + 1 for i in range(100)]
    a = batch_order(lengths, 8, seed=3, epoch=0)
    assert sorted(i for b in a for i in b) == list(range(100))
    assert all(len(b) <= 8 for b in a) and len(a) == 13
    assert a == batch_order(lengths, 8, seed=3, epoch=0)
    assert a != batch_order(lengths, 8, seed=3, epoch=1)
    # within a bucket, batches hold examples of similar length: less padding than random
    pad = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in a)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(100, generator=g).tolist()
    rand = [perm[i : i + 8] for i in range(0, 100, 8)]
    pad_rand = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in rand)
    assert pad < pad_rand


@pytest.mark.parametrize("make_model", [make_llama, make_gemma3], ids=["llama", "gemma3-softcap"])
def test_target_only_loss_equals_full_logit_loss(make_model):
    model, tok = make_model()
    batch = collate(encode_items(ITEMS, tok, 128), pad_id=tok.pad_token_id)
    reference = model(**batch).loss  # full [B, T, V] logits, transformers' own shift and mean
    mine = target_only_loss(model, **batch)
    assert torch.allclose(mine, reference, atol=1e-5, rtol=0), (mine, reference)
    # gradients agree too (through LoRA weights once wrapped)
    peft = attach_lora(make_model()[0], TrainingConfig(target_modules=["q_proj", "v_proj"]), seed=0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    target_only_loss(peft, **batch).backward()
    g_mine = {n: p.grad.clone() for n, p in peft.named_parameters() if p.requires_grad}
    peft.zero_grad()
    peft(**batch).loss.backward()
    for n, p in peft.named_parameters():
        if p.requires_grad:
            assert torch.allclose(g_mine[n], p.grad, atol=1e-6, rtol=1e-4), n


def test_softcap_matters_for_gemma3():
    """The gemma3 case above would pass trivially if capping changed nothing."""
    model, tok = make_gemma3()
    batch = collate(encode_items(ITEMS, tok, 128), pad_id=tok.pad_token_id)
    with torch.no_grad():
        capped = model(**batch).loss
    model.config.final_logit_softcapping = None
    with torch.no_grad():
        assert abs(float(model(**batch).loss) - float(capped)) > 1e-2


def test_lora_on_missing_module_lists_available():
    with pytest.raises(ValueError, match=r"\['w_nope'\] not found.*q_proj.*v_proj"):
        attach_lora(make_llama()[0], TrainingConfig(target_modules=["q_proj", "w_nope"]), seed=0)
    names = linear_module_names(make_llama()[0])
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "lm_head"} <= set(names)
