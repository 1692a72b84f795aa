"""The study behind the defaults: final ARI by M (distributions per task), position and seed.

Position only changes which state is clustered, so one trained model gives the ARI of every
position: each (M, seed) is one run of the experiment with every position compared and
ARI measured at the first checkpoint (step 0) and the final step only. Writes, in
``out_dir``: one experiment directory per run (``M<m>_seed<s>/``), ``study.csv`` (one row
per run and position) and ``study.md`` (the table docs/clustering.md quotes).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import get_args

from mossa.clustering.config import ClusteringConfig, Position
from mossa.clustering.experiment import run_clustering
from mossa.clustering.report import POSITION_NAMES, read_accuracy, read_ari, write_csv
from mossa.io import atomic_write_text

STUDY_MS = (1, 2, 3, 5)
STUDY_COLUMNS = (
    "m",
    "seed",
    "position",
    "deepest_first",
    "deepest_final",
    "layer0_final",
    "accuracy",
    "wall_time_s",
)


def study_config(cfg: ClusteringConfig, m: int, seed: int) -> ClusteringConfig:
    """``cfg`` with M distributions per task, the seed, every position and two checkpoints."""
    data = cfg.model_dump(mode="json")
    data["name"] = f"{cfg.name}-M{m}-seed{seed}"
    data["seed"] = seed
    data["tasks"]["regexes_per_task"] = m
    data["training"]["checkpoint_steps"] = [0]
    data["analysis"]["compare_positions"] = list(get_args(Position))
    return ClusteringConfig.model_validate(data)


def run_study(
    cfg: ClusteringConfig,
    out_dir: Path,
    ms: tuple[int, ...] = STUDY_MS,
    seeds: tuple[int, ...] | None = None,
) -> list[dict]:
    """Run the experiment for every (M, seed) and tabulate validation ARI per position.

    ``seeds`` defaults to ``(cfg.seed, cfg.seed + 1)``. Returns the rows of ``study.csv``:
    per run and position the deepest layer's validation ARI at step 0 and at the final step,
    layer 0's at the final step, the final validation accuracy and the run's wall time.
    """
    out = Path(out_dir)
    rows = []
    for m in ms:
        for seed in seeds if seeds is not None else (cfg.seed, cfg.seed + 1):
            run_cfg = study_config(cfg, m, seed)
            summary = run_clustering(run_cfg, out / f"M{m}_seed{seed}")
            ari = read_ari(out / f"M{m}_seed{seed}" / "tables" / "ari.csv")
            accuracy = read_accuracy(out / f"M{m}_seed{seed}" / "tables" / "accuracy.csv")
            final, deepest = run_cfg.training.steps, run_cfg.model.n_layer
            value = {
                (r["step"], r["layer"], r["position"]): r["ari"]
                for r in ari
                if r["split"] == "validation"
            }
            for position in run_cfg.analysis.positions:
                rows.append(
                    {
                        "m": m,
                        "seed": seed,
                        "position": position,
                        "deepest_first": value[(0, deepest, position)],
                        "deepest_final": value[(final, deepest, position)],
                        "layer0_final": value[(final, 0, position)],
                        "accuracy": next(
                            r["accuracy"]
                            for r in accuracy
                            if r["step"] == final and r["split"] == "validation"
                        ),
                        "wall_time_s": summary["wall_time_s"],
                    }
                )
    write_csv(out / "study.csv", STUDY_COLUMNS, rows)
    atomic_write_text(out / "study.md", study_markdown(rows, cfg.model.n_layer))
    return rows


def study_markdown(rows: list[dict], deepest: int) -> str:
    """Markdown table: per M and position, the seeds' validation ARI values side by side."""
    buf = io.StringIO()
    buf.write(
        f"| M | position | layer {deepest}, step 0 | layer {deepest}, final | "
        "layer 0, final | val. accuracy |\n|---|---|---|---|---|---|\n"
    )
    keys = dict.fromkeys((r["m"], r["position"]) for r in rows)
    for m, position in keys:
        runs = [r for r in rows if (r["m"], r["position"]) == (m, position)]
        cells = [
            " / ".join(f"{r[column]:.3f}" for r in runs)
            for column in ("deepest_first", "deepest_final", "layer0_final", "accuracy")
        ]
        buf.write(f"| {m} | {POSITION_NAMES[position]} | {' | '.join(cells)} |\n")
    return buf.getvalue()
