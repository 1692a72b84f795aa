"""`make bench`: run every benchmark side by side in one process and write RESULTS.md.

Each ``benchmarks/bench_*.py`` module exposes ``run(quick=False) -> str`` returning a
markdown section with medians, ratios and the command that reproduces it. Pass module
names to run a subset: ``python -m benchmarks.run bench_cka`` replaces that module's
section of RESULTS.md and keeps the others (each section carries its own date);
``--quick`` shrinks sizes for a smoke check (its numbers are not the ones to quote, and
RESULTS.md is left alone).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
MODULES = ("bench_cka", "bench_null", "bench_measures", "bench_extraction", "bench_training")


def machine_facts() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return (
        f"- machine: {cpu}, {torch.get_num_threads()} torch threads, "
        f"{platform.system()} {platform.release()}\n"
        f"- python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}\n"
        f"- date: {_now()}\n"
    )


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def wrap(name: str, section: str) -> str:
    """A module's section between markers, so a later partial run can replace it alone."""
    return f"<!-- {name} -->\n{section.rstrip()}\n\n_Measured {_now()}._\n<!-- /{name} -->"


def kept_sections(text: str) -> dict[str, str]:
    """The marked sections of an existing RESULTS.md, by module name."""
    pattern = re.compile(r"<!-- (bench_\w+) -->\n.*?\n<!-- /\1 -->", re.S)
    return {m.group(1): m.group(0) for m in pattern.finditer(text)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(MODULES)}")
    sections = kept_sections(args.out.read_text(encoding="utf-8")) if args.out.exists() else {}
    for name in args.modules:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        section = module.run(quick=args.quick)
        print(section, flush=True)
        sections[name] = wrap(name, section)
    header = (
        "# mossa benchmarks\n\nReproduce: `make bench` (all) or "
        "`.venv/bin/python -m benchmarks.run bench_cka` (one). Medians of repeated runs on a "
        "shared, noisy 2-core machine; ratios are measured side by side in one process. "
        "Each section says when it was measured; the facts below are of the latest run.\n\n"
        + machine_facts()
    )
    if args.quick:
        print("--quick: RESULTS.md not written (sizes are not the quoted ones)")
        return
    body = "\n\n".join(sections[m] for m in MODULES if m in sections)
    args.out.write_text(header + "\n" + body + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
