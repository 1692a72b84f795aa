"""`mossa run`: the stages in order, each skipped when its inputs have not changed.

Every stage reads only the artifacts of earlier stages from the run directory, so any
one can be re-run alone. A stage's inputs are the config sections it depends on; their
hash is kept in RUN/manifest.json with the stage's status (running, done or failed). A
run directory whose finished stages were made with different inputs is refused unless
``force``; with it, the changed stages and all later ones are redone, each stage's own
outputs cleared first so nothing stale is reused. A stage that fails (or a process
killed during it) leaves it "failed" or "running", never "done", so a later stage run
alone refuses its outputs, and the next ``mossa run`` resumes it in place.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from rich.console import Console

from mossa.config import RunConfig, dump_config
from mossa.io import CorruptRunFile, atomic_write_text, read_json
from mossa.run_dir import RunDir

console = Console(stderr=True)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its config dependencies, the outputs it owns, and its runner.

    ``run(run_dir, cfg, **options)`` is the ``run`` function of the stage's module in
    :mod:`mossa.pipeline` (imported when the stage runs, so a command that runs one stage
    does not import the others' libraries).
    """

    name: str
    sections: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[..., None]


def _stage_module(module: str) -> Callable[..., None]:
    def run(run_dir: Path, cfg: RunConfig, **options) -> None:
        importlib.import_module(f"mossa.pipeline.{module}").run(run_dir, cfg, **options)

    run.__name__ = f"mossa.pipeline.{module}.run"
    return run


