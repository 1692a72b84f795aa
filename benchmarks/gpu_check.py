"""GPU check of issue 15: placement parity, LoRA training and extraction speed, memory.

Run by ``benchmarks/gpu_check.sh`` on one CUDA GPU (an H200 in about 5 minutes):

1. parity: ``random:llama-tiny`` (stored weights, the same on every device) gives hidden
   states on the GPU equal to the CPU's within 1e-4 of each layer's scale in float32 and
   within 5% in bfloat16; CKA of GPU tensors equals CKA of CPU tensors within 1e-6; the
   first training loss (LoRA B starts at zero) is the same within 1e-4 (relative), and
   three steps lower it on both (LoRA A comes from each device's own generator).
2. training: mossa's LoRA loop on ``random:llama-2-7b`` (bf16, r=8 on q/v, batch 16 x 512
   tokens) against transformers Trainer + PEFT on the same model, data and settings:
   tokens/s (median step after warm-up), MFU (4 x N FLOPs per token, attention ignored, of
   790 TFLOP/s dense bf16), peak memory against the ``--dry-run`` estimate, with and
   without gradient checkpointing.
3. extraction: ``states_from_ids`` (every layer, pooled) against a bare forward of the
   decoder body on the same batches: tokens/s.

Targets (issue 15): training >= 1.5x the Trainer and >= 35% MFU; extraction >= 0.9x the
bare forward. Writes ``results.json`` and ``RESULTS-gpu.md`` under ``--out``.
``--cpu-smoke`` runs every step on the CPU at toy sizes (a tiny real-shape preset, batch
2 x 32, a few steps) to check the script itself; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import platform
import random
import statistics
import string
import tempfile
import time
from collections import namedtuple
from pathlib import Path

import torch

from mossa.config import ComputeConfig, RunConfig, TrainingConfig
from mossa.inference.hidden_states import decoder_body, extract_hidden_states, states_from_ids
from mossa.models import load_base, presets
from mossa.models.device import autocast, resolve_compute
from mossa.models.lm import length_sorted_batches, pad_id
from mossa.pipeline.plan import base_size, training_memory
from mossa.similarity import cka
from mossa.training.data import collate, encode_items
from mossa.training.loop import train_lora
from mossa.training.lora import lora_config

Item = namedtuple("Item", "prompt target")
PEAK_TFLOPS = 790.0  # H200 dense bf16
FULL = {"preset": "llama-2-7b", "batch": 16, "length": 512, "steps": 12, "warmup": 3}
FULL |= {"ckpt_steps": 4, "prompts": 512, "extract_batch": 32}
SMOKE = {"preset": "smoke-shaped", "batch": 2, "length": 32, "steps": 4, "warmup": 1}
SMOKE |= {"ckpt_steps": 2, "prompts": 8, "extract_batch": 4}
PROMPTS = [f"Question {i}: what is {i} plus {i * 3}? Think about it." for i in range(48)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    """Return the memory of dropped models (the next measurement starts clean)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _log(path: Path, column: str) -> list[float]:
    with path.open(newline="") as fh:
        return [float(row[column]) for row in csv.DictReader(fh)]


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| over the layer's largest |a|, worst layer ([L, n, d] inputs)."""
    scale = a.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return float(((a - b.to(a.device)).abs() / scale).max())


