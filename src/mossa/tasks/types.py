"""The task suite's value types: examples, instruction templates, tasks and training items.

A task keeps its examples as raw input fields plus a target; an instruction template
turns one example into a ``(prompt, target)`` pair with ``str.format`` fields named after
the input fields. Keeping inputs and templates apart is what lets one example be shown
under any of a task's templates (Flan's recipe) and lets mossa check that no held-out
example leaks into training under another wording.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from mossa.tasks.clusters import UNSEEN_CLUSTER, check_cluster

Metric = Literal["accuracy", "rouge_l", "bleu"]
METRICS: tuple[str, ...] = get_args(Metric)
SPLITS: tuple[str, ...] = ("train", "validation", "test")
TARGET_FIELD = "target"
TASK_NAME_RULE = "1 to 100 ASCII letters, digits, '_', '.' or '-', starting with a letter or digit"
_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

MAX_FIELD_CHARS = 1_000_000
"""Most characters one text field of a task file (an input, a target, a template) may have.

Task files with a longer field are refused. A long news article, as in Flan's summarisation
inputs, is tens of thousands of characters; the limit leaves room for multi-document inputs
(Multi-News) while a field of many millions, which costs minutes and gigabytes to tokenise
(one 50 MB example took 331 s and 20 GB in training), is refused.
"""


def task_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a task (task names become file names), or None if it can."""
    if isinstance(name, str) and _TASK_NAME.fullmatch(name):
        return None
    shown = repr(name)
    shown = shown if len(shown) <= 80 else f"{shown[:60]}..."
    return f"task name {shown}: expected {TASK_NAME_RULE} (task names become file names)"


def text_size_problem(text: str) -> str | None:
    """Why ``text`` is too long for a text field of a task file, or None if it is not."""
    if len(text) <= MAX_FIELD_CHARS:
        return None
    return f"{len(text):,} characters, over the limit of {MAX_FIELD_CHARS:,} per text field"


@dataclass(frozen=True)
class Example:
    """One example: named input strings and the expected output."""

    inputs: Mapping[str, str]
    target: str


def template_fields(text: str) -> tuple[str, ...]:
    """Names of the ``{field}`` placeholders in ``text``, in order of appearance.

    Raises ValueError for malformed braces and for positional (``{}``, ``{0}``) or
    compound (``{a.b}``, ``{a[0]}``) fields, which templates do not support.
    """
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(
            f"malformed braces ({exc}); write literal braces as {{{{ and }}}}"
        ) from None
    names = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(
                f"placeholder {{{name}}} is not a plain field name; use {{field}} with a name "
                "from the example's inputs"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class Template:
    """An instruction template: ``prompt`` and ``target`` are ``str.format`` strings.

    ``prompt`` may use the example's input fields; ``target`` may also use ``{target}``
    (the example's target), which ``prompt`` must never use.
    """

    prompt: str
    target: str = "{target}"

    def __post_init__(self) -> None:
        prompt_fields = template_fields(self.prompt)
        if TARGET_FIELD in prompt_fields:
            raise ValueError("template prompt uses {target}: the answer would leak into the prompt")
        template_fields(self.target)

    @property
    def input_fields(self) -> tuple[str, ...]:
        """Input fields the prompt and target need (``target`` itself excluded)."""
        names = template_fields(self.prompt) + template_fields(self.target)
        return tuple(dict.fromkeys(n for n in names if n != TARGET_FIELD))


@dataclass(frozen=True)
class TrainItem:
    """One rendered example ready for training: its task, prompt and target."""

    task: str
    prompt: str
    target: str


@dataclass(frozen=True)
class Task:
    """A task: cluster, seen flag, templates, three example splits and a metric.

    ``seen`` tasks go into the multi-task SFT mixture; unseen ones only get controls.
    ``source`` says where the examples come from (e.g. ``wikipedia``, ``flan:ANLI``);
    tasks of real datasets also record the ``package`` (``name==version``) the data was
    read from, the data's ``license``, its ``original_split`` (how the dataset's own
    splits became train/validation/test) and the Flan dataset it ``stands_in_for``.
    """

    name: str
    cluster: str
    seen: bool
    templates: tuple[Template, ...]
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    metric: Metric
    source: str
    package: str = ""
    license: str = ""
    original_split: str = ""
    stands_in_for: str = ""

    def __post_init__(self) -> None:
        for name in ("templates", "train", "validation", "test"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problem = task_name_problem(self.name)
        if problem:
            raise ValueError(problem)
        check_cluster(self.cluster, f"task {self.name!r}")
        if not isinstance(self.seen, bool):
            raise ValueError(f"task {self.name!r}: seen must be true or false, got {self.seen!r}")
        if self.seen and self.cluster == UNSEEN_CLUSTER:
            raise ValueError(
                f"task {self.name!r}: tasks of the {UNSEEN_CLUSTER!r} cluster are unseen"
            )
        if self.metric not in METRICS:
            raise ValueError(
                f"task {self.name!r}: metric {self.metric!r} unknown; expected one of {METRICS}"
            )
        if not self.templates:
            raise ValueError(f"task {self.name!r}: needs at least 1 template")
        available = self._check_inputs()
        for i, tpl in enumerate(self.templates):
            missing = [f for f in tpl.input_fields if f not in available]
            if missing:
                raise ValueError(
                    f"task {self.name!r}: template {i} uses {{{missing[0]}}}, which not every "
                    f"example's inputs have (all examples have: {', '.join(sorted(available))})"
                )

    def _check_inputs(self) -> frozenset[str]:
        """Check every example is well formed; return the fields all examples share."""
        common: frozenset[str] | None = None
        for split in SPLITS:
            for i, ex in enumerate(getattr(self, split)):
                if not isinstance(ex, Example):
                    raise ValueError(f"task {self.name!r}: {split}[{i}] is not an Example")
                keys = frozenset(ex.inputs)
                if TARGET_FIELD in keys:
                    raise ValueError(
                        f"task {self.name!r}: {split}[{i}] has an input named "
                        f"{TARGET_FIELD!r}; that name is reserved for the answer"
                    )
                common = keys if common is None else common & keys
        return common if common is not None else frozenset()

    def render(self, example: Example, template: int) -> tuple[str, str]:
        """The ``(prompt, target)`` of ``example`` under template number ``template``."""
        if not 0 <= template < len(self.templates):
            raise ValueError(
                f"task {self.name!r}: template index {template} out of range "
                f"0..{len(self.templates) - 1}"
            )
        tpl = self.templates[template]
        values = dict(example.inputs)
        prompt = tpl.prompt.format_map(values)
        values[TARGET_FIELD] = example.target
        return prompt, tpl.target.format_map(values)

    def split(self, name: str) -> tuple[Example, ...]:
        """The examples of split ``name`` (train, validation or test)."""
        if name not in SPLITS:
            raise ValueError(f"split {name!r} unknown; expected one of {SPLITS}")
        return getattr(self, name)


__all__ = [
    "MAX_FIELD_CHARS",
    "METRICS",
    "SPLITS",
    "TASK_NAME_RULE",
    "Example",
    "Metric",
    "Task",
    "Template",
    "TrainItem",
    "task_name_problem",
    "template_fields",
    "text_size_problem",
]
