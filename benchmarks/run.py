"""`make bench`: run every benchmark side by side in one process and write RESULTS.md.

Each ``benchmarks/bench_*.py`` module exposes ``run(quick=False) -> str`` returning a
markdown section with medians, ratios and the command that reproduces it. Pass module
names to run a subset: ``python -m benchmarks.run bench_cka``; ``--quick`` shrinks sizes
for a smoke check (its numbers are not the ones to quote).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).parent
MODULES = ("bench_cka", "bench_extraction", "bench_training")


def machine_facts() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    return (
        f"- machine: {cpu}, {torch.get_num_threads()} torch threads, "
        f"{platform.system()} {platform.release()}\n"
        f"- python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    sections = []
    for name in args.modules:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        section = module.run(quick=args.quick)
        print(section, flush=True)
        sections.append(section)
    header = (
        "# mossa benchmarks\n\nReproduce: `make bench` (all) or "
        "`.venv/bin/python -m benchmarks.run bench_cka` (one). Medians of repeated runs on a "
        "shared, noisy 2-core machine; ratios are measured side by side in one process.\n\n"
        + machine_facts()
    )
    if args.quick:
        print("--quick: RESULTS.md not written (sizes are not the quoted ones)")
        return
    args.out.write_text(header + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
