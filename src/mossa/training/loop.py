"""The LoRA training loop: batch, forward, backward, step, log, evaluate, checkpoint.

One call trains one adapter. While it runs, a work directory next to the output holds
the per-step CSV log and the latest checkpoint (adapter weights and the best ones so far
as safetensors; optimizer, scheduler and torch RNG state; step, data position, early
stopping state, numpy and python RNG states and a fingerprint of the settings). Calling
again with the same arguments after a kill resumes from that checkpoint and ends with
the same adapter as an uninterrupted run. The finished adapter (the weights with the
best validation loss) is written to a temporary directory and renamed into place, so an
existing output directory always holds a complete adapter. With ``snapshot_every`` the
adapter as it is at every K-th step (and the last) is kept too, in ``snapshots/step-<N>``
of the output (the analysis over training reads them). A NaN or infinite training or
validation loss stops the job with a ValueError naming it and the step; nothing is
published then.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from mossa.config import TrainingConfig
from mossa.io import CHECKSUM_FILE, checksums_match, verify_checksums, write_checksums
from mossa.models.device import autocast, model_device
from mossa.models.lm import pad_id
from mossa.run_dir import SNAPSHOTS, snapshot_steps
from mossa.training.data import batch_order, collate, encode_items
from mossa.training.data_parallel import DataParallel, target_tokens
from mossa.training.lora import attach_lora, check_target_modules, save_adapter
from mossa.training.loss import target_only_loss

LOG_FIELDS = ("step", "loss", "lr", "tokens", "tokens_per_s", "val_loss")
SNAPSHOT_FILES = ("adapter_model.safetensors", "adapter_config.json")
ADAPTER_FILES = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "train_log.csv",
    "training.json",
)


@dataclass
class LoopState:
    """Everything besides tensors that a checkpoint must restore."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # batches of the current epoch already consumed
    best_val: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    stopped_early: bool = False


def adapter_complete(path: Path) -> bool:
    """True when ``path`` holds a finished adapter (written atomically by :func:`train_lora`)
    whose files still match the checksums written when it was published."""
    path = Path(path)
    return all((path / name).is_file() for name in ADAPTER_FILES) and checksums_match(path)


def check_adapter(path: Path, run_dir: Path) -> None:
    """Raise when ``path`` is not a finished adapter: CorruptRunFile naming a damaged file
    (and the command that retrains it), else ValueError saying it was never trained."""
    path = Path(path)
    if adapter_complete(path):
        return
    if (path / CHECKSUM_FILE).is_file():
        verify_checksums(path, stage="train", run_dir=run_dir)
    raise ValueError(
        f"{path}: no finished adapter; run the training stage first (mossa run --out {run_dir})"
    )


