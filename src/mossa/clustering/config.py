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

    n_tasks: PositiveInt = Field(50, description="Tasks in the suite (k of k-means).")
    group_size: PositiveInt = Field(
        50, description="Tasks per group; the tasks of a group share one input set."
    )
    inputs_per_task: PositiveInt = Field(
        5, description="Input tokens each task is defined on (its input -> output mappings)."
    )
    n_input_tokens: PositiveInt = Field(5, description="Input tokens in the vocabulary.")
    n_output_tokens: PositiveInt = Field(40, description="Output tokens in the vocabulary.")
    n_instruction_words: PositiveInt = Field(
        150,
        description="Instruction words in the vocabulary: each task's core words, the rest "
        "shared filler words.",
    )
    core_words: PositiveInt = Field(
        2,
        description="Words of a task's core: a word sequence of its own, in every one of its "
        "instructions.",
    )
    regexes_per_task: PositiveInt = Field(
        1,
        description="M: instruction distributions per task, each a regex of filler atoms "
        "around the task's core.",
    )
    variants_per_task: PositiveInt = Field(
        150, description="Distinct instruction strings per task; at least 2."
    )
    min_atoms: PositiveInt = Field(
        2, description="Filler atoms (an alternation with a quantifier) per regex, at least."
    )
    max_atoms: PositiveInt = Field(4, description="Filler atoms per regex, at most.")
    max_alternatives: PositiveInt = Field(
        3, description="Words in one alternation `(a|b|c)`, at most."
    )
    max_repeat: PositiveInt = Field(2, description="Largest upper bound n of a quantifier `{m,n}`.")
    max_instruction_words: PositiveInt = Field(
        8, description="Words in one instruction string (core included), at most."
    )
    validation_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of each task's instruction strings held out."
    )

    @property
    def n_filler_words(self) -> int:
        """Instruction words no task owns, shared by every task's filler atoms."""
        return self.n_instruction_words - self.n_tasks * self.core_words

    @model_validator(mode="after")
    def _consistent(self) -> RegexTasksConfig:
        if self.min_atoms > self.max_atoms:
            raise ValueError(f"min_atoms ({self.min_atoms}) > max_atoms ({self.max_atoms})")
        if self.inputs_per_task > self.n_input_tokens:
            raise ValueError(
                f"inputs_per_task ({self.inputs_per_task}) > n_input_tokens ({self.n_input_tokens})"
            )
        if self.n_filler_words < self.max_alternatives:
            raise ValueError(
                f"tasks.n_tasks ({self.n_tasks}) is more than the vocabulary can distinguish: "
                f"{self.n_tasks} tasks x {self.core_words} core words leave "
                f"{self.n_filler_words} of n_instruction_words ({self.n_instruction_words}) "
                f"as filler, fewer than max_alternatives ({self.max_alternatives})"
            )
        if self.core_words >= self.max_instruction_words:
            raise ValueError(
                f"core_words ({self.core_words}) leaves no room for filler within "
                f"max_instruction_words ({self.max_instruction_words})"
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

    n_layer: PositiveInt = Field(6, description="Transformer blocks.")
    n_embd: PositiveInt = Field(128, description="Hidden size; a multiple of n_head.")
    n_head: PositiveInt = Field(4, description="Attention heads.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout probability.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> GPT2Config:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class TrainConfig(Section):
    """nanoGPT-style loop: AdamW, linear warmup then cosine decay to zero."""

    steps: PositiveInt = Field(1500, description="Training steps.")
    batch_size: PositiveInt = Field(
        64, description="Training instances per step, drawn with replacement."
    )
    lr: float = Field(2e-3, gt=0, description="Peak learning rate of AdamW.")
    warmup_steps: NonNegativeInt = Field(
        100, description="Linear warmup steps, then cosine decay to zero."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (matrices only).")
    beta2: float = Field(0.95, gt=0, lt=1, description="AdamW beta2.")
    grad_clip: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    loss_on: Literal["all", "output"] = Field(
        "all", description="Causal LM loss on every token, or on the output token only."
    )
    checkpoint_steps: list[NonNegativeInt] = Field(
        [0, 100, 250, 500, 750, 1000],
        description="Steps measured, strictly increasing; the final step is always added.",
    )
    save_checkpoints: bool = Field(
        False, description="Also write `OUT/checkpoints/step_<n>.safetensors`."
    )

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


#: Where the clustered hidden state is taken (docs/clustering.md, "Which state is clustered").
Position = Literal["separator", "last_word", "input", "instruction_mean"]


class ClusterAnalysisConfig(Section):
    """k-means/ARI of hidden states and the rule the report uses to read the result."""

    position: Position = Field(
        "separator",
        description="State clustered: `separator` (the `<sep>` after the instruction, which "
        "sees only the instruction), `last_word` (last instruction word), `input` (the input "
        "token, whose logits predict the output) or `instruction_mean` (mean over the "
        "instruction words).",
    )
    compare_positions: list[Position] = Field(
        [],
        description="Other positions also clustered, as rows of `tables/ari.csv` and a table "
        "in the report; the figure and the verdict use `position`.",
    )
    n_eval_per_task: PositiveInt = Field(
        20, description="Instances per task and split measured (ARI and accuracy)."
    )
    n_init: PositiveInt = Field(
        5, description="k-means initialisations (the best inertia is kept)."
    )
    max_iter: PositiveInt = Field(300, description="k-means iterations at most.")
    finding_margin: float = Field(
        0.1, gt=0, le=1, description='ARI rise that counts as "clearly above" in the reading.'
    )

    @property
    def positions(self) -> list[str]:
        """Every position measured: ``position`` first, then the compared ones."""
        return [self.position, *(p for p in self.compare_positions if p != self.position)]


class ClusteringConfig(Section):
    """The whole clustering experiment."""

    name: Name = Field(
        "regex", description="Experiment name: the output directory is `runs/<name>`."
    )
    seed: int = Field(
        0, description="Seed of the task suite, samples, initialisation, batches and k-means."
    )
    threads: PositiveInt = Field(
        1, description="Torch and k-means threads; more than 1 thrashes on a shared small machine."
    )
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
