"""Job plan and cost estimate for `mossa run --dry-run`, without loading any model.

GPU hours are estimated from FLOPs: LoRA training costs about 4 x N FLOPs per token
(forward 2N, backward through frozen weights ~2N; adapter weight gradients are
negligible), extraction 2 x N per token. Throughput assumes a sustained fraction of an
accelerator's dense bf16 peak; the assumptions are printed with the plan.

Each training job's peak GPU memory is estimated by :func:`training_memory` (formula and
assumptions in docs/training.md) and checked against ``compute.gpu_memory_gb``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mossa.config import RunConfig

# Published sizes of well-known bases, for planning when the weights are not on disk.
KNOWN_BASES: dict[str, dict[str, float]] = {
    "meta-llama/Llama-2-7b-hf": {
        "params": 6.74e9,
        "layers": 32,
        "hidden": 4096,
        "intermediate": 11008,
        "vocab": 32000,
        "embedding_params": 2 * 32000 * 4096,  # input embeddings and an untied head
    },
    "gemma-3-270m": {
        "params": 2.68e8,
        "layers": 18,
        "hidden": 640,
        "intermediate": 2048,
        "vocab": 262144,
        "embedding_params": 262144 * 640,  # tied
    },
}
PEAK_TFLOPS = 312.0  # A100 dense bf16
SUSTAINED_FRACTION = 0.35
TRAIN_FLOPS_PER_TOKEN_PER_PARAM = 4.0
EXTRACT_FLOPS_PER_TOKEN_PER_PARAM = 2.0
MEAN_TOKENS_PER_EXAMPLE = 320  # Flan 2021 prompts+targets, order of magnitude

# Memory model of one LoRA training job (docs/training.md, "GPU memory"). Activation bytes
# saved for backward per token and block, at 16-bit compute, for a Llama block with LoRA on
# q/v: 21 x hidden + 6 x intermediate, measured with torch.autograd.graph.saved_tensors_hooks
# (the RMSNorms keep float32 copies; the attention keeps no T x T matrix). float32: twice.
ACT_BYTES_PER_HIDDEN = 21
ACT_BYTES_PER_INTERMEDIATE = 6
CHECKPOINT_BYTES_PER_HIDDEN = 4  # with checkpointing: each block's saved input
TARGET_FRACTION = 0.25  # share of positions with a target token (the head runs on those)
LOGIT_COPIES = 3  # float32 logits, their log-softmax and their gradient
LORA_BYTES_PER_PARAM = 16  # float32 weight, gradient, AdamW exp_avg and exp_avg_sq
# NF4 with a 16-bit absmax per 64 weights (double quantisation stores it in about 8), int8
# with a float32 scale per row of 4096
QUANT_BYTES = {"4bit": 0.5 + 2 / 64, "8bit": 1.0 + 4 / 4096}
OVERHEAD_GB = 1.0  # CUDA context, cuBLAS workspaces, allocator slack
GB = 1e9


@dataclass(frozen=True)
class JobPlan:
    name: str
    steps: int
    tokens: float
    gpu_hours: float


def _size(hidden: int, layers: int, inter: int, vocab: int, tied: bool = True) -> dict[str, float]:
    embedding = vocab * hidden * (1 if tied else 2)
    params = layers * (4 * hidden * hidden + 3 * hidden * inter) + embedding
    return {
        "params": float(params),
        "layers": layers,
        "hidden": hidden,
        "intermediate": inter,
        "vocab": vocab,
        "embedding_params": float(embedding),
    }


def _bundled_size(spec: str) -> dict[str, float] | None:
    """Sizes of mossa's bundled bases, from their configs (nothing is built or loaded)."""
    if spec == "tiny":
        from mossa.models.tiny import TinyConfig

        c = TinyConfig()
        return _size(c.hidden_size, c.n_layers, c.intermediate_size, c.vocab_size)
    if spec.startswith("random:"):
        from mossa.models.presets import meta_model

        model = meta_model(spec.split(":", 1)[1])  # real shapes, no memory
        c = model.config
        inter = getattr(c, "intermediate_size", None) or 4 * c.hidden_size
        size = _size(c.hidden_size, c.num_hidden_layers, inter, c.vocab_size)
        size["params"] = float(sum(p.numel() for p in model.parameters()))
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        size["embedding_params"] *= 1 if tied else 2
        return size
    return None


def base_size(cfg: RunConfig) -> dict[str, float]:
    """Parameters, layers and hidden size: bundled config, config.json or KNOWN_BASES."""
    spec = cfg.model.base
    bundled = _bundled_size(spec)
    if bundled is not None:
        return bundled
    config_json = Path(spec).expanduser() / "config.json"
    if config_json.exists():
        c = json.loads(config_json.read_text())
        c = c.get("text_config", c)
        h = c["hidden_size"]
        return _size(
            h,
            c["num_hidden_layers"],
            c.get("intermediate_size", 4 * h),
            c.get("vocab_size", 32000),
            tied=c.get("tie_word_embeddings", True),
        )
    for name, size in KNOWN_BASES.items():
        if spec == name or spec.rstrip("/").endswith(name.split("/")[-1]):
            return size
    raise ValueError(
        f"model.base={spec!r}: cannot size it for the plan (no config.json there and not one "
        f"of {', '.join(KNOWN_BASES)})"
    )