def validate_training_inputs(
    train_items: Sequence, *, steps: int, training: TrainingConfig, max_length: int, name: str
) -> None:
    """Raise ValueError for settings that cannot train, before any model work starts."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{name}: steps must be a positive integer, got {steps!r}")
    if not training.lr > 0:
        raise ValueError(f"{name}: training.lr must be > 0, got {training.lr}")
    if max_length < 2:
        raise ValueError(f"{name}: model.max_length must be >= 2, got {max_length}")
    if len(train_items) == 0:
        raise ValueError(f"{name}: no training examples")


def _fingerprint(
    training: TrainingConfig, steps: int, seed: int, max_length: int, n: int, dtype: torch.dtype
) -> str:
    data = {"training": training.model_dump(mode="json"), "steps": steps, "seed": seed}
    data |= {"max_length": max_length, "n_train": n}
    if dtype != torch.float32:  # float32 keeps the fingerprint of checkpoints written before
        data["dtype"] = str(dtype)
    return json.dumps(data, sort_keys=True)


def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone().contiguous() for n, p in _trainable(model).items()}


def _load_weights(model, weights: dict[str, torch.Tensor]) -> None:
    params = _trainable(model)
    if set(params) != set(weights):
        raise ValueError("checkpoint adapter weights do not match the model's LoRA parameters")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name])


def _rng_state() -> dict:
    np_state = np.random.get_state(legacy=False)
    np_state["state"]["key"] = np_state["state"]["key"].tolist()
    version, internal, gauss = random.getstate()
    return {"numpy": np_state, "python": [version, list(internal), gauss]}


def _set_rng_state(state: dict, torch_rng: torch.Tensor) -> None:
    np_state = state["numpy"]
    np_state["state"]["key"] = np.asarray(np_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(np_state)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch_rng)


def _checkpoint_dirs(work_dir: Path) -> list[Path]:
    return sorted(work_dir.glob("ckpt-*"))


def save_checkpoint(
    work_dir: Path, model, best: dict, optimizer, scheduler, state: LoopState, fingerprint: str
) -> Path:
    """Write ``work_dir/ckpt-<step>`` atomically and drop older checkpoints."""
    tmp = work_dir / ".ckpt-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_snapshot(model), tmp / "adapter.safetensors")
    save_file(best, tmp / "best_adapter.safetensors")
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        },
        tmp / "optimizer.pt",
    )
    meta = {"state": asdict(state), "rng": _rng_state(), "fingerprint": fingerprint}
    (tmp / "state.json").write_text(json.dumps(meta), encoding="utf-8")
    final = work_dir / f"ckpt-{state.step:08d}"
    os.replace(tmp, final)
    for old in _checkpoint_dirs(work_dir):
        if old != final:
            shutil.rmtree(old)
    return final


def load_checkpoint(work_dir: Path, model, optimizer, scheduler, fingerprint: str):
    """Restore the latest checkpoint into model/optimizer/scheduler/RNGs.

    Returns ``(state, best_weights)``, or ``None`` when there is no usable checkpoint
    (none, or one written with different settings).
    """
    dirs = _checkpoint_dirs(work_dir)
    if not dirs:
        return None
    ckpt = dirs[-1]
    meta = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    if meta["fingerprint"] != fingerprint:
        tqdm.write(f"{ckpt}: written with other settings; starting from scratch")
        return None
    _load_weights(model, load_file(ckpt / "adapter.safetensors"))
    tensors = torch.load(ckpt / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(tensors["optimizer"])
    scheduler.load_state_dict(tensors["scheduler"])
    _set_rng_state(meta["rng"], tensors["torch_rng"])
    return LoopState(**meta["state"]), load_file(ckpt / "best_adapter.safetensors")


def snapshot_name(step: int) -> str:
    """Directory name of the snapshot at ``step`` (zero-padded: names sort by step)."""
    return f"step-{step:08d}"


def save_snapshot(model, snapshots_dir: Path, step: int) -> None:
    """Write the adapter as it is now to ``snapshots_dir/step-<step>``, atomically.

    A resumed job replays the steps after its checkpoint and rewrites their snapshots
    with the same weights.
    """
    final = snapshots_dir / snapshot_name(step)
    tmp = snapshots_dir / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_adapter(model, tmp)
    write_checksums(tmp, list(SNAPSHOT_FILES))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _on(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def validation_loss(
    model, examples: Sequence, batch_size: int, pad_id: int, dp: DataParallel | None = None
) -> float:
    """Token-weighted mean target cross-entropy over ``examples`` (model in eval mode, on
    its device; autocast is the caller's). With ``dp`` each worker takes every
    ``world``-th batch and the sums are reduced, so all workers return the same value."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]))
    starts = list(range(0, len(order), batch_size))
    total, count = 0.0, 0
    for start in starts if dp is None else dp.rows(starts):
        batch = collate([examples[i] for i in order[start : start + batch_size]], pad_id)
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(target_only_loss(model, **_on(batch, device))) * n
        count += n
    model.train(was_training)
    if dp is not None:
        total, count = dp.sum([total, count])
    return total / count


def _require_finite(loss: float, what: str, name: str, step: int) -> None:
    """Raise ValueError when a loss is NaN or infinite: training has diverged, and no
    adapter from it is worth publishing."""
    if not math.isfinite(loss):
        raise ValueError(
            f"job {name}: {what} is {loss} at step {step}; expected a finite loss "
            "(training diverged: lower training.lr or check the data)"
        )


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [row for row in csv.DictReader(fh) if int(row["step"]) <= upto]


def _open_log(path: Path, keep: list[dict]):
    fh = path.open("w", newline="", encoding="utf-8")
    writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(keep)
    fh.flush()
    return fh, writer


def _optimizer_step(
    model, examples, pad, params, optimizer, scheduler, training, dtype, dp=None
) -> tuple[float, int]:
    """Forward (autocast to ``dtype``; the loss is float32), backward, clip, AdamW and
    schedule step on one batch of encoded ``examples``; returns its loss and token count.

    With ``dp`` this worker takes its rows of the batch, weighs its loss by its share of
    the batch's target tokens and sums the gradients over workers: the same step as one
    process on the whole batch (:mod:`mossa.training.data_parallel`).
    """
    device = model_device(model)
    batch = collate(examples if dp is None else dp.rows(examples), pad)
    with autocast(device, dtype):
        loss = target_only_loss(model, **_on(batch, device))
    n_tokens = int(batch["attention_mask"].sum())
    if dp is None:
        loss.backward()
        value = loss.item()
    else:
        n_target, n_global = int((batch["labels"][:, 1:] != -100).sum()), target_tokens(examples)
        (loss * (n_target / n_global)).backward()
        dp.sum_gradients(params)
        weighted, tokens = dp.sum([loss.item() * n_target, n_tokens])
        value, n_tokens = weighted / n_global, int(tokens)
    if training.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, training.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return value, n_tokens


def train_lora(
    model,
    tokenizer,
    train_items: Sequence,
    val_items: Sequence,
    *,
    out_dir: Path,
    steps: int,
    training: TrainingConfig,
    seed: int,
    max_length: int,
    work_dir: Path | None = None,
    name: str = "train",
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    snapshot_every: int | None = None,
    dtype: torch.dtype = torch.float32,
    gradient_checkpointing: bool = False,
    data_parallel: DataParallel | None = None,
) -> dict:
    """Train one LoRA adapter on ``train_items`` and save it to ``out_dir``.

    Parameters
    ----------
    model : transformers causal LM
        The base model; LoRA layers are injected into it in place.
    tokenizer : transformers tokenizer
    train_items, val_items : sequence
        Objects with ``.prompt`` and ``.target``. ``val_items`` may be empty (no early
        stopping then; the last weights are kept).
    out_dir : Path
        Final adapter directory (must not exist yet; created atomically at the end).
    steps : int
        Maximum optimiser steps (early stopping may end sooner).
    training : TrainingConfig
        LoRA and optimiser settings.
    seed : int
        Seeds the LoRA initialisation, the data order and torch's global RNG.
    max_length : int
        Maximum tokens per example (prompt truncated from the left).
    work_dir : Path, optional
        Where the checkpoint and running log live; default ``<out_dir>.work`` beside it.
    name : str
        Label for messages and the progress bar.
    progress : bool
        Show a tqdm progress bar.
    on_step : callable, optional
        Called with the step number after each step's logging and checkpoint.
    snapshot_every : int, optional
        Keep the adapter of every ``snapshot_every``-th step and of the last step in
        ``out_dir/snapshots/step-<N>`` (each with its checksums).
    dtype : torch.dtype
        Autocast precision of forward passes on the model's device (float32: none). LoRA
        weights, their gradients, AdamW state and the loss stay float32.
    gradient_checkpointing : bool
        Recompute block activations in the backward pass (less memory, more compute).
    data_parallel : DataParallel, optional
        This worker's rank among data-parallel workers (torch.distributed initialised):
        each takes a slice of every batch and gradients are summed, so the adapter equals
        one process's within float tolerance (with ``lora_dropout`` 0). Every worker
        resumes from the checkpoint in ``work_dir`` (storage they share); only rank 0
        writes files.

    Returns
    -------
    dict
        Summary: steps run, best step and validation loss, early stop, tokens, seconds.

    Raises
    ------
    ValueError
        Bad settings (before any training), or a non-finite loss (naming ``name`` and
        the step; no adapter is published).
    """
    validate_training_inputs(
        train_items, steps=steps, training=training, max_length=max_length, name=name
    )
    dp = data_parallel
    if dp is not None and training.batch_size < dp.world:
        raise ValueError(
            f"{name}: training.batch_size={training.batch_size} is smaller than the "
            f"{dp.world} data-parallel workers; each needs at least one row per batch"
        )
    main = dp is None or dp.main
    if snapshot_every is not None and (not isinstance(snapshot_every, int) or snapshot_every < 1):
        raise ValueError(
            f"{name}: snapshot_every must be a positive integer, got {snapshot_every!r}"
        )
    check_target_modules(model, list(training.target_modules))
    out_dir = Path(out_dir)
    work_dir = (
        Path(work_dir) if work_dir is not None else out_dir.with_name(f".{out_dir.name}.work")
    )
    if main:
        work_dir.mkdir(parents=True, exist_ok=True)

    sep = training.target_separator
    train = encode_items(train_items, tokenizer, max_length, sep)
    val = encode_items(val_items, tokenizer, max_length, sep)
    pad = pad_id(tokenizer)
    lengths = [len(e) for e in train]
    fingerprint = _fingerprint(training, steps, seed, max_length, len(train), dtype)

    torch.manual_seed(seed)
    model = attach_lora(model, training, seed=seed)
    if gradient_checkpointing:
        causal_lm, kwargs = model.get_base_model(), {"use_reentrant": False}
        # transformers 5.2x renamed it; older 5.x (the GPU image's 5.17) has only the old name
        if hasattr(causal_lm, "activation_checkpointing_enable"):
            causal_lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            causal_lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.train()
    params = list(_trainable(model).values())
    optimizer = torch.optim.AdamW(params, lr=training.lr, weight_decay=training.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, training.warmup_steps, steps)

    restored = load_checkpoint(work_dir, model, optimizer, scheduler, fingerprint)
    state, best = restored if restored else (LoopState(), _snapshot(model))
    if not restored and main:  # snapshots left by a run with other settings are not this job's
        shutil.rmtree(work_dir / SNAPSHOTS, ignore_errors=True)
    log_fh, log = (
        _open_log(work_dir / "train_log.csv", _read_log(work_dir / "train_log.csv", state.step))
        if main
        else (None, None)
    )
    order = batch_order(lengths, training.batch_size, seed, state.epoch)
    bar = tqdm(
        total=steps,
        initial=state.step,
        desc=name,
        disable=None if progress and main else True,
        dynamic_ncols=True,
    )
    t_start, tokens_seen = time.perf_counter(), 0
    try:
        while state.step < steps and not state.stopped_early:
            if state.position == len(order):
                state.epoch, state.position = state.epoch + 1, 0
                order = batch_order(lengths, training.batch_size, seed, state.epoch)
            examples = [train[i] for i in order[state.position]]
            state.position += 1

            t0 = time.perf_counter()
            lr = scheduler.get_last_lr()[0]
            loss, n_tokens = _optimizer_step(
                model, examples, pad, params, optimizer, scheduler, training, dtype, dp
            )
            state.step += 1
            _require_finite(loss, "training loss", name, state.step)
            tokens_seen += n_tokens
            row = {"step": state.step, "loss": f"{loss:.6f}", "lr": f"{lr:.6g}"}
            row |= {
                "tokens": n_tokens,
                "tokens_per_s": f"{n_tokens / (time.perf_counter() - t0):.1f}",
            }

            if val and (state.step % training.eval_every == 0 or state.step == steps):
                with autocast(model_device(model), dtype):
                    v = validation_loss(model, val, training.batch_size, pad, dp=dp)
                _require_finite(v, "validation loss", name, state.step)
                row["val_loss"] = f"{v:.6f}"
                if v < state.best_val:
                    state.best_val, state.best_step, state.bad_evals = v, state.step, 0
                    best = _snapshot(model)
                else:
                    state.bad_evals += 1
                    state.stopped_early = state.bad_evals >= training.patience
            bar.update(1)
            bar.set_postfix(loss=row["loss"], val=row.get("val_loss", "-"))
            if main:
                log.writerow(row)
                log_fh.flush()
                last = state.step == steps or state.stopped_early
                if snapshot_every and (state.step % snapshot_every == 0 or last):
                    save_snapshot(model, work_dir / SNAPSHOTS, state.step)
                if state.step % training.checkpoint_every == 0 and state.step < steps:
                    save_checkpoint(work_dir, model, best, optimizer, scheduler, state, fingerprint)
            if on_step is not None:
                on_step(state.step)
    finally:
        bar.close()
        if log_fh is not None:
            log_fh.close()

    if val:  # keep the weights with the best validation loss
        _load_weights(model, best)
    summary = {
        "name": name,
        "steps": state.step,
        "max_steps": steps,
        "stopped_early": state.stopped_early,
        "best_step": state.best_step if val else state.step,
        "best_val_loss": state.best_val if val else None,
        "n_train": len(train),
        "n_val": len(val),
        "seed": seed,
        "tokens_this_session": tokens_seen,
        "seconds_this_session": round(time.perf_counter() - t_start, 3),
    }
    if dp is not None:
        summary["data_parallel_workers"] = dp.world
    if not main:
        return summary
    if snapshot_every:
        summary["snapshot_steps"] = snapshot_steps(work_dir)
    _publish(model, work_dir, out_dir, summary)
    return summary


def _publish(model, work_dir: Path, out_dir: Path, summary: dict) -> None:
    """Save the adapter, its log and summary to a temporary dir, then rename it into place."""
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_adapter(model, tmp)
    shutil.copyfile(work_dir / "train_log.csv", tmp / "train_log.csv")
    (tmp / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_checksums(tmp, list(ADAPTER_FILES))
    if (work_dir / SNAPSHOTS).is_dir():
        os.replace(work_dir / SNAPSHOTS, tmp / SNAPSHOTS)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
