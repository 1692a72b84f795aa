"""Validated run configuration: one pydantic model per pipeline section.

A config is YAML (read with ``yaml.safe_load``) or a named profile from
``mossa/configs/``; ``--set section.key=value`` overrides single keys. Unknown keys are
errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

PROFILE_DIR = Path(__file__).parent / "configs"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TasksConfig(_Section):
    """Which tasks, how many examples, and how they are mixed."""

    suite: str = "builtin"  # builtin | path to a JSONL/YAML task file | flan:PATH
    clusters: list[str] | None = None  # restrict to these clusters (None: all)
    tasks_per_cluster: PositiveInt | None = None  # keep at most this many tasks per cluster
    n_train: PositiveInt = 200  # built-in suite: generated examples per task and split
    n_validation: PositiveInt = 40
    n_test: PositiveInt = 80
    cap_per_task: PositiveInt = 3000  # examples-proportional mixing cap (Flan: 3,000)
    max_per_cluster: PositiveInt = 50_000
    n_analysis: PositiveInt = 64  # analysis prompts per task, from the test split


class ModelConfig(_Section):
    """The base causal LM."""

    base: str = "tiny"  # tiny | gemma-3-270m | random:<preset> | local HF dir | hub name
    trust_remote_code: bool = False
    max_length: PositiveInt = 256  # prompt+target tokens; prompts truncated from the left


class TrainingConfig(_Section):
    """LoRA fine-tuning of the SFT model and the per-task controls (reference defaults)."""

    lora_r: PositiveInt = 8
    lora_alpha: float = 16.0
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "v_proj"]
    lr: float = 5e-5
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(0, ge=0)
    sft_steps: PositiveInt = 1000
    control_steps: PositiveInt = 300
    batch_size: PositiveInt = 16
    eval_every: PositiveInt = 50
    patience: PositiveInt = 3  # early stopping: evaluations without validation improvement
    checkpoint_every: PositiveInt = 50
    controls: Literal["all", "seen"] = "all"
    max_grad_norm: float = Field(1.0, ge=0.0)  # gradient clipping (0: off), as transformers
    max_val_items: PositiveInt = 256  # validation examples per job (seeded sample)
    # text between a prompt and its target in training examples (skipped when the prompt
    # ends in whitespace): the answer is then tokenised as in running text
    target_separator: str = " "

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"lr must be > 0, got {v}")
        return v


class EvaluationConfig(_Section):
    """Task-metric evaluation of base, SFT and controls (Tables 3 and 4)."""

    max_examples: PositiveInt = 50
    max_new_tokens: PositiveInt = 32
    batch_size: PositiveInt = 16


class ExecutorConfig(_Section):
    """Where training jobs run."""

    kind: Literal["local", "ray"] = "local"
    workers: PositiveInt = 1
    # torch threads of the main process (pretraining, evaluation, extraction); None keeps
    # torch's default (one per core). On a machine shared with other work, intra-op threads
    # wait on each other and 1 can be several times faster than 2.
    threads: PositiveInt | None = None
    ray_address: str | None = None
    cpus_per_job: float = Field(1.0, gt=0)
    gpus_per_job: float = Field(0.0, ge=0)


class ExtractionConfig(_Section):
    """Hidden-state extraction into the activation store."""

    batch_size: PositiveInt = 32
    pooling: Literal["last", "mean"] = "last"
    dtype: Literal["float32", "float16"] = "float32"
    cross_task: bool = False  # also every control on every task


class AnalysisConfig(_Section):
    """CKA tables, calibration and the layer map."""

    kernel: Literal["linear", "rbf"] = "linear"
    threshold: float = Field(1.0, gt=0)
    permutations: PositiveInt = 200
    bootstrap: PositiveInt = 200
    group_bootstrap: PositiveInt = 200
    pca_variance: float = Field(0.99, gt=0, le=1)
    tsne_layers: list[int] | None = None  # None: a few evenly spaced layers
    tsne_perplexity: float = Field(15.0, gt=0)


class RunConfig(_Section):
    """A whole run: every section, plus its name and seed."""

    name: str = "run"
    seed: int = 0
    tasks: TasksConfig = TasksConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    executor: ExecutorConfig = ExecutorConfig()
    extraction: ExtractionConfig = ExtractionConfig()
    analysis: AnalysisConfig = AnalysisConfig()


def profile_names() -> list[str]:
    """Names of the bundled profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _parse_override(item: str) -> tuple[list[str], object]:
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ValueError(f"--set expects section.key=value, got {item!r}")
    key, raw = item.split("=", 1)
    return key.split("."), yaml.safe_load(raw) if raw else ""


def executor_overrides(
    kind: str | None = None, workers: int | None = None, ray_address: str | None = None
) -> list[str]:
    """``--set`` overrides for the executor options the CLI commands share (None: unset)."""
    given = {"kind": kind, "workers": workers, "ray_address": ray_address}
    return [f"executor.{k}={v}" for k, v in given.items() if v is not None]


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping safely, naming the file on any error."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def load_config(
    profile: str | None = None, file: Path | None = None, overrides: list[str] | None = None
) -> RunConfig:
    """Build a RunConfig from a profile name or a YAML file, then apply ``--set`` overrides."""
    if profile and file:
        raise ValueError("give either --profile or --config, not both")
    if file is not None:
        source, data = str(file), read_yaml(Path(file))
    else:
        name = profile or "demo"
        path = PROFILE_DIR / f"{name}.yaml"
        if not path.exists():
            raise ValueError(f"unknown profile {name!r}; available: {', '.join(profile_names())}")
        source, data = str(path), read_yaml(path)
    for item in overrides or []:
        keys, value = _parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {k!r} is not a section")
        node[keys[-1]] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{source}: {where}: {first['msg']}") from None


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML, written into every run directory."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