def extraction_entries(cfg: RunConfig, seen: int, total: int) -> dict[str, int]:
    """Activation-store entries (one model on one task's prompts) the extract stage writes.

    Base and SFT on every task; per task with a control its own control, the other tasks'
    controls for task specificity (``analysis.cross_task_controls``, or all with
    ``extraction.cross_task``; ValueError naming the key when there are too few) and the
    control's further seeds for the noise ceiling (``training.control_seeds`` − 1); every
    SFT snapshot on every task (``training.snapshot_every``).
    """
    from mossa.run_dir import cross_task_controls

    n_controls = total if cfg.training.controls == "all" else seen
    names = [{"name": str(i), "seen": i < n_controls} for i in range(total)]
    cross = cross_task_controls(
        names,
        controls="seen",
        k=cfg.analysis.cross_task_controls,
        cross_task=cfg.extraction.cross_task,
        seed=cfg.seed,
    )
    counts = {
        "base_and_sft": 2 * total,
        "own_controls": n_controls,
        "cross_task_controls": sum(len(v) for v in cross.values()),
        "control_seeds": n_controls * (cfg.training.control_seeds - 1),
        "sft_snapshots": len(snapshot_plan(cfg)) * total,
    }
    return {**counts, "entries": sum(counts.values())}


def snapshot_plan(cfg: RunConfig) -> list[int]:
    """Steps the SFT job keeps a snapshot at: every ``snapshot_every``-th and the last (fewer
    when early stopping ends the job sooner)."""
    every, steps = cfg.training.snapshot_every, cfg.training.sft_steps
    if not every:
        return []
    return sorted({*range(every, steps + 1, every), steps})


def adapter_bytes(cfg: RunConfig, size: dict[str, float]) -> float:
    """Bytes of one LoRA adapter in float32: r x (d_in + d_out) per adapted square module of
    every layer (q/v-like; an estimate for other modules)."""
    per_module = cfg.training.lora_r * 2 * size["hidden"] * 4
    return per_module * len(cfg.training.target_modules) * size["layers"]


def _weight_bytes(size: dict[str, float], dtype: str, load_in: str | None) -> float:
    """Base weights: every parameter in ``dtype``; quantised, the linear layers at
    QUANT_BYTES and the embeddings and head (never quantised) in ``dtype``."""
    per = 4 if dtype == "float32" else 2
    if load_in is None:
        return size["params"] * per
    linear = size["params"] - size["embedding_params"]
    return linear * QUANT_BYTES[load_in] + size["embedding_params"] * per


def training_memory(
    cfg: RunConfig,
    size: dict[str, float],
    *,
    dtype: str | None = None,
    load_in: str | None = None,
    checkpointing: bool | None = None,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Peak GPU memory (GB) of one LoRA training job, by part; keywords override the config.

    At the longest batch, ``batch_size`` x ``model.max_length`` tokens (batches are padded
    to their longest example). ``dtype`` "auto" is bfloat16 (what it means on a GPU). See
    docs/training.md for the formula and its assumptions.
    """
    c = cfg.compute
    dtype = c.dtype if dtype is None else dtype
    dtype = "bfloat16" if dtype == "auto" else dtype
    load_in = c.load_in if load_in is None else load_in or None
    checkpointing = c.gradient_checkpointing if checkpointing is None else checkpointing
    tokens = (batch_size or cfg.training.batch_size) * cfg.model.max_length
    h, i, layers = size["hidden"], size["intermediate"], size["layers"]
    scale = 2 if dtype == "float32" else 1  # activation bytes are measured at 16 bits
    block = (ACT_BYTES_PER_HIDDEN * h + ACT_BYTES_PER_INTERMEDIATE * i) * scale
    if checkpointing:  # block inputs kept, one block recomputed at a time
        activations = tokens * (layers * CHECKPOINT_BYTES_PER_HIDDEN * h * scale + block)
    else:
        activations = tokens * layers * block
    lora_params = cfg.training.lora_r * 2 * h * len(cfg.training.target_modules) * layers
    parts = {
        "weights": _weight_bytes(size, dtype, load_in),
        "lora_and_optimizer": lora_params * LORA_BYTES_PER_PARAM,
        "saved_activations": activations,
        "logits": tokens * TARGET_FRACTION * size["vocab"] * 4 * LOGIT_COPIES,
        "overhead": OVERHEAD_GB * GB,
    }
    gb = {k: v / GB for k, v in parts.items()}
    return {**gb, "total": sum(gb.values())}


def memory_check(cfg: RunConfig, size: dict[str, float]) -> dict:
    """The training jobs' memory, whether it fits ``compute.gpu_memory_gb`` (None: not
    asked), and when not, the first of these changes that fits: gradient checkpointing,
    4-bit loading, both, then both with the batch halved until it fits."""
    estimate = training_memory(cfg, size)
    budget = cfg.compute.gpu_memory_gb
    check = {"estimate_gb": estimate, "budget_gb": budget, "fits": None, "suggestion": None}
    if budget is None:
        return check
    check["fits"] = estimate["total"] <= budget
    if check["fits"]:
        return check
    c = cfg.compute
    candidates = [{"gradient_checkpointing": True}, {"load_in": "4bit"}]
    candidates.append({"gradient_checkpointing": True, "load_in": "4bit"})
    batch = cfg.training.batch_size // 2
    while batch >= 1:
        candidates.append({"gradient_checkpointing": True, "load_in": "4bit", "batch_size": batch})
        batch //= 2
    for change in candidates:
        change = {k: v for k, v in change.items() if getattr(c, k, None) != v}
        if not change:
            continue
        total = training_memory(
            cfg,
            size,
            load_in=change.get("load_in"),
            checkpointing=change.get("gradient_checkpointing"),
            batch_size=change.get("batch_size"),
        )["total"]
        if total <= budget:
            check["suggestion"] = {"change": change, "total_gb": total}
            break
    return check


def count_tasks(cfg: RunConfig) -> tuple[int, int, str]:
    """(seen, total) task counts: from the suite when it loads here, else from Flan's Table 1."""
    try:
        from mossa.pipeline.tasks import load_run_tasks

        tasks = load_run_tasks(cfg)
        return sum(t.seen for t in tasks), len(tasks), "suite"
    except (ValueError, FileNotFoundError):
        from mossa.tasks import FLAN_TASK_CLUSTERS, UNSEEN_CLUSTER

        total = len(FLAN_TASK_CLUSTERS)
        unseen = sum(1 for c in FLAN_TASK_CLUSTERS.values() if c == UNSEEN_CLUSTER)
        return total - unseen, total, "paper Table 1 (suite not readable here)"


