"""Byte-level BPE tokenizers for the models mossa builds itself (HF ``tokenizers``).

Byte-level means every string is encodable (no unknown token): the base alphabet is the
256 bytes, and BPE merges learned from a corpus add longer pieces on top. With no corpus
the tokenizer keeps one token per byte, which is what the random test presets use.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def byte_level_bpe(
    specials: list[str],
    texts: Iterable[str] | None = None,
    *,
    vocab_size: int | None = None,
    min_frequency: int = 2,
) -> Tokenizer:
    """A byte-level BPE tokenizer whose first ids are ``specials``.

    Parameters
    ----------
    specials : special tokens, given ids 0, 1, ... in this order.
    texts : training corpus; None gives a merge-free tokenizer (one token per byte).
    vocab_size : total vocabulary size when training (specials + 256 bytes + merges).
    min_frequency : a pair must occur this often to become a merge.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    if texts is None:
        vocab = {token: i for i, token in enumerate(specials + alphabet)}
        tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        tokenizer.add_special_tokens(specials)
    else:
        if vocab_size is None or vocab_size < len(specials) + len(alphabet):
            raise ValueError(
                f"vocab_size must be at least {len(specials) + len(alphabet)} "
                f"(specials + 256 bytes), got {vocab_size}"
            )
        tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    if texts is not None:
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=alphabet,
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def prepend_bos(tokenizer: Tokenizer, bos: str = BOS) -> None:
    """Make encodings start with ``bos`` (as Llama tokenizers do), in place."""
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A",
        pair=f"{bos} $A {bos} $B",
        special_tokens=[(bos, tokenizer.token_to_id(bos))],
    )


def to_transformers(
    tokenizer: Tokenizer,
    *,
    model_max_length: int,
    bos: str | None,
    eos: str,
    pad: str | None,
) -> PreTrainedTokenizerFast:
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer, left-padded."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        model_max_length=model_max_length,
        padding_side="left",
    )
