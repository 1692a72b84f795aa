"""Validated run configuration: one pydantic model per pipeline section.

A config is YAML (read with ``yaml.safe_load``) or a named profile from
``mossa/configs/``; ``--set key=value`` or ``--set section.key=value`` overrides single
keys. Unknown keys and non-finite numbers are errors, so a typo never silently falls
back to a default. The override grammar and error reporting here are shared with the
clustering config.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
)

PROFILE_DIR = Path(__file__).parent / "configs"
_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


class Section(BaseModel):
    """Base of every config model: unknown keys, inf and nan are validation errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            "a name must be 1-100 letters, digits, '.', '_' or '-', not starting with '.' "
            "nor holding '..': it names the output directory runs/<name>"
        )
    return name


#: A run or experiment name: safe as one directory name under ``runs/``.
Name = Annotated[str, AfterValidator(_check_name)]


class TasksConfig(Section):
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


class ModelConfig(Section):
    """The base causal LM."""

    base: str = "tiny"  # tiny | gemma-3-270m | random:<preset> | local HF dir | hub name
    trust_remote_code: bool = False
    max_length: PositiveInt = 256  # prompt+target tokens; prompts truncated from the left


class TrainingConfig(Section):
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


class EvaluationConfig(Section):
    """Task-metric evaluation of base, SFT and controls (Tables 3 and 4)."""

    max_examples: PositiveInt = 50
    max_new_tokens: PositiveInt = 32
    batch_size: PositiveInt = 16


class ExecutorConfig(Section):
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


class ExtractionConfig(Section):
    """Hidden-state extraction into the activation store."""

    batch_size: PositiveInt = 32
    pooling: Literal["last", "mean"] = "last"
    dtype: Literal["float32", "float16"] = "float32"
    cross_task: bool = False  # also every control on every task


class AnalysisConfig(Section):
    """CKA tables, calibration and the layer map."""

    kernel: Literal["linear", "rbf"] = "linear"
    threshold: float = Field(1.0, gt=0)
    permutations: PositiveInt = 200
    bootstrap: PositiveInt = 200
    group_bootstrap: PositiveInt = 200
    pca_variance: float = Field(0.99, gt=0, le=1)
    tsne_layers: list[int] | None = None  # None: a few evenly spaced layers
    tsne_perplexity: float = Field(15.0, gt=0)


class RunConfig(Section):
    """A whole run: every section, plus its name and seed."""

    name: Name = "run"
    seed: int = 0
    tasks: TasksConfig = TasksConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    executor: ExecutorConfig = ExecutorConfig()
    extraction: ExtractionConfig = ExtractionConfig()
    analysis: AnalysisConfig = AnalysisConfig()


def profile_names(profile_dir: Path = PROFILE_DIR) -> list[str]:
    """Names of the profiles in ``profile_dir`` (default: the bundled run profiles)."""
    return sorted(p.stem for p in profile_dir.glob("*.yaml"))


def executor_overrides(
    kind: str | None = None, workers: int | None = None, ray_address: str | None = None
) -> list[str]:
    """``--set`` overrides for the executor options the CLI commands share (None: unset)."""
    given = {"kind": kind, "workers": workers, "ray_address": ray_address}
    return [f"executor.{k}={v}" for k, v in given.items() if v is not None]


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping safely, naming the file (and line) on any error."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the config ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid UTF-8 text ({exc.reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ValueError(f"{path}: not valid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def apply_override(data: dict, item: str) -> tuple[str, ...]:
    """Apply ``--set key=value`` or ``--set a.b.c=value`` to ``data``; return the key path.

    The value is read with ``yaml.safe_load`` (``3`` an int, ``[1, 2]`` a list, ``.inf``
    a float); an empty value is the empty string.
    """
    key, sep, raw = item.partition("=")
    keys = tuple(key.split("."))
    if not sep or not all(keys):
        raise ValueError(f"--set expects key=value or section.key=value, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        raise ValueError(f"--set {item}: the value is not valid YAML") from None
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {item}: {k!r} is not a section")
    node[keys[-1]] = value
    return keys


Model = TypeVar("Model", bound=BaseModel)


def load_model(
    model: type[Model],
    profile_dir: Path,
    default_profile: str,
    profile: str | None,
    file: Path | None,
    overrides: list[str] | None,
) -> Model:
    """Validate a profile or YAML file with ``--set`` overrides applied as ``model``.

    The first validation error names its key path and where the bad value came from:
    the ``--set`` item that set it, else the file (plus the items that changed the same
    section, for checks across fields).
    """
    if profile and file:
        raise ValueError("give either --profile or --config, not both")
    path = Path(file) if file is not None else profile_dir / f"{profile or default_profile}.yaml"
    if file is None and not path.exists():
        available = ", ".join(profile_names(profile_dir))
        raise ValueError(f"unknown profile {path.stem!r}; available: {available}")
    data = read_yaml(path)
    set_keys = [(apply_override(data, item), item) for item in overrides or []]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(p) for p in first["loc"])
        got = "" if isinstance(first["input"], dict) else f" (got {first['input']!r})"
        origin = _origin(str(path), loc, set_keys)
        raise ValueError(f"{origin}: {'.'.join(loc) or 'config'}: {first['msg']}{got}") from None


def _origin(source: str, loc: tuple[str, ...], set_keys: list[tuple[tuple[str, ...], str]]) -> str:
    """Where the value at ``loc`` came from: the last ``--set`` covering it, else the file."""
    covering = [item for keys, item in set_keys if loc[: len(keys)] == keys]
    if covering:
        return f"--set {covering[-1]}"
    inside = [f"--set {item}" for keys, item in set_keys if keys[: len(loc)] == loc]
    return " with ".join([source, ", ".join(inside)]) if inside else source


def load_config(
    profile: str | None = None, file: Path | None = None, overrides: list[str] | None = None
) -> RunConfig:
    """Build a RunConfig from a profile name or a YAML file, then apply ``--set`` overrides."""
    return load_model(RunConfig, PROFILE_DIR, "demo", profile, file, overrides)


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML, written into every run directory."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