def make_plan(cfg: RunConfig) -> dict:
    """Jobs with steps, tokens and GPU hours, plus activation disk, as a JSON-able dict."""
    size = base_size(cfg)
    seen, total, source = count_tasks(cfg)
    rate = PEAK_TFLOPS * 1e12 * SUSTAINED_FRACTION * 3600  # FLOPs per GPU hour
    tokens_per_step = cfg.training.batch_size * min(MEAN_TOKENS_PER_EXAMPLE, cfg.model.max_length)

    def job(name: str, steps: int) -> JobPlan:
        tokens = steps * tokens_per_step
        flops = TRAIN_FLOPS_PER_TOKEN_PER_PARAM * size["params"] * tokens
        return JobPlan(name, steps, tokens, flops / rate)

    n_controls = total if cfg.training.controls == "all" else seen
    jobs = [job("sft", cfg.training.sft_steps)]
    jobs += [
        job(f"control:{i + 1}" + (f"@seed{r}" if r else ""), cfg.training.control_steps)
        for r in range(cfg.training.control_seeds)
        for i in range(n_controls)
    ]
    extraction = extraction_entries(cfg, seen, total)
    bytes_per = 2 if cfg.extraction.dtype == "float16" else 4
    act_bytes = (
        extraction["entries"]
        * (size["layers"] + 1)
        * cfg.tasks.n_analysis
        * size["hidden"]
        * bytes_per
    )
    extract_tokens = extraction["entries"] * cfg.tasks.n_analysis * MEAN_TOKENS_PER_EXAMPLE
    extract_hours = EXTRACT_FLOPS_PER_TOKEN_PER_PARAM * size["params"] * extract_tokens / rate
    return {
        "base": cfg.model.base,
        "base_size": size,
        "tasks": {"seen": seen, "total": total, "counted_from": source},
        "jobs": [asdict(j) for j in jobs],
        "extraction": extraction,
        "gpu_hours": {
            "sft": jobs[0].gpu_hours,
            "controls": sum(j.gpu_hours for j in jobs[1:]),
            "extraction": extract_hours,
            "total": sum(j.gpu_hours for j in jobs) + extract_hours,
        },
        "activation_disk_gb": act_bytes / 1e9,
        "gpu_memory": memory_check(cfg, size),
        "snapshots": {
            "steps": len(snapshot_plan(cfg)),
            "disk_gb": len(snapshot_plan(cfg)) * adapter_bytes(cfg, size) / 1e9,
        },
        "assumptions": {
            "peak_tflops": PEAK_TFLOPS,
            "sustained_fraction": SUSTAINED_FRACTION,
            "train_flops_per_token": f"{TRAIN_FLOPS_PER_TOKEN_PER_PARAM} x params",
            "tokens_per_step": tokens_per_step,
            "executor": cfg.executor.kind,
            "gpus_per_job": cfg.executor.gpus_per_job,
            "sft_workers": cfg.executor.sft_workers,
        },
    }