def _short_items(n: int) -> list:
    return [Item(f"{d}:", " " + "abcdefghij"[d]) for d in range(10)] * (n // 10 + 1)


def _losses(device: torch.device, dtype: torch.dtype, steps: int = 3) -> list[float]:
    model, tok = load_base("random:llama-tiny", dtype=dtype, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        train_lora(
            model, tok, _short_items(40), [], out_dir=Path(tmp) / "a", steps=steps,
            training=TrainingConfig(lr=3e-2, batch_size=8, checkpoint_every=100), seed=7,
            max_length=32, progress=False, dtype=dtype,
        )  # fmt: skip
        return _log(Path(tmp) / "a" / "train_log.csv", "loss")


def parity(device: torch.device) -> dict:
    """CPU against ``device``: states (float32 and bfloat16), CKA and three training steps."""
    cpu_model, tok = load_base("random:llama-tiny")
    reference = extract_hidden_states(cpu_model, tok, PROMPTS)
    model32, _ = load_base("random:llama-tiny", device=device)
    model16, _ = load_base("random:llama-tiny", device=device, dtype=torch.bfloat16)
    states16 = extract_hidden_states(model16, tok, PROMPTS, dtype=torch.bfloat16)
    x, y = reference[2:], reference[1:-1]  # adjacent blocks (every prompt ends in "." so
    # the embedding layer's last-token rows are all equal): CKA well inside (0, 1)
    on_device = cka(x.to(device), y.to(device))
    cpu_losses, device_losses = (
        _losses(torch.device("cpu"), torch.float32),
        _losses(device, torch.float32),
    )
    return {
        "states_float32_rel_err": _rel_err(reference, extract_hidden_states(model32, tok, PROMPTS)),
        "states_bfloat16_rel_err": _rel_err(reference, states16),
        "states_bfloat16_dtype": str(states16.dtype),
        "cka_abs_err": float(abs(cka(x, y) - on_device).max()),
        "train_losses_cpu": cpu_losses,
        "train_losses_device": device_losses,
        "first_loss_rel_err": abs(cpu_losses[0] - device_losses[0]) / abs(cpu_losses[0]),
    }


def _long_items(n: int, length: int) -> list:
    """Examples whose encoding is exactly ``length`` tokens (prompts truncated on the left)."""
    rng = random.Random(0)
    letters = string.ascii_lowercase + " "
    return [
        Item("".join(rng.choices(letters, k=2 * length)), " " + "".join(rng.choices(letters, k=15)))
        for _ in range(n)
    ]


def _memory_estimate(spec: str, p: dict, checkpointing: bool) -> float:
    cfg = RunConfig.model_validate(
        {
            "model": {"base": spec, "max_length": p["length"]},
            "training": {"batch_size": p["batch"], "lora_r": 8},
            "compute": {"dtype": "bfloat16", "gradient_checkpointing": checkpointing},
        }
    )
    return training_memory(cfg, base_size(cfg))["total"]


def mossa_training(spec: str, p: dict, device, dtype, checkpointing: bool, steps: int) -> dict:
    """Median tokens/s after warm-up and peak memory of mossa's loop."""
    model, tok = load_base(spec, device=device, dtype=dtype)
    n_params = sum(q.numel() for q in model.parameters())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:
        train_lora(
            model, tok, _long_items(p["batch"] * steps, p["length"]), [],
            out_dir=Path(tmp) / "a", steps=steps,
            training=TrainingConfig(lr=1e-4, batch_size=p["batch"], checkpoint_every=10**6),
            seed=0, max_length=p["length"], progress=False, dtype=dtype,
            gradient_checkpointing=checkpointing,
        )  # fmt: skip
        rates = _log(Path(tmp) / "a" / "train_log.csv", "tokens_per_s")[p["warmup"] :]
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    del model
    _free(device)
    return {"tokens_per_s": statistics.median(rates), "peak_gb": peak, "params": n_params}


def trainer_training(spec: str, p: dict, device, dtype) -> dict:
    """Median tokens/s after warm-up of transformers Trainer + PEFT on the same run."""
    from peft import get_peft_model
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    model, tok = load_base(spec, device=device, dtype=dtype)
    torch.manual_seed(0)
    peft_model = get_peft_model(model, lora_config(TrainingConfig(lora_r=8)))
    encoded = encode_items(_long_items(p["batch"] * p["steps"], p["length"]), tok, p["length"])
    pad = pad_id(tok)
    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            _sync(device)
            ends.append(time.perf_counter())

    class Examples(torch.utils.data.Dataset):
        def __len__(self):
            return len(encoded)

        def __getitem__(self, i):
            return encoded[i]

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=p["batch"], max_steps=p["steps"],
            learning_rate=1e-4, lr_scheduler_type="cosine", logging_strategy="no",
            save_strategy="no", eval_strategy="no", report_to="none", disable_tqdm=True,
            seed=0, dataloader_num_workers=0, remove_unused_columns=False,
            bf16=dtype == torch.bfloat16, use_cpu=device.type == "cpu",
        )  # fmt: skip
        trainer = Trainer(
            model=peft_model, args=args, train_dataset=Examples(),
            data_collator=lambda rows: collate(rows, pad), callbacks=[Clock()],
        )  # fmt: skip
        trainer.remove_callback(PrinterCallback)
        _sync(device)
        ends.append(time.perf_counter())
        trainer.train()
    steps = [b - a for a, b in zip(ends, ends[1:], strict=False)][p["warmup"] :]
    del trainer, peft_model, model
    _free(device)
    return {"tokens_per_s": p["batch"] * p["length"] / statistics.median(steps)}


def extraction(spec: str, p: dict, device, dtype) -> dict:
    """Tokens/s of ``states_from_ids`` and of a bare forward of the body on the same batches."""
    model, _ = load_base(spec, device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 259, (p["prompts"], p["length"]), generator=gen).tolist()
    tokens = p["prompts"] * p["length"]
    body = decoder_body(model)

    def timed(fn) -> float:
        fn()  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        return tokens / (time.perf_counter() - t0)

    def ours():
        states_from_ids(model, ids, pad_id=0, batch_size=p["extract_batch"], dtype=dtype)

    def bare():
        with torch.inference_mode(), autocast(device, dtype):
            for _, batch in length_sorted_batches(ids, p["extract_batch"], 0):
                body(**{k: v.to(device) for k, v in batch.items()}, use_cache=False)

    return {"tokens_per_s": timed(ours), "bare_tokens_per_s": timed(bare)}


def _register_smoke_preset() -> None:
    """A real-shape preset (meta build, materialised at load) at llama-tiny's size."""
    tiny = presets.PRESETS["llama-tiny"].make_config
    presets.SHAPED["smoke-shaped"] = presets.Preset("LlamaForCausalLM", tiny)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    p = SMOKE if args.cpu_smoke else FULL
    if args.cpu_smoke:
        _register_smoke_preset()
        device, dtype = torch.device("cpu"), torch.bfloat16
    else:
        device, dtype = resolve_compute(ComputeConfig(device="cuda"))
    spec = f"random:{p['preset']}"
    results: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "settings": p,
    }
    import peft
    import transformers

    results["versions"] |= {"transformers": transformers.__version__, "peft": peft.__version__}
    stamp = time.perf_counter()
    results["parity"] = parity(device)
    train = mossa_training(spec, p, device, dtype, False, p["steps"])
    ckpt = mossa_training(spec, p, device, dtype, True, p["ckpt_steps"] + p["warmup"])
    results["training"] = {
        "mossa": train,
        "mossa_checkpointing": ckpt,
        "trainer_peft": trainer_training(spec, p, device, dtype),
        "estimate_gb": _memory_estimate(spec, p, False),
        "estimate_checkpointing_gb": _memory_estimate(spec, p, True),
    }
    results["extraction"] = extraction(spec, p, device, dtype)
    _free(device)
    results["seconds"] = round(time.perf_counter() - stamp, 1)
    results["verdicts"] = verdicts(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results)
    (args.out / "RESULTS-gpu.md").write_text(report)
    print(report)
    return results


