"""The clustering experiment end to end: tasks -> GPT-2 from scratch -> ARI per layer and step.

Writes into ``out_dir``: ``config.resolved.yaml``, ``tasks.json`` (the generated suite),
``tables/ari.csv`` (step, layer, split, position, ari), ``tables/accuracy.csv`` (step, split,
accuracy), ``tables/train_loss.csv`` (step, train_loss), ``figures/ari.png``,
``figures/accuracy.png``, ``report.html``, ``summary.json`` and, when configured,
``checkpoints/step_<n>.safetensors``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from mossa.clustering.config import ClusteringConfig, dump_clustering_config
from mossa.clustering.model import build_model, states_and_predictions
from mossa.clustering.over_steps import checkpoint_ari_rows
from mossa.clustering.regex_tasks import generate_suite
from mossa.clustering.report import ACCURACY_COLUMNS, ARI_COLUMNS, write_csv, write_report
from mossa.clustering.tokens import WordTokenizer, encode_instances, sample_per_task
from mossa.clustering.train import train_with_checkpoints
from mossa.io import atomic_write_bytes, atomic_write_text


@contextmanager
def _thread_limit(n: int) -> Iterator[None]:
    """Limit torch and BLAS/OpenMP (k-means) threads, restoring torch's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


def _setup_text(cfg: ClusteringConfig, n_train: int, n_val: int, n_params: int) -> str:
    t, m, tr, a = cfg.tasks, cfg.model, cfg.training, cfg.analysis
    sharing = (
        f"all sharing the same {t.inputs_per_task} input tokens"
        if t.group_size >= t.n_tasks
        else f"in groups of {t.group_size} sharing {t.inputs_per_task} input tokens"
    )
    return (
        f"{t.n_tasks} tasks, {sharing}; each task a core of {t.core_words} words of its own "
        f"and {t.regexes_per_task} instruction regex(es) of filler atoms around it; "
        f"{n_train} training and "
        f"{n_val} validation instruction strings per task (each paired with every input). "
        f"GPT-2 from scratch: {m.n_layer} layers, width {m.n_embd}, {m.n_head} heads "
        f"({n_params:,} parameters); {tr.steps} steps of batch {tr.batch_size}, AdamW lr "
        f"{tr.lr:g}, {tr.warmup_steps} warmup steps then cosine decay, loss on "
        f"{'every token' if tr.loss_on == 'all' else 'the output token'}. "
        f"{a.n_eval_per_task} instances per task and split for ARI and accuracy; k-means "
        f"n_init={a.n_init}. Seed {cfg.seed}."
    )


def run_clustering(cfg: ClusteringConfig, out_dir: Path) -> dict:
    """Run the experiment, write every output into ``out_dir`` and return a summary.

    Returns
    -------
    dict with ``out_dir``, ``report`` (the report's path), ``wall_time_s``, ``final_step``,
    ``position`` (the clustered state), ``final_ari`` ({split: [ARI per layer]} at that
    position), ``final_accuracy`` ({split: float}) and ``finding`` (the report's reading).
    """
    start = time.perf_counter()
    out = Path(out_dir)
    atomic_write_text(out / "config.resolved.yaml", dump_clustering_config(cfg))
    with _thread_limit(cfg.threads):
        suite = generate_suite(cfg.tasks, cfg.seed)
        atomic_write_text(out / "tasks.json", suite.to_json())
        tokenizer = WordTokenizer(suite)
        seq_len = suite.max_instruction_words + 3
        train = encode_instances(suite.instances("train"), tokenizer, seq_len)
        validation = encode_instances(suite.instances("validation"), tokenizer, seq_len)
        n_eval = cfg.analysis.n_eval_per_task
        eval_sets = {
            "train": sample_per_task(train, n_eval, cfg.seed + 1),
            "validation": sample_per_task(validation, n_eval, cfg.seed + 2),
        }
        model = build_model(cfg.model, len(tokenizer), seq_len, cfg.seed)

        positions = cfg.analysis.positions
        snapshots: list[tuple[int, str, dict[str, np.ndarray]]] = []
        accuracy_rows, loss_rows = [], []
        for ckpt in train_with_checkpoints(model, train, cfg.training, cfg.seed + 3):
            if cfg.training.save_checkpoints:
                weights = {
                    k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
                }
                atomic_write_bytes(
                    out / "checkpoints" / f"step_{ckpt.step}.safetensors", save(weights)
                )
            loss_rows.append({"step": ckpt.step, "train_loss": ckpt.train_loss})
            for split, data in eval_sets.items():
                states, predictions = states_and_predictions(model, data, positions)
                accuracy = float((predictions == data.target.numpy()).mean())
                accuracy_rows.append({"step": ckpt.step, "split": split, "accuracy": accuracy})
                snapshots.append((ckpt.step, split, states))

        ari_rows = []
        for step, split, states in tqdm(
            snapshots, desc="k-means/ARI", unit="checkpoint", disable=None
        ):
            labels = {"task": eval_sets[split].task.numpy()}
            for position in positions:
                ari_rows += checkpoint_ari_rows(
                    step,
                    split,
                    states[position],
                    labels,
                    n_init=cfg.analysis.n_init,
                    max_iter=cfg.analysis.max_iter,
                    seed=cfg.seed,
                    extra={"position": position},
                )

    write_csv(out / "tables" / "ari.csv", ARI_COLUMNS, ari_rows)
    write_csv(out / "tables" / "accuracy.csv", ACCURACY_COLUMNS, accuracy_rows)
    write_csv(out / "tables" / "train_loss.csv", ("step", "train_loss"), loss_rows)
    n_params = sum(p.numel() for p in model.parameters())
    task0 = suite.tasks[0]
    setup = _setup_text(
        cfg, len(task0.train_instructions), len(task0.validation_instructions), n_params
    )
    wall = time.perf_counter() - start
    finding = write_report(
        out,
        name=cfg.name,
        position=cfg.analysis.position,
        margin=cfg.analysis.finding_margin,
        setup=setup,
        wall_time=f"{wall:.0f} s with {cfg.threads} torch/k-means thread(s)",
    )
    final_step = cfg.training.steps
    summary = {
        "out_dir": str(out),
        "report": str(out / "report.html"),
        "wall_time_s": round(wall, 1),
        "final_step": final_step,
        "position": cfg.analysis.position,
        "final_ari": {
            split: [
                r["ari"]
                for r in ari_rows
                if r["step"] == final_step
                and r["split"] == split
                and r["position"] == cfg.analysis.position
            ]
            for split in eval_sets
        },
        "final_accuracy": {
            r["split"]: r["accuracy"] for r in accuracy_rows if r["step"] == final_step
        },
        "finding": {
            "reproduced": finding.reproduced,
            "rise": round(finding.rise, 4),
            "gap": round(finding.gap, 4),
            "margin": finding.margin,
            "paper_magnitude": finding.paper_magnitude,
            "sentence": finding.sentence(),
        },
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
