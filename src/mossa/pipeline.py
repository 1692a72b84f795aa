"""`mossa run`: the stages in order, each skipped when its inputs have not changed.

Every stage reads only the artifacts of earlier stages from the run directory, so any
one can be re-run alone. A stage's inputs are the config sections it depends on; their
hash is kept in RUN/manifest.json. A run directory whose finished stages were made with
different inputs is refused unless ``force``; with it, the changed stages and all later
ones are redone, each stage's own outputs cleared first so nothing stale is reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console

from mossa.config import RunConfig, dump_config
from mossa.store import atomic_write_text

console = Console(stderr=True)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its config dependencies, the outputs it owns, and its runner."""

    name: str
    sections: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[[Path, RunConfig], None]


def _run_tasks(run_dir: Path, cfg: RunConfig) -> None:
    from mossa.task_stage import write_task_artifacts

    write_task_artifacts(run_dir, cfg)


def _run_training(run_dir: Path, cfg: RunConfig) -> None:
    from mossa.task_stage import load_run_tasks
    from mossa.training.stage import run_training

    run_training(run_dir, cfg, load_run_tasks(cfg))


def _run_evaluation(run_dir: Path, cfg: RunConfig) -> None:
    from mossa.evaluation import run_evaluation
    from mossa.task_stage import load_run_tasks

    run_evaluation(run_dir, cfg, load_run_tasks(cfg))


def _run_extraction(run_dir: Path, cfg: RunConfig) -> None:
    from mossa.extraction import run_extraction

    run_extraction(run_dir, cfg)


def _run_analysis(run_dir: Path, cfg: RunConfig) -> None:
    from mossa.analysis.stage import run_analysis

    run_analysis(run_dir, cfg)


def _run_report(run_dir: Path, cfg: RunConfig) -> None:
    from mossa.report.stage import run_report

    run_report(run_dir, cfg)


STAGES: tuple[Stage, ...] = (
    Stage("tasks", ("seed", "tasks"), ("tasks",), _run_tasks),
    Stage("train", ("seed", "tasks", "model", "training"), ("adapters",), _run_training),
    Stage(
        "evaluate",
        ("seed", "tasks", "model", "training", "evaluation"),
        ("eval",),
        _run_evaluation,
    ),
    Stage(
        "extract",
        ("seed", "tasks", "model", "training", "extraction"),
        ("activations",),
        _run_extraction,
    ),
    Stage(
        "analyze",
        ("seed", "tasks", "model", "training", "evaluation", "extraction", "analysis"),
        ("tables",),
        _run_analysis,
    ),
    Stage(
        "report",
        ("seed", "tasks", "model", "training", "evaluation", "extraction", "analysis"),
        ("figures", "report.html"),
        _run_report,
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def stage_hash(cfg: RunConfig, stage: Stage) -> str:
    """Hash of the config sections a stage depends on (executor settings never count)."""
    data = cfg.model_dump(mode="json")
    picked = {k: data[k] for k in stage.sections}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(run_dir: Path) -> dict:
    path = run_dir / "manifest.json"
    if not path.exists():
        return {"stages": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path}: corrupt run manifest ({exc}); delete it to redo every stage"
        ) from None


def _write_manifest(run_dir: Path, manifest: dict) -> None:
    atomic_write_text(run_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def _clear_outputs(run_dir: Path, stage: Stage) -> None:
    for name in stage.outputs:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def changed_stages(run_dir: Path, cfg: RunConfig) -> list[str]:
    """Finished stages of ``run_dir`` whose config sections differ from ``cfg``'s."""
    done = read_manifest(run_dir).get("stages", {})
    return [
        s.name for s in STAGES if s.name in done and done[s.name].get("hash") != stage_hash(cfg, s)
    ]


def check_same_config(run_dir: Path, cfg: RunConfig) -> None:
    """Refuse a run directory made with a different config (ValueError naming what differs)."""
    changed = changed_stages(run_dir, cfg)
    if not changed:
        return
    first = next(s for s in STAGES if s.name == changed[0])
    old_path = run_dir / "config.resolved.yaml"
    differing = list(first.sections)
    try:
        old = yaml.safe_load(old_path.read_text(encoding="utf-8")) or {}
        new = cfg.model_dump(mode="json")
        differing = [k for k in first.sections if old.get(k) != new.get(k)] or differing
    except (OSError, yaml.YAMLError, AttributeError):
        pass  # no readable old config: name the stage's sections
    raise ValueError(
        f"{run_dir} was made with a different config: {', '.join(differing)} differ from "
        f"{old_path}, so finished stages {', '.join(changed)} are out of date. Pass --force to "
        "redo them (and every later stage), or choose another --out"
    )


def plan_stages(run_dir: Path, cfg: RunConfig) -> list[tuple[Stage, str]]:
    """Each stage with what will happen to it: 'run' or 'skip' (finished, same inputs)."""
    done = read_manifest(run_dir).get("stages", {})
    plan, redo = [], False
    for stage in STAGES:
        finished = done.get(stage.name, {}).get("hash") == stage_hash(cfg, stage)
        redo = redo or not finished
        plan.append((stage, "run" if redo else "skip"))
    return plan


def run_pipeline(
    run_dir: Path, cfg: RunConfig, *, force: bool = False, only: str | None = None
) -> dict:
    """Run every stage that is not finished with the same inputs (or just ``only``).

    Without ``force``, a run directory whose finished stages had other inputs is refused
    before anything is touched (see :func:`check_same_config`).
    """
    if not force:
        check_same_config(run_dir, cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.executor.threads is not None:
        import torch

        torch.set_num_threads(cfg.executor.threads)
    atomic_write_text(run_dir / "config.resolved.yaml", dump_config(cfg))
    manifest = read_manifest(run_dir)
    stages = manifest.setdefault("stages", {})
    for stage, action in plan_stages(run_dir, cfg):
        if only is not None and stage.name != only:
            continue
        if action == "skip" and only is None:
            console.print(f"[dim]{stage.name}: finished, inputs unchanged: skipped[/dim]")
            continue
        h = stage_hash(cfg, stage)
        if stages.get(stage.name, {}).get("hash") not in (None, h):
            _clear_outputs(run_dir, stage)
        for later in STAGE_NAMES[STAGE_NAMES.index(stage.name) :]:
            stages.pop(later, None)
        _write_manifest(run_dir, manifest)
        console.print(f"[bold]{stage.name}[/bold] ...")
        t0 = time.perf_counter()
        stage.run(run_dir, cfg)
        seconds = round(time.perf_counter() - t0, 2)
        stages[stage.name] = {"hash": h, "seconds": seconds, "finished": time.time()}
        _write_manifest(run_dir, manifest)
        console.print(f"{stage.name}: done in {seconds:.1f} s")
    return manifest
