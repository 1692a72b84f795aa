"""Hidden states of the analysis prompts, for the base model, the SFT model and the controls.

One forward pass of the decoder body per batch gives every layer's hidden states
(``output_hidden_states=True``): index 0 is the embedding output, index l the output of
block l. mossa keeps transformers' convention for the last entry: for Llama, Gemma,
GPT-2 and most decoder-only models transformers applies the final norm to it (it equals
``last_hidden_state``), while layers 0..L-1 are un-normalised residual-stream states.
The same convention holds for every model compared, and each manifest records it.

The language-model head is never run: no logits, no generation, no KV cache. Prompts
are sorted by token length so that each batch pads little; padding is on the left and
position ids count real tokens only, so a prompt's states do not depend on its batch.
The base model is loaded once; the SFT adapter and the per-task controls are loaded into
a single PeftModel and switched in place.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mossa.config import RunConfig
from mossa.integrity import verify_checksums
from mossa.models.text_limits import clip_prompt
from mossa.store import ActivationStore, prompt_hash

POOLINGS = ("last", "mean")
MAX_PADDING = 0.25  # a batch holds at most this many pad tokens per real token
LAYER_CONVENTION = (
    "0 = embedding output; l = output of block l as transformers' hidden_states gives it "
    "(the last entry has the model's final norm applied where transformers does so)"
)


# ----------------------------------------------------------------------------- model parts


def decoder_body(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer body of a causal LM (or of a PeftModel wrapping one), without lm_head.

    LoRA layers live inside the body's modules, so the body of a PeftModel runs the
    active adapter.
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.get_base_model()
    if not hasattr(model, "get_decoder"):
        raise ValueError(f"expected a transformers causal LM, got {type(model).__name__}")
    return model.get_decoder()


def _text_config(model: torch.nn.Module):
    return model.config.get_text_config()


def model_shape(model: torch.nn.Module) -> tuple[int, int]:
    """(layers + 1, hidden size) of the states :func:`extract_hidden_states` returns."""
    from mossa.models import num_layers

    return num_layers(model) + 1, int(_text_config(model).hidden_size)


def context_limit(model: torch.nn.Module, max_length: int | None = None) -> int | None:
    """Longest prompt in tokens: ``max_length`` capped by the model's position limit."""
    max_positions = getattr(_text_config(model), "max_position_embeddings", None)
    limits = [v for v in (max_length, max_positions) if v is not None]
    return min(limits) if limits else None


# ----------------------------------------------------------------------------- tokens


def encode_prompts(tokenizer, prompts: list[str], *, max_length: int | None) -> tuple[list, int]:
    """Token ids of each prompt (with the tokenizer's special tokens), left-truncated.

    Prompts are first cut to the characters ``max_length`` tokens can use
    (:func:`mossa.models.text_limits.clip_prompt`), so a huge prompt is never tokenised whole.

    Returns
    -------
    ids : list of list of int
        One id list per prompt, in prompt order, none longer than ``max_length``.
    n_truncated : int
        How many prompts were longer than ``max_length`` and lost tokens on the left
        (special tokens such as BOS are kept by the tokenizer).
    """
    if max_length is None:
        return tokenizer(list(prompts), add_special_tokens=True, verbose=False)["input_ids"], 0
    # cut characters first: tokenising a huge prompt in full costs memory and time
    clipped = [clip_prompt(p, max_length) for p in prompts]
    cut_chars = {i for i, (p, c) in enumerate(zip(prompts, clipped, strict=True)) if p != c}
    prompts = clipped
    ids = tokenizer(prompts, add_special_tokens=True, verbose=False)["input_ids"]
    long = [i for i, row in enumerate(ids) if len(row) > max_length]
    if long:
        side = tokenizer.truncation_side
        tokenizer.truncation_side = "left"
        try:
            cut = tokenizer(
                [prompts[i] for i in long],
                add_special_tokens=True,
                truncation=True,
                max_length=max_length,
            )["input_ids"]
        finally:
            tokenizer.truncation_side = side
        for i, row in zip(long, cut, strict=True):
            ids[i] = row
    return ids, len(cut_chars | set(long))


def _check_prompts(prompts) -> list[str]:
    if isinstance(prompts, str) or not isinstance(prompts, list | tuple):
        raise ValueError(f"prompts must be a list of str, got {type(prompts).__name__}")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p:
            raise ValueError(f"prompts[{i}] must be a non-empty str, got {p!r}")
    return list(prompts)


def _check_options(batch_size: int, pooling: str) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def _warn_truncated(n_truncated: int, n_total: int, limit: int | None, where: str) -> None:
    if n_truncated:
        warnings.warn(
            f"{n_truncated} of {n_total} prompts{where} are longer than {limit} tokens and "
            "were truncated from the left",
            UserWarning,
            stacklevel=3,
        )


