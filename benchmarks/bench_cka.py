"""CKA speed: ``mossa.cka`` against a Kornblith-style per-layer numpy float64 loop.

The baseline is what reference MOSSA scripts run: for each layer, upcast to float64,
centre the columns and compute feature-space linear CKA
||Xᵀ Y||_F^2 / (||Xᵀ X||_F ||Yᵀ Y||_F) with numpy (``x.T.dot(x)`` lets numpy use a
symmetric rank-k update, half a GEMM). mossa runs all layers batched in torch (float32
GEMMs, float64 reductions; Gram or feature-space form chosen by FLOP count).

Inputs are float32 activations [L, n, d] (what the activation store holds). Each timing
is the median of several repeats, baseline and mossa interleaved so that load from other
processes hits both alike. Run alone with ``python -m benchmarks.bench_cka`` (``--quick``
for a smoke run with fewer layers), or with everything else via ``make bench``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info

from mossa.similarity import cka
from mossa.similarity.cka import linear_plan

SHAPES = [(33, 256, 4096), (33, 2000, 1024)]  # [L, n, d]: Llama-2-7B-sized and many-prompt
TARGETS = {(256, 4096): 5.0, (2000, 1024): 1.5}  # required speed-up over the baseline
REPEATS = 5
QUICK_LAYERS = 4
QUICK_REPEATS = 2
SEED = 0


def feature_space_cka_float64(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
    """Linear CKA of one layer pair in feature space, float64 numpy (the baseline)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    cross = np.linalg.norm(x.T.dot(y)) ** 2
    self_x = np.linalg.norm(x.T.dot(x)) ** 2
    self_y = np.linalg.norm(y.T.dot(y)) ** 2
    if debiased:  # Song et al. 2012 written for centred features (see docs/similarity.md)
        n = x.shape[0]
        row_x = np.einsum("ij,ij->i", x, x)
        row_y = np.einsum("ij,ij->i", y, y)

        def unbiased(t: float, a: np.ndarray, b: np.ndarray) -> float:
            return t - n / (n - 2) * a.dot(b) + a.sum() * b.sum() / ((n - 1) * (n - 2))

        cross = unbiased(cross, row_x, row_y)
        self_x = unbiased(self_x, row_x, row_x)
        self_y = unbiased(self_y, row_y, row_y)
    return cross / np.sqrt(self_x * self_y)


def baseline(xs: np.ndarray, ys: np.ndarray, debiased: bool = False) -> np.ndarray:
    """One layer at a time, as the reference scripts do."""
    return np.array(
        [feature_space_cka_float64(a, b, debiased) for a, b in zip(xs, ys, strict=True)]
    )


def _activations(n_layers: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((n_layers, n, d), dtype=np.float32)
    y = 0.5 * x + rng.standard_normal((n_layers, n, d), dtype=np.float32)
    return x, y


def _seconds(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _gemm_rate(n: int, d: int, repeats: int) -> float:
    """Measured float32 GEMM GFLOP/s (torch, current threads) on the path's own operand sizes."""
    gen = torch.Generator().manual_seed(SEED)
    a = torch.randn(4, n, d, generator=gen)
    if linear_plan(n, d, d).path == "gram":

        def op() -> torch.Tensor:
            return torch.bmm(a, a.mT)

        flops = 4 * 2 * n * n * d
    else:
        b = torch.randn(4, n, d, generator=gen)

        def op() -> torch.Tensor:
            return torch.bmm(a.mT, b)

        flops = 4 * 2 * n * d * d
    op()
    return flops / statistics.median(_seconds(op)[0] for _ in range(repeats)) / 1e9


def _machine() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    blas = [
        f"{i['internal_api']} {i.get('version') or ''} ({i.get('architecture', '-')}, "
        f"{i['num_threads']} threads)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    return [
        f"- machine: {cpu}, {os.cpu_count()} cores, load average at start "
        f"{os.getloadavg()[0]:.1f} (shared with other jobs: numbers are noisy, hence medians)",
        f"- torch {torch.__version__} ({torch.get_num_threads()} threads, "
        f"{torch.backends.cpu.get_cpu_capability()}), numpy {np.__version__} "
        f"(BLAS: {'; '.join(blas)}); OPENBLAS_CORETYPE="
        f"{os.environ.get('OPENBLAS_CORETYPE', 'unset')}",
    ]


def run(quick: bool = False) -> str:
    """Time both shapes; return a markdown section."""
    repeats = QUICK_REPEATS if quick else REPEATS
    lines = [
        "## CKA: `mossa.cka` vs per-layer numpy float64 feature-space CKA",
        "",
        "Command: `make bench` (all benchmarks) or `.venv/bin/python -m benchmarks.bench_cka`"
        + (" --quick (smoke sizes: not the numbers to quote)" if quick else ""),
        *_machine(),
        f"- float32 inputs; medians of {repeats} interleaved repeats; speed-up = baseline / "
        "mossa; agreement = max |mossa - baseline| (must be < 1e-5); GFLOP/s counts the "
        "FLOPs of the path mossa ran, against a torch float32 GEMM of the same operand sizes",
        "",
        "| [L, n, d] | path | baseline s | mossa biased s | speed-up | mossa debiased s "
        "| speed-up | target | agreement biased / debiased | mossa GFLOP/s | GEMM GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cka(*_activations(1, 64, 64))  # warm up torch's thread pool
    for n_layers, n, d in SHAPES:
        n_layers = QUICK_LAYERS if quick else n_layers
        x, y = _activations(n_layers, n, d)
        plan = linear_plan(n, d, d)
        times: dict[str, list[float]] = {"base": [], "biased": [], "debiased": []}
        diffs = {}
        reference_debiased = baseline(x, y, debiased=True)
        for _ in range(repeats):
            t, reference = _seconds(lambda: baseline(x, y))  # noqa: B023 (run at once)
            times["base"].append(t)
            for debiased in (False, True):
                key = "debiased" if debiased else "biased"
                t, ours = _seconds(lambda: cka(x, y, debiased=debiased))  # noqa: B023
                times[key].append(t)
                want = reference_debiased if debiased else reference
                diffs[key] = float(np.max(np.abs(ours - want)))
        med = {k: statistics.median(v) for k, v in times.items()}
        gflops = n_layers * plan.flops / med["biased"] / 1e9
        target = TARGETS[(n, d)]
        speed_b, speed_d = med["base"] / med["biased"], med["base"] / med["debiased"]
        verdict = "met" if min(speed_b, speed_d) >= target else "NOT met"
        agree = "ok" if max(diffs.values()) < 1e-5 else "FAIL"
        lines.append(
            f"| [{n_layers}, {n}, {d}] | {plan.path} | {med['base']:.2f} | {med['biased']:.3f} "
            f"| {speed_b:.2f}x | {med['debiased']:.3f} | {speed_d:.2f}x | >= {target}x ({verdict}) "
            f"| {diffs['biased']:.1e} / {diffs['debiased']:.1e} ({agree}) | {gflops:.0f} "
            f"| {_gemm_rate(n, d, repeats):.0f} |"
        )
    lines.append("")
    lines.append(
        "Paths: `gram` = two batched n x n Grams (2 n^2 (d1 + d2) FLOPs); `feature` = "
        "Xᵀ Y plus the self terms Xᵀ X from upper-triangular column panels "
        "(2 n d1 d2 + ~1.25 n (d1^2 + d2^2) FLOPs). Baseline and mossa both run with the "
        "thread counts listed above."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer layers and repeats")
    print(run(quick=parser.parse_args().quick))


if __name__ == "__main__":
    main()
