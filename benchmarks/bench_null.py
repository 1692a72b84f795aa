"""Permutation null at large n: time and peak memory of the feature-space path.

``mossa.permutation_null`` (linear CKA, debiased) on [2, 50000, 256] float32 with 50
permutations takes the feature-space path (O(n d) memory); the n x n Gram-space path (the
implementation before, still used while one layer's Grams fit 1 GiB) would need about
80 GB there, so it is measured at n = 5000 instead, side by side with the feature path
forced at the same n, and both again at a MOSSA-sized [2, 256, 4096]. Each case runs in a
fresh process, so its peak resident set size (``ru_maxrss``, which includes Python, torch
and the inputs) is its own. Run alone with ``python -m benchmarks.bench_null``
(``--quick``: smaller n), or via ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PERMUTATIONS = 50
CASES = [  # (n, d, path): "auto" is what permutation_null chooses
    (50_000, 256, "auto"),
    (5_000, 256, "gram"),
    (5_000, 256, "feature"),
    (256, 4096, "gram"),
    (256, 4096, "feature"),
]
QUICK_CASES = [(8_000, 256, "auto"), (2_000, 256, "gram"), (2_000, 256, "feature")]
LAYERS = 2
LIMIT_GB = 8.0


def _child(n: int, d: int, path: str, out: str) -> None:
    """Time one permutation null in this process; print JSON, save the samples to ``out``."""
    import torch

    from mossa.similarity import calibration

    rng = np.random.default_rng(0)
    x = rng.standard_normal((LAYERS, n, d), dtype=np.float32)
    y = 0.5 * x + rng.standard_normal((LAYERS, n, d), dtype=np.float32)
    chosen = calibration.null_path("linear", n)
    if path != "auto":  # force the other path at the same n (benchmark only)
        calibration.null_path = lambda kernel, n: path
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = calibration.permutation_null(x, y, n_permutations=PERMUTATIONS, seed=0)
    seconds = time.perf_counter() - start
    np.save(out, result.samples)
    record = {
        "n": n,
        "d": d,
        "path": chosen if path == "auto" else path,
        "seconds": seconds,
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "before_gb": before_kb / 2**20,
        "input_gb": (x.nbytes + y.nbytes) / 2**30,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(record))


def _measure(n: int, d: int, path: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_null", "--child", str(n), str(d), path]
    done = subprocess.run(
        [*cmd, str(out)], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> str:
    """Measure every case in its own process; return a markdown section."""
    cases = QUICK_CASES if quick else CASES
    with tempfile.TemporaryDirectory() as tmp:
        records = []
        for n, d, path in cases:
            out = Path(tmp) / f"{n}-{d}-{path}.npy"
            records.append({**_measure(n, d, path, out), "samples": np.load(out)})
    big = records[0]
    lines = [
        "## Permutation null at large n: feature space vs n x n Grams",
        "",
        "Command: `.venv/bin/python -m benchmarks.bench_null`"
        + (" --quick (smoke sizes: not the numbers to quote)" if quick else "")
        + f"; debiased linear CKA, [{LAYERS}, n, d] float32 inputs, {PERMUTATIONS} "
        f"permutations, one run per case, each in a fresh process ({os.cpu_count()} cores, "
        f"{big['threads']} torch threads, load average at start {os.getloadavg()[0]:.1f}). "
        "Peak memory is the process's peak resident set size (`ru_maxrss`), which includes "
        "Python, torch and the inputs; `before` is that peak just before the call.",
        "",
        "| n | d | path | wall s | peak RSS GB | before GB | inputs GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['n']} | {r['d']} | {r['path']} | {r['seconds']:.1f} | {r['peak_gb']:.2f} "
            f"| {r['before_gb']:.2f} | {r['input_gb']:.2f} |"
        )
    verdict = "met" if big["peak_gb"] < LIMIT_GB else "NOT met"
    gram_at_big = 4 * big["n"] ** 2 * 8 / 1e9  # one layer's n x n float64 temporaries
    lines += [
        "",
        f"At n = {big['n']} the null takes the `{big['path']}` path: peak RSS "
        f"{big['peak_gb']:.2f} GB (target < {LIMIT_GB:.0f} GB: {verdict}). The n x n path "
        f"would hold about {gram_at_big:.0f} GB of float64 Grams per layer there, so it is "
        "measured where its Grams fit the 1 GiB budget (and `permutation_null` uses it):",
    ]
    for gram, feature in zip(records[1::2], records[2::2], strict=True):
        diff = float(np.max(np.abs(gram["samples"] - feature["samples"])))
        ratio = gram["seconds"] / feature["seconds"]
        faster = f"feature {ratio:.1f}x faster" if ratio > 1 else f"Gram {1 / ratio:.1f}x faster"
        lines.append(
            f"- n = {gram['n']}, d = {gram['d']}: feature path {feature['seconds']:.1f} s, "
            f"Gram path {gram['seconds']:.1f} s ({faster}); peak RSS "
            f"{feature['peak_gb']:.2f} vs {gram['peak_gb']:.2f} GB; same permutations, max "
            f"|feature - gram| over the null samples {diff:.1e}."
        )
    lines.append(
        "\nPer permutation the feature path costs 2 n d1 d2 FLOPs and the Gram path a gather "
        "of n² entries, so which is faster depends on d1 d2 against n. The switch is made on "
        "memory alone, so every null that fitted before is unchanged bit for bit."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller n")
    parser.add_argument(
        "--child", nargs=4, metavar=("N", "D", "PATH", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        n, d, path, out = args.child
        _child(int(n), int(d), path, out)
        return
    print(run(quick=args.quick))


if __name__ == "__main__":
    main()
