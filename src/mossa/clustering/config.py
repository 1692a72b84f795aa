"""Validated configuration of the clustering experiment (its own schema, separate from RunConfig).

A config is a YAML file or a named profile in ``mossa/configs/clustering/``, read with
``yaml.safe_load``; ``--set key=value`` or ``--set section.key=value`` overrides single keys.
Unknown keys and non-finite numbers are errors, so a typo never silently falls back to a
default. Loading, overrides and error messages are those of :mod:`mossa.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from mossa.config import Name, Section, load_model
from mossa.config import profile_names as run_profile_names

PROFILE_DIR = Path(__file__).resolve().parent.parent / "configs" / "clustering"
DEFAULT_PROFILE = "regex"


class RegexTasksConfig(Section):
    """The synthetic task suite: functions over single tokens, named by regex instructions."""

    n_tasks: PositiveInt = 50
    group_size: PositiveInt = 50  # tasks per group; a group shares one input set
    inputs_per_task: PositiveInt = 4
    n_input_tokens: PositiveInt = 4
    n_output_tokens: PositiveInt = 40
    n_instruction_words: PositiveInt = 100
    regexes_per_task: PositiveInt = 3  # instruction distributions per task
    variants_per_task: PositiveInt = 150  # distinct instruction strings per task
    min_atoms: PositiveInt = 2  # atoms (word, alternation, optional, repeat) per regex
    max_atoms: PositiveInt = 4
    max_alternatives: PositiveInt = 3  # words in one alternation (a|b|c)
    max_repeat: PositiveInt = 2  # largest upper bound of a quantifier {m,n}
    max_instruction_words: PositiveInt = 8
    validation_fraction: float = Field(0.2, gt=0, lt=1)  # of each task's instruction strings

    @model_validator(mode="after")
    def _consistent(self) -> RegexTasksConfig:
        if self.min_atoms > self.max_atoms:
            raise ValueError(f"min_atoms ({self.min_atoms}) > max_atoms ({self.max_atoms})")
        if self.inputs_per_task > self.n_input_tokens:
            raise ValueError(
                f"inputs_per_task ({self.inputs_per_task}) > n_input_tokens ({self.n_input_tokens})"
            )
        if self.max_alternatives > self.n_instruction_words:
            raise ValueError(
                f"max_alternatives ({self.max_alternatives}) > n_instruction_words "
                f"({self.n_instruction_words})"
            )
        if min(self.group_size, self.n_tasks) > self.n_output_tokens**self.inputs_per_task:
            raise ValueError(
                f"group_size {self.group_size} exceeds the number of distinct functions "
                f"n_output_tokens**inputs_per_task = {self.n_output_tokens**self.inputs_per_task}"
            )
        if self.variants_per_task < 2:
            raise ValueError("variants_per_task must be >= 2 (train and validation)")
        return self


class GPT2Config(Section):
    """Size of the GPT-2 trained from scratch."""

    n_layer: PositiveInt = 6
    n_embd: PositiveInt = 128
    n_head: PositiveInt = 4
    dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> GPT2Config:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class TrainConfig(Section):
    """nanoGPT-style loop: AdamW, linear warmup then cosine decay to zero."""

    steps: PositiveInt = 1500
    batch_size: PositiveInt = 64
    lr: float = Field(2e-3, gt=0)
    warmup_steps: NonNegativeInt = 100
    weight_decay: float = Field(0.01, ge=0)
    beta2: float = Field(0.95, gt=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    loss_on: Literal["all", "output"] = "all"  # CLM on every token, or the output token only
    checkpoint_steps: list[NonNegativeInt] = [0, 100, 250, 500, 750, 1000]  # + final step
    save_checkpoints: bool = False  # also write OUT/checkpoints/step_<n>.safetensors

    @model_validator(mode="after")
    def _valid_schedule(self) -> TrainConfig:
        if self.warmup_steps > self.steps:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) > steps ({self.steps})")
        ckpt = self.checkpoint_steps
        if not ckpt:
            raise ValueError("checkpoint_steps must list at least one step")
        if ckpt != sorted(set(ckpt)):
            raise ValueError(f"checkpoint_steps must be strictly increasing, got {ckpt}")
        if ckpt[-1] > self.steps:
            raise ValueError(f"checkpoint step {ckpt[-1]} is beyond steps ({self.steps})")
        return self

    @property
    def checkpoints(self) -> list[int]:
        """Steps measured: the configured ones plus the final step."""
        return sorted({*self.checkpoint_steps, self.steps})


class ClusterAnalysisConfig(Section):
    """k-means/ARI of hidden states and the rule the report uses to read the result."""

    n_eval_per_task: PositiveInt = 20  # instances per task and split (ARI and accuracy)
    n_init: PositiveInt = 5  # k-means initialisations (best inertia kept)
    max_iter: PositiveInt = 300
    finding_margin: float = Field(0.1, gt=0, le=1)  # "clearly above": at least this much ARI


class ClusteringConfig(Section):
    """The whole clustering experiment."""

    name: Name = "regex"
    seed: int = 0
    threads: PositiveInt = 1  # torch and k-means threads; >1 thrashes on a shared small machine
    tasks: RegexTasksConfig = RegexTasksConfig()
    model: GPT2Config = GPT2Config()
    training: TrainConfig = TrainConfig()
    analysis: ClusterAnalysisConfig = ClusterAnalysisConfig()


def profile_names() -> list[str]:
    """Names of the bundled clustering profiles."""
    return run_profile_names(PROFILE_DIR)


def load_clustering_config(
    profile: str | None = None, file: Path | None = None, overrides: list[str] | None = None
) -> ClusteringConfig:
    """Build a ClusteringConfig from a profile name or a YAML file, then apply overrides."""
    return load_model(ClusteringConfig, PROFILE_DIR, DEFAULT_PROFILE, profile, file, overrides)


def dump_clustering_config(cfg: ClusteringConfig) -> str:
    """The resolved config as YAML, written into every output directory."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
