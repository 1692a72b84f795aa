"""A character-level tokenizer and a random 2-layer Llama over it, for the training and
evaluation tests: every character is one token, so prompts and targets are easy to reason
about, and the model is small enough to train in a second."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHARS = "abcdefghijklmnopqrstuvwxyz .,?!:0123456789"


def make_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character of CHARS, a BOS in front, left padding."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({c: i + 4 for i, c in enumerate(CHARS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
    )


def make_llama(seed: int = 0, tied: bool = False) -> LlamaForCausalLM:
    """Random 2-layer Llama (``tied``: lm_head shares the input embeddings). The wide init
    moves logits quickly under LoRA on q/v and gives clear argmax margins, so greedy paths
    do not hinge on rounding."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(CHARS) + 4,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        initializer_range=0.2,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(config)
