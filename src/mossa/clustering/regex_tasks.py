"""Synthetic instruction tasks named by random regular expressions (Wu & Varshney 2025 setting).

Each task is a function over single tokens, given by a few ``input -> output`` pairs. Tasks
come in groups that share one input set, so within a group only the instruction tells the
tasks apart. Each task owns a *core*, a short sequence of instruction words no other task
uses, and M instruction distributions: random regular expressions of filler atoms over the
words no task owns, with the core inserted at a place of each distribution's own (for
instance ``(w112|w147){1,2} w004 w005 w130?``). Sampling strings from them gives the task's
instruction variants, so every instruction belongs to one task only and all distributions of
a task share its core. Variants are split per task into training and validation, so
validation instructions never occur in training. Everything is drawn from one
``numpy.random.Generator`` seeded by ``seed``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np

from mossa.clustering.config import RegexTasksConfig

Words = tuple[str, ...]
_QUANTIFIERS = ((1, 1), (0, 1), (1, 2), (2, 2), (0, 2), (1, 3))  # (low, high) candidates
_MAX_REGEX_DRAWS = 1000
_DRAWS_PER_VARIANT = 50


@dataclass(frozen=True)
class Atom:
    """One regex atom: an alternation of words repeated between ``low`` and ``high`` times."""

    words: Words
    low: int
    high: int

    def text(self) -> str:
        """Regex notation over word tokens, e.g. ``(w1|w2){1,2}`` or ``w7?``."""
        body = self.words[0] if len(self.words) == 1 else f"({'|'.join(self.words)})"
        if (self.low, self.high) == (1, 1):
            return body
        if (self.low, self.high) == (0, 1):
            return f"{body}?"
        if self.low == self.high:
            return f"{body}{{{self.low}}}"
        return f"{body}{{{self.low},{self.high}}}"

    def python_pattern(self) -> str:
        """Pattern for ``re`` over the words joined by single spaces plus a trailing space."""
        alternatives = "|".join(re.escape(w) for w in self.words)
        return f"(?:(?:{alternatives}) ){{{self.low},{self.high}}}"

    def max_strings(self) -> int:
        """Number of distinct word sequences this atom can produce."""
        return sum(len(self.words) ** r for r in range(self.low, self.high + 1))

    def sample(self, rng: np.random.Generator) -> list[str]:
        """Draw a repeat count uniformly, then each repeated word uniformly."""
        count = int(rng.integers(self.low, self.high + 1))
        return [self.words[int(i)] for i in rng.integers(len(self.words), size=count)]


@dataclass(frozen=True)
class InstructionRegex:
    """A concatenation of atoms; one instruction distribution of a task."""

    atoms: tuple[Atom, ...]

    def text(self) -> str:
        """Human-readable regex, atoms separated by spaces."""
        return " ".join(a.text() for a in self.atoms)

    def python_pattern(self) -> str:
        """``re`` pattern fully matching ``" ".join(words) + " "`` iff words is in the language."""
        return "".join(a.python_pattern() for a in self.atoms)

    def matches(self, words: Words) -> bool:
        """Whether a word sequence belongs to this regex's language."""
        return re.fullmatch(self.python_pattern(), " ".join(words) + " ") is not None

    def max_words(self) -> int:
        return sum(a.high for a in self.atoms)

    def max_strings(self) -> int:
        """Upper bound on the number of distinct strings (exact when atoms share no words)."""
        return math.prod(a.max_strings() for a in self.atoms)

    def sample(self, rng: np.random.Generator) -> Words:
        """Draw one non-empty instruction string."""
        while True:
            words = tuple(w for a in self.atoms for w in a.sample(rng))
            if words:
                return words


@dataclass(frozen=True)
class RegexTask:
    """One task: its input -> output function and its instruction variants per split."""

    name: str
    group: int
    core: Words  # in every instruction of the task, and in no other task's
    inputs: Words
    outputs: Words  # outputs[i] is the answer to inputs[i]
    regexes: tuple[InstructionRegex, ...]
    train_instructions: tuple[Words, ...]
    validation_instructions: tuple[Words, ...]

    def answer(self, token: str) -> str:
        """The task's output for an input token."""
        return self.outputs[self.inputs.index(token)]


@dataclass(frozen=True)
class Instance:
    """One sequence ``[instruction; SEP; input; output]`` and the task it belongs to."""

    task: int
    instruction: Words
    input: str
    output: str


@dataclass(frozen=True)
class RegexTaskSuite:
    """All tasks plus the token inventories they draw from."""

    instruction_words: Words
    input_tokens: Words
    output_tokens: Words
    tasks: tuple[RegexTask, ...]

    @property
    def max_instruction_words(self) -> int:
        return max(
            len(i) for t in self.tasks for i in t.train_instructions + t.validation_instructions
        )

    def instances(self, split: str) -> list[Instance]:
        """Every (instruction, input) pair of a split, task by task.

        Parameters
        ----------
        split : {"train", "validation"}
        """
        if split not in ("train", "validation"):
            raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
        out = []
        for index, task in enumerate(self.tasks):
            instructions = (
                task.train_instructions if split == "train" else task.validation_instructions
            )
            for instruction in instructions:
                for x, y in zip(task.inputs, task.outputs, strict=True):
                    out.append(Instance(index, instruction, x, y))
        return out

    def to_json(self) -> str:
        """Canonical JSON of the whole suite (regexes as text, instructions as strings)."""
        tasks = [
            {
                "name": t.name,
                "group": t.group,
                "core": " ".join(t.core),
                "mapping": dict(zip(t.inputs, t.outputs, strict=True)),
                "regexes": [r.text() for r in t.regexes],
                "n_train_instructions": len(t.train_instructions),
                "n_validation_instructions": len(t.validation_instructions),
                "train_instructions": [" ".join(i) for i in t.train_instructions],
                "validation_instructions": [" ".join(i) for i in t.validation_instructions],
            }
            for t in self.tasks
        ]
        return json.dumps({"tasks": tasks}, indent=1, sort_keys=False)