# ----------------------------------------------------------------------------- forward


def _group(order: list[int], lengths: list[int], batch_size: int) -> list[list[int]]:
    """Consecutive groups of ``order`` (longest first), each at most ``batch_size`` long.

    A group also ends before a prompt that would make its padding exceed
    ``MAX_PADDING`` times its real tokens, so mixed lengths do not waste compute on pads.
    """
    groups, group, real = [], [], 0
    for i in order:
        if group:
            width = lengths[group[0]]
            too_padded = (len(group) + 1) * width > (1 + MAX_PADDING) * (real + lengths[i])
            if len(group) == batch_size or too_padded:
                groups.append(group)
                group, real = [], 0
        group.append(i)
        real += lengths[i]
    return [*groups, group] if group else groups


def length_sorted_batches(ids: list[list[int]], batch_size: int, pad_id: int):
    """Batches of prompts sorted by length (longest first), padded on the left.

    Yields
    ------
    rows : list of int
        Indices into ``ids`` of the batch's prompts (at most ``batch_size``).
    batch : dict of torch.Tensor, each of shape (len(rows), longest)
        ``input_ids``, ``attention_mask`` and ``position_ids`` (counting real tokens
        only, so a left-padded prompt sees the positions it would see alone).
    """
    lengths = [len(row) for row in ids]
    order = sorted(range(len(ids)), key=lambda i: (-lengths[i], i))
    for rows in _group(order, lengths, batch_size):
        width = lengths[rows[0]]
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, i in enumerate(rows):
            input_ids[b, width - lengths[i] :] = torch.tensor(ids[i], dtype=torch.long)
            mask[b, width - lengths[i] :] = 1
        position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
        yield rows, {"input_ids": input_ids, "attention_mask": mask, "position_ids": position_ids}