_TRAINED = ("seed", "tasks", "model", "training")
_ANALYSED = (*_TRAINED, "evaluation", "extraction", "analysis")
STAGES: tuple[Stage, ...] = (
    Stage("tasks", ("seed", "tasks"), ("tasks",), _stage_module("tasks")),
    Stage("train", _TRAINED, ("adapters",), _stage_module("train")),
    Stage("evaluate", (*_TRAINED, "evaluation"), ("eval",), _stage_module("evaluate")),
    Stage("extract", (*_TRAINED, "extraction"), ("activations",), _stage_module("extract")),
    Stage("analyze", _ANALYSED, ("tables",), _stage_module("analyze")),
    Stage("report", _ANALYSED, ("figures", "report.html"), _stage_module("report")),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def stage_hash(cfg: RunConfig, stage: Stage) -> str:
    """Hash of the config sections a stage depends on (executor settings never count).

    Stages that run the model also depend on the precision it runs in (as resolved on
    this machine) and on quantisation; float32 unquantised adds nothing, so runs made
    before the compute section keep their hashes.
    """
    data = cfg.model_dump(mode="json")
    picked = {k: data[k] for k in stage.sections}
    if "model" in stage.sections:
        from mossa.models.device import precision

        if precision(cfg.compute) != "float32":
            picked["precision"] = precision(cfg.compute)
        if cfg.compute.load_in is not None:
            picked["load_in"] = cfg.compute.load_in
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(run_dir: Path) -> dict:
    """RUN/manifest.json: per stage its input hash, status and time (empty when new)."""
    path = RunDir(run_dir).manifest
    if not path.exists():
        return {"stages": {}}
    try:
        manifest = read_json(path, dict, stage="tasks", run_dir=run_dir)
        if not isinstance(manifest.get("stages"), dict) or not all(
            isinstance(v, dict) for v in manifest["stages"].values()
        ):
            raise ValueError(f"{path}: 'stages' must map stage names to objects")
    except ValueError as exc:
        problem = str(exc).split("; rebuild it with")[0]
        raise CorruptRunFile(
            f"{problem} (corrupt run manifest); delete it to redo every stage"
        ) from None
    return manifest


def finished(manifest: dict, cfg: RunConfig, stage: Stage) -> bool:
    """True when ``stage`` finished (did not fail) with the inputs ``cfg`` gives it."""
    entry = manifest.get("stages", {}).get(stage.name, {})
    return entry.get("hash") == stage_hash(cfg, stage) and entry.get("status", "done") == "done"


def _write_manifest(run_dir: Path, manifest: dict) -> None:
    atomic_write_text(RunDir(run_dir).manifest, json.dumps(manifest, indent=2) + "\n")


def _clear_outputs(run_dir: Path, stage: Stage) -> None:
    for name in stage.outputs:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def changed_stages(run_dir: Path, cfg: RunConfig) -> list[str]:
    """Finished stages of ``run_dir`` whose config sections differ from ``cfg``'s."""
    done = read_manifest(run_dir)["stages"]
    return [
        s.name for s in STAGES if s.name in done and done[s.name].get("hash") != stage_hash(cfg, s)
    ]


def check_same_config(run_dir: Path, cfg: RunConfig) -> None:
    """Refuse a run directory made with a different config (ValueError naming what differs)."""
    changed = changed_stages(run_dir, cfg)
    if not changed:
        return
    first = next(s for s in STAGES if s.name == changed[0])
    old_path = RunDir(run_dir).config
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


def plan_stages(
    run_dir: Path, cfg: RunConfig, *, redo: str | None = None
) -> list[tuple[Stage, str]]:
    """Each stage with what will happen to it: 'run' or 'skip' (finished, same inputs).

    ``redo`` names a stage to run again although it is finished (with all later ones).
    """
    manifest = read_manifest(run_dir)
    plan, again = [], False
    for stage in STAGES:
        again = again or stage.name == redo or not finished(manifest, cfg, stage)
        plan.append((stage, "run" if again else "skip"))
    return plan


def _check_stage_name(name: str | None, option: str) -> None:
    if name is not None and name not in STAGE_NAMES:
        raise ValueError(f"{option}: unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


def _check_earlier_finished(run_dir: Path, cfg: RunConfig, only: str) -> None:
    """Refuse to run ``only`` on outputs of earlier stages that the manifest records as
    failed, interrupted or made with other inputs. (A stage it does not record, as in a
    run directory assembled by hand, is left to the stage's own checks of its inputs.)"""
    manifest = read_manifest(run_dir)
    for stage in STAGES[: STAGE_NAMES.index(only)]:
        entry = manifest["stages"].get(stage.name)
        if entry is not None and not finished(manifest, cfg, stage):
            status = entry.get("status")
            why = {"failed": "failed", "running": "was interrupted"}.get(status, "is out of date")
            raise ValueError(
                f"{run_dir}: stage {stage.name} {why}, so its outputs cannot be used by "
                f"{only}; finish the run first with `mossa run --out {run_dir}`"
            )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".rstrip(": ")


def run_pipeline(
    run_dir: Path,
    cfg: RunConfig,
    *,
    force: bool = False,
    only: str | None = None,
    redo: str | None = None,
    options: dict | None = None,
) -> dict:
    """Run every stage that is not finished with the same inputs (or just ``only``).

    Without ``force``, a run directory whose finished stages had other inputs is refused
    before anything is touched (see :func:`check_same_config`). ``only`` runs one stage,
    and only when every earlier stage is finished. ``redo`` runs a finished stage again
    (it resumes, rebuilding what is missing or damaged) and every later one. The run
    directory is locked for the whole call (see :meth:`mossa.run_dir.RunDir.lock`). A
    stage that raises is recorded as failed, so no later stage or command uses its
    outputs. ``options`` are passed to the ``only`` stage's ``run`` (e.g. ``force``).
    """
    _check_stage_name(only, "only")
    if options and only is None:
        raise ValueError("stage options need a single stage (only=...)")
    _check_stage_name(redo, "--redo")
    from mossa.models.device import resolve_compute

    resolve_compute(cfg.compute)  # a device this machine lacks: refused before anything is written
    with RunDir(run_dir).lock():
        if not force:
            check_same_config(run_dir, cfg)
        if only is not None:
            _check_earlier_finished(run_dir, cfg, only)
        if cfg.executor.threads is not None:
            import torch

            torch.set_num_threads(cfg.executor.threads)
        atomic_write_text(RunDir(run_dir).config, dump_config(cfg))
        manifest = read_manifest(run_dir)
        for stage, action in plan_stages(run_dir, cfg, redo=redo):
            if only is not None and stage.name != only:
                continue
            if action == "skip" and only is None:
                console.print(f"[dim]{stage.name}: finished, inputs unchanged: skipped[/dim]")
                continue
            _run_stage(run_dir, cfg, stage, manifest, options or {})
    return manifest


def _run_stage(run_dir: Path, cfg: RunConfig, stage: Stage, manifest: dict, options: dict) -> None:
    """Run one stage, recording it in the manifest as running, then done or failed."""
    stages = manifest["stages"]
    h = stage_hash(cfg, stage)
    if stages.get(stage.name, {}).get("hash") not in (None, h):
        _clear_outputs(run_dir, stage)
    for later in STAGE_NAMES[STAGE_NAMES.index(stage.name) :]:
        stages.pop(later, None)
    stages[stage.name] = {"hash": h, "status": "running", "started": time.time()}
    _write_manifest(run_dir, manifest)
    console.print(f"[bold]{stage.name}[/bold] ...")
    t0 = time.perf_counter()
    try:
        stage.run(run_dir, cfg, **options)
    except BaseException as exc:
        stages[stage.name] = {"hash": h, "status": "failed", "error": _one_line(exc)}
        _write_manifest(run_dir, manifest)
        raise
    seconds = round(time.perf_counter() - t0, 2)
    stages[stage.name] = {"hash": h, "status": "done", "seconds": seconds, "finished": time.time()}
    _write_manifest(run_dir, manifest)
    console.print(f"{stage.name}: done in {seconds:.1f} s")