def _task_regex(
    cfg: RegexTasksConfig,
    core: Words,
    filler: Words,
    rng: np.random.Generator,
    min_strings: int,
) -> InstructionRegex:
    """One instruction distribution: random filler atoms with the core inserted among them."""
    quantifiers = [q for q in _QUANTIFIERS if q[1] <= cfg.max_repeat]
    max_filler_words = cfg.max_instruction_words - len(core)
    for _ in range(_MAX_REGEX_DRAWS):
        atoms = []
        for _ in range(int(rng.integers(cfg.min_atoms, cfg.max_atoms + 1))):
            n_alt = int(rng.integers(1, cfg.max_alternatives + 1))
            chosen = tuple(filler[int(i)] for i in rng.choice(len(filler), n_alt, replace=False))
            low, high = quantifiers[int(rng.integers(len(quantifiers)))]
            atoms.append(Atom(chosen, low, high))
        fill = InstructionRegex(tuple(atoms))
        if fill.max_words() <= max_filler_words and fill.max_strings() >= min_strings:
            at = int(rng.integers(len(atoms) + 1))
            core_atoms = [Atom((w,), 1, 1) for w in core]
            return InstructionRegex(tuple(atoms[:at] + core_atoms + atoms[at:]))
    raise ValueError(
        f"no random regex with >= {min_strings} strings and <= {max_filler_words} filler "
        "words found; raise tasks.max_instruction_words, max_alternatives or max_atoms, or "
        "lower variants_per_task"
    )


def _distinct_function(
    cfg: RegexTasksConfig, taken: list[tuple[int, ...]], rng: np.random.Generator
) -> tuple[int, ...]:
    while True:  # terminates: the config guarantees enough distinct functions per group
        outputs = tuple(int(i) for i in rng.integers(cfg.n_output_tokens, size=cfg.inputs_per_task))
        if outputs not in taken:
            return outputs


def generate_suite(cfg: RegexTasksConfig, seed: int) -> RegexTaskSuite:
    """Generate the task suite; the same ``(cfg, seed)`` always gives the same suite.

    Task ``t`` owns the words ``t * core_words`` to ``(t + 1) * core_words - 1`` as its core;
    the remaining words are the shared filler.
    """
    rng = np.random.default_rng(seed)
    words = tuple(f"w{i:03d}" for i in range(cfg.n_instruction_words))
    filler = words[cfg.n_tasks * cfg.core_words :]
    inputs = tuple(f"x{i:02d}" for i in range(cfg.n_input_tokens))
    outputs = tuple(f"y{i:02d}" for i in range(cfg.n_output_tokens))
    min_strings = math.ceil(2 * cfg.variants_per_task / cfg.regexes_per_task)
    tasks = []
    group_inputs: list[int] = []
    group_functions: list[tuple[int, ...]] = []
    for t in range(cfg.n_tasks):
        group = t // cfg.group_size
        if t % cfg.group_size == 0:
            group_inputs = sorted(
                int(i) for i in rng.choice(len(inputs), cfg.inputs_per_task, replace=False)
            )
            group_functions = []
        function = _distinct_function(cfg, group_functions, rng)
        group_functions.append(function)
        core = words[t * cfg.core_words : (t + 1) * cfg.core_words]
        regexes = tuple(
            _task_regex(cfg, core, filler, rng, min_strings) for _ in range(cfg.regexes_per_task)
        )
        variants: list[Words] = []
        seen: set[Words] = set()
        for _ in range(_DRAWS_PER_VARIANT * cfg.variants_per_task):
            if len(variants) == cfg.variants_per_task:
                break
            s = regexes[int(rng.integers(len(regexes)))].sample(rng)
            if s not in seen:
                variants.append(s)
                seen.add(s)
        if len(variants) < cfg.variants_per_task:
            raise ValueError(
                f"task {t}: only {len(variants)} distinct instructions of "
                f"variants_per_task={cfg.variants_per_task}; raise tasks.n_instruction_words "
                "or max_instruction_words, or lower variants_per_task"
            )
        order = rng.permutation(len(variants))
        n_val = max(1, round(cfg.validation_fraction * len(variants)))
        tasks.append(
            RegexTask(
                name=f"task{t:02d}",
                group=group,
                core=core,
                inputs=tuple(inputs[i] for i in group_inputs),
                outputs=tuple(outputs[i] for i in function),
                regexes=regexes,
                train_instructions=tuple(variants[i] for i in order[n_val:]),
                validation_instructions=tuple(variants[i] for i in order[:n_val]),
            )
        )
    return RegexTaskSuite(words, inputs, outputs, tuple(tasks))


__all__ = [
    "Atom",
    "InstructionRegex",
    "Instance",
    "RegexTask",
    "RegexTaskSuite",
    "generate_suite",
]