def _pool(hidden_states, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[L+1, B, d] from L+1 tensors [B, T, d]; pads never enter (torch.where, not products)."""
    if pooling == "last":
        return torch.stack([h[:, -1, :] for h in hidden_states]).float()
    keep = mask.bool().unsqueeze(-1)
    counts = mask.sum(dim=1, keepdim=True).to(torch.float32)
    return torch.stack(
        [torch.where(keep, h.float(), 0.0).sum(dim=1) / counts for h in hidden_states]
    )


def states_from_ids(
    model: torch.nn.Module,
    ids: list[list[int]],
    *,
    pad_id: int,
    batch_size: int = 32,
    pooling: str = "last",
    desc: str = "",
) -> torch.Tensor:
    """Pooled hidden states of pre-tokenised prompts; see :func:`extract_hidden_states`.

    Returns
    -------
    torch.Tensor of shape (layers + 1, n, d), float32, rows in the order of ``ids``.
    """
    _check_options(batch_size, pooling)
    if not ids:
        raise ValueError("no prompts to extract")
    empty = next((i for i, row in enumerate(ids) if not row), None)
    if empty is not None:
        raise ValueError(f"prompt {empty} has no tokens")
    body = decoder_body(model)
    device = next(body.parameters()).device
    n_layers, d = model_shape(model)
    out = torch.empty((n_layers, len(ids), d), dtype=torch.float32)
    batches = length_sorted_batches(ids, batch_size, pad_id)
    with torch.inference_mode():
        for rows, batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=not desc):
            batch = {k: v.to(device) for k, v in batch.items()}
            result = body(**batch, output_hidden_states=True, use_cache=False)
            pooled = _pool(result.hidden_states, batch["attention_mask"], pooling)
            if pooled.shape != (n_layers, len(rows), d):
                raise ValueError(
                    f"{type(body).__name__} returned hidden states of shape "
                    f"{tuple(pooled.shape)}, expected {(n_layers, len(rows), d)}"
                )
            out[:, torch.tensor(rows), :] = pooled.cpu()
    return out


def _pad_id(tokenizer) -> int:
    for tok_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tok_id is not None:
            return int(tok_id)
    return 0  # any id works: padded positions are masked out and never pooled


def extract_hidden_states(
    model: torch.nn.Module,
    tokenizer,
    prompts: list[str],
    *,
    batch_size: int = 32,
    pooling: str = "last",
    max_length: int | None = None,
    desc: str = "",
) -> torch.Tensor:
    """Hidden states of the prompts at every layer, pooled over each prompt.

    Parameters
    ----------
    model : transformers causal LM or peft.PeftModel
        Run in inference mode; only its decoder body is called (no lm_head).
    tokenizer : transformers tokenizer
        Adds the model's special tokens (e.g. BOS); padding is done here, on the left.
    prompts : list of str, length n
    batch_size : int
        Prompts per forward pass (after sorting by length).
    pooling : {"last", "mean"}
        ``"last"``: state at the last prompt token; ``"mean"``: mean over the prompt's
        tokens (all non-pad tokens, special tokens included).
    max_length : int, optional
        Longest prompt in tokens (capped by the model's position limit). Longer prompts
        are truncated from the left, with one warning counting them.
    desc : str
        Label of a progress bar over batches (no bar when empty).

    Returns
    -------
    torch.Tensor of shape (layers + 1, n, d), float32
        Layer 0 = embeddings, layer l = block l (see the module docstring for the final
        norm); rows in the original prompt order.
    """
    prompts = _check_prompts(prompts)
    _check_options(batch_size, pooling)
    limit = context_limit(model, max_length)
    ids, n_truncated = encode_prompts(tokenizer, prompts, max_length=limit)
    _warn_truncated(n_truncated, len(prompts), limit, f" ({desc})" if desc else "")
    return states_from_ids(
        model, ids, pad_id=_pad_id(tokenizer), batch_size=batch_size, pooling=pooling, desc=desc
    )


# ----------------------------------------------------------------------------- run stage


def _adapter_sha256(adapter_dir: Path) -> str:
    """Identity of an adapter's weights and config, after checking them against the
    checksums its training wrote (a damaged adapter is never run)."""
    weights = adapter_dir / "adapter_model.safetensors"
    config = adapter_dir / "adapter_config.json"
    for f in (weights, config):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing: run the training stage first (mossa run)")
    verify_checksums(adapter_dir, stage="train", run_dir=adapter_dir.parent.parent)
    digest = hashlib.sha256()
    for f in (config, weights):
        digest.update(f.read_bytes())
    return digest.hexdigest()


def plan_jobs(tasks: list[dict], *, controls: str, cross_task: bool) -> list[tuple]:
    """(adapter, store model, task) triples, grouped by adapter: base, sft, then controls.

    ``adapter`` is None for the base model, ``"sft"`` or ``"control__<task>"``. A task's
    own control is stored as model ``"control"``; with ``cross_task`` every control is
    also run on every other task and stored as ``"control__<its task>"``. With
    ``controls == "seen"`` only seen tasks have a control.
    """
    names = [t["name"] for t in tasks]
    jobs = [(None, "base", t) for t in names] + [("sft", "sft", t) for t in names]
    for t in tasks:
        if controls == "seen" and not t.get("seen", True):
            continue
        adapter = f"control__{t['name']}"
        jobs.append((adapter, "control", t["name"]))
        if cross_task:
            jobs.extend((adapter, adapter, other) for other in names if other != t["name"])
    return jobs


_CHECKED_BEFORE_LOAD = ("prompt_hashes", "base", "adapter", "adapter_sha256", "pooling", "dtype")
_CHECKED_AFTER_LOAD = ("layers", "d", "context_length")


def _matching_entries(
    store: ActivationStore,
    expected: dict,
    keys: tuple[str, ...],
    *,
    force: bool,
    verify: bool = False,
) -> set:
    """Entries present in the store whose manifest agrees with ``expected`` on ``keys``.

    A present entry that disagrees raises ValueError naming its manifest, unless
    ``force``: then it is left out (to be recomputed). With ``verify``, an entry whose
    tensor is damaged is left out too (with a warning), whatever ``force`` says.
    """
    keep = set()
    for (model, task), want in expected.items():
        if not store.has(model, task):
            continue
        have = store.manifest(model, task)
        bad = next((k for k in keys if have.get(k) != want[k]), None)
        if bad is None and verify and not store.intact(model, task):
            warnings.warn(
                f"{store.path(model, task)} is damaged (unreadable, or values that do not "
                "match its checksum): recomputing it",
                UserWarning,
                stacklevel=2,
            )
        elif bad is None:
            keep.add((model, task))
        elif not force:
            why = (
                "its prompts differ from RUN/tasks/analysis_prompts.jsonl"
                if bad == "prompt_hashes"
                else f"{bad} is {have.get(bad)!r} but this run has {want[bad]!r}"
            )
            raise ValueError(
                f"{store.manifest_path(model, task)} does not match this run: {why}; "
                "re-run with --force to recompute it"
            )
    return keep


def _load_base(cfg: RunConfig):
    from mossa.models import load_base

    return load_base(cfg.model.base, trust_remote_code=cfg.model.trust_remote_code)


class _AdapterSlot:
    """The base model with at most one LoRA adapter active, switched in place.

    The first adapter wraps the base in a PeftModel; later ones are loaded into the same
    PeftModel, made active, and the previous one is deleted, so the base is never
    reloaded and at most two adapters are in memory at once.
    """

    def __init__(self, base: torch.nn.Module):
        self.base = base
        self.peft = None
        self.active: str | None = None

    def use(self, adapter: str, path: Path) -> torch.nn.Module:
        """The model with ``adapter`` (a PEFT adapter directory at ``path``) active."""
        if adapter == self.active:
            return self.peft
        if self.peft is None:
            from peft import PeftModel

            from mossa.training.lora import quiet_peft

            with quiet_peft():
                self.peft = PeftModel.from_pretrained(
                    self.base, str(path), adapter_name=adapter, is_trainable=False
                )
        else:
            self.peft.load_adapter(str(path), adapter_name=adapter, is_trainable=False)
            self.peft.set_adapter(adapter)
            self.peft.delete_adapter(self.active)
        self.peft.eval()
        self.active = adapter
        return self.peft


def _expected_manifests(cfg: RunConfig, jobs: list, prompts: dict, adapter_dirs: dict) -> dict:
    """Manifest fields each (model, task) entry must have to belong to this run."""
    adapter_hashes = {a: _adapter_sha256(d) for a, d in adapter_dirs.items()}
    task_hashes = {t: [prompt_hash(p) for p in prompts[t]] for _, _, t in jobs}
    return {
        (model, task): {
            "prompt_hashes": task_hashes[task],
            "base": cfg.model.base,
            "adapter": adapter,
            "adapter_sha256": adapter_hashes.get(adapter),
            "pooling": cfg.extraction.pooling,
            "dtype": cfg.extraction.dtype,
        }
        for adapter, model, task in jobs
    }


def _encode_tasks(tokenizer, prompts: dict, tasks: list[str], limit: int | None):
    """Token ids and truncation counts per task, with one warning for all of them."""
    encoded, truncated = {}, {}
    for task in tasks:
        encoded[task], truncated[task] = encode_prompts(tokenizer, prompts[task], max_length=limit)
    per_task = ", ".join(f"{t}: {k}" for t, k in truncated.items() if k)
    _warn_truncated(
        sum(truncated.values()),
        sum(len(prompts[t]) for t in tasks),
        limit,
        f" of the analysis set ({per_task})",
    )
    return encoded, truncated


def run_extraction(run_dir: Path, cfg: RunConfig, *, force: bool = False) -> None:
    """The extract stage: hidden states of every task's analysis prompts into RUN/activations.

    Finished (model, task) entries whose manifest matches this run are skipped, so an
    interrupted run resumes. An entry that does not match (other prompts, base model,
    adapter weights, pooling, dtype, layers, hidden size or context length) is refused
    with a ValueError naming its manifest, unless ``force`` is set: then it is recomputed.
    The base model is loaded only when something is left to compute.
    """
    from mossa.task_stage import read_analysis_prompts, read_tasks

    run_dir = Path(run_dir)
    store = ActivationStore(run_dir / "activations")
    store.remove_temp_files()
    prompts = read_analysis_prompts(run_dir)
    tasks = read_tasks(run_dir, required=("name",))
    for t in tasks:
        if not prompts.get(t["name"]):
            raise ValueError(f"task {t['name']!r} has no analysis prompts in {run_dir / 'tasks'}")
    jobs = plan_jobs(tasks, controls=cfg.training.controls, cross_task=cfg.extraction.cross_task)
    adapter_dirs = {a: run_dir / "adapters" / a for a, _, _ in jobs if a is not None}
    expected = _expected_manifests(cfg, jobs, prompts, adapter_dirs)
    done = _matching_entries(store, expected, _CHECKED_BEFORE_LOAD, force=force, verify=True)
    if len(done) == len(jobs):
        return

    model, tokenizer = _load_base(cfg)
    n_layers, d = model_shape(model)
    limit = context_limit(model, cfg.model.max_length)
    for want in expected.values():
        want.update(layers=n_layers, d=d, context_length=limit)
    done &= _matching_entries(store, expected, _CHECKED_AFTER_LOAD, force=force)
    pending = [(a, m, t) for a, m, t in jobs if (m, t) not in done]
    encoded, truncated = _encode_tasks(tokenizer, prompts, sorted({t for *_, t in pending}), limit)

    slot = _AdapterSlot(model)
    bar = tqdm(pending, desc="extract", unit="file")
    for adapter, name, task in bar:
        bar.set_postfix_str(f"{name}/{task}")
        # plan_jobs puts the base first, so its states come from the model before any
        # LoRA layer is injected into it (PeftModel.from_pretrained modifies it in place).
        hidden = states_from_ids(
            model if adapter is None else slot.use(adapter, adapter_dirs[adapter]),
            encoded[task],
            pad_id=_pad_id(tokenizer),
            batch_size=cfg.extraction.batch_size,
            pooling=cfg.extraction.pooling,
        )
        meta = dict(expected[(name, task)], n_truncated=truncated[task])
        meta["layer_convention"] = LAYER_CONVENTION
        store.save(name, task, hidden, prompts=prompts[task], meta=meta)
    bar.close()
