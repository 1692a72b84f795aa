"""Ten Flan-style instruction templates per real task, from a body and a few phrasings.

Flan words each dataset's prompts by hand; mossa builds a task's ten templates from its
``body`` (the input fields, e.g. ``"Premise: {premise}\\nHypothesis: {hypothesis}"``),
a list of instructions written for that task, and ten layouts that place them differently
(instruction first or last, ``Q:/A:``, ``Input/Output`` ...). Classification tasks also
show their answer options, as Flan's ``OPTIONS:`` block does. The options and the question
come last, because the trainer cuts long prompts from the left.
"""

from __future__ import annotations

from mossa.tasks.types import Template

N_TEMPLATES = 10

_LAYOUTS = (
    "{body}\n\n{instruction}{options}",
    "{instruction}\n\n{body}{options}",
    "{body}\n{instruction}{options}",
    "{body}\n\nQuestion: {instruction}{options}\nAnswer:",
    "Instruction: {instruction}\n\n{body}{options}\n\nResponse:",
    "{body}{options}\n\n{instruction}",
    "{instruction}\n{body}{options}",
    "Task: {instruction}\n\nInput: {body}{options}\nOutput:",
    "{body}\n\nQ: {instruction}{options}\nA:",
    "Read the following and respond.\n\n{body}\n\n{instruction}{options}",
)
_OPTION_BLOCKS = ("\n\nOPTIONS:\n{options}", "\nChoose from:\n{options}", "\n\nOptions:\n{options}")


def build_templates(
    body: str, instructions: tuple[str, ...], options: bool
) -> tuple[Template, ...]:
    """The ten templates of a task: layout ``i`` with instruction ``i % len(instructions)``.

    ``body`` and the instructions are ``str.format`` text over the example's input
    fields; with ``options`` every template shows the ``{options}`` field.
    """
    if len(instructions) < 3:
        raise ValueError(f"need at least 3 instructions per task, got {len(instructions)}")
    out = []
    for i, layout in enumerate(_LAYOUTS[:N_TEMPLATES]):
        block = _OPTION_BLOCKS[i % len(_OPTION_BLOCKS)] if options else ""
        prompt = (
            layout.replace("{body}", body)
            .replace("{instruction}", instructions[i % len(instructions)])
            .replace("{options}", block)
        )
        out.append(Template(prompt))
    return tuple(out)


def option_lines(options: list[str], numbered: bool = False) -> str:
    """Answer options one per line: ``- text``, or ``1. text`` when ``numbered``."""
    if numbered:
        return "\n".join(f"{i}. {text}" for i, text in enumerate(options, 1))
    return "\n".join(f"- {text}" for text in options)