def verdicts(r: dict) -> dict[str, bool]:
    """Each check of the module docstring: passed or not."""
    t, par = r["training"], r["parity"]
    mfu = t["mossa"]["tokens_per_s"] * 4 * t["mossa"]["params"] / (PEAK_TFLOPS * 1e12)
    r["training"]["mossa"]["mfu"] = mfu
    return {
        "states_float32_within_1e-4": par["states_float32_rel_err"] < 1e-4,
        "states_bfloat16_within_5%": par["states_bfloat16_rel_err"] < 0.05,
        "cka_within_1e-6": par["cka_abs_err"] < 1e-6,
        "first_loss_within_1e-4": par["first_loss_rel_err"] < 1e-4,
        "loss_falls_on_device": par["train_losses_device"][-1] < par["train_losses_device"][0],
        "training_1.5x_trainer": t["mossa"]["tokens_per_s"]
        >= 1.5 * t["trainer_peft"]["tokens_per_s"],
        "mfu_35%": mfu >= 0.35,
        "extraction_0.9x_bare": r["extraction"]["tokens_per_s"]
        >= 0.9 * r["extraction"]["bare_tokens_per_s"],
    }


def markdown(r: dict) -> str:
    """RESULTS-gpu.md: settings, measurements and the verdict of each target."""
    t, e, p = r["training"], r["extraction"], r["settings"]
    peak = t["mossa"]["peak_gb"]
    ratio = t["mossa"]["tokens_per_s"] / t["trainer_peft"]["tokens_per_s"]
    peak_ckpt = t["mossa_checkpointing"]["peak_gb"]
    gb = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
    lines = [
        "# GPU check (benchmarks/gpu_check.sh)",
        "",
        f"{r['device']}; "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        + f"; {r['seconds']} s.",
        "",
        f"Model `random:{p['preset']}` ({t['mossa']['params'] / 1e9:.2f}B parameters), bf16, "
        f"LoRA r=8 on q/v, batch {p['batch']} x {p['length']} tokens, median step after "
        f"{p['warmup']} warm-up steps.",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| mossa training tokens/s | {t['mossa']['tokens_per_s']:.0f} |",
        f"| Trainer + PEFT tokens/s | {t['trainer_peft']['tokens_per_s']:.0f} |",
        f"| mossa / Trainer | {ratio:.2f} |",
        f"| MFU (4N FLOPs/token of {PEAK_TFLOPS:.0f} TFLOP/s) | {t['mossa']['mfu']:.1%} |",
        f"| peak memory / dry-run estimate, GB | {gb(peak)} / {t['estimate_gb']:.1f} |",
        f"| with checkpointing, GB | {gb(peak_ckpt)} / {t['estimate_checkpointing_gb']:.1f} |",
        f"| checkpointing tokens/s | {t['mossa_checkpointing']['tokens_per_s']:.0f} |",
        f"| extraction tokens/s (all layers, pooled) | {e['tokens_per_s']:.0f} |",
        f"| bare forward tokens/s | {e['bare_tokens_per_s']:.0f} |",
        f"| states fp32 GPU vs CPU, rel. err | {r['parity']['states_float32_rel_err']:.2e} |",
        f"| states bf16 GPU vs fp32 CPU, rel. err | {r['parity']['states_bfloat16_rel_err']:.2e} |",
        f"| CKA GPU vs CPU, abs. err | {r['parity']['cka_abs_err']:.2e} |",
        f"| first training loss GPU vs CPU, rel. err | {r['parity']['first_loss_rel_err']:.2e} |",
        "",
        "| target | met |",
        "|---|---|",
        *(f"| {k} | {'yes' if v else 'NO'} |" for k, v in r["verdicts"].items()),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
