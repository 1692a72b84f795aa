"""The extract stage: hidden states of every task's analysis prompts into RUN/activations.

For the base model, the SFT model and the controls: each task's own; other tasks'
controls on its prompts for task specificity (``analysis.cross_task_controls`` of them,
or all with ``extraction.cross_task``); and, with ``training.control_seeds`` > 1, the
control's other seeds on its own task's prompts for the noise ceiling. The models are
packed into ``executor.workers`` jobs (:mod:`mossa.pipeline.model_jobs`); each loads the
base once and switches its adapters in place on it (:class:`mossa.models.lm.AdapterSlot`).
Finished entries whose manifest matches the run are skipped, so an interrupted
extraction resumes; damaged ones are recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from mossa.config import RunConfig
from mossa.inference.hidden_states import (
    LAYER_CONVENTION,
    context_limit,
    model_shape,
    states_from_ids,
    warn_truncated,
)
from mossa.io import verify_checksums
from mossa.models import lm
from mossa.models.device import resolve_compute
from mossa.pipeline.model_jobs import ModelJob, pack_units, run_model_jobs, runs_in_process
from mossa.run_dir import (
    SFT,
    RunDir,
    control_adapter,
    control_tasks,
    cross_task_controls,
    snapshot_adapter,
)
from mossa.store import ActivationStore, prompt_hash


def _adapter_sha256(adapter_dir: Path, run_dir: Path) -> str:
    """Identity of an adapter's weights and config, after checking them against the
    checksums its training wrote (a damaged adapter is never run)."""
    weights = adapter_dir / "adapter_model.safetensors"
    config = adapter_dir / "adapter_config.json"
    for f in (weights, config):
        if not f.is_file():
            raise FileNotFoundError(f"{f} is missing: run the training stage first (mossa run)")
    verify_checksums(adapter_dir, stage="train", run_dir=run_dir)
    digest = hashlib.sha256()
    for f in (config, weights):
        digest.update(f.read_bytes())
    return digest.hexdigest()


def plan_jobs(
    tasks: list[dict],
    *,
    controls: str,
    cross: dict[str, list[str]],
    control_seeds: int = 1,
    snapshots: list[int] = (),
) -> list[tuple]:
    """(adapter, store model, task) triples, grouped by adapter: base, sft, then controls.

    ``adapter`` is None for the base model, ``"sft"`` or a control adapter. A task's own
    control is stored as model ``"control"``; a control run on the prompts of another
    task (``cross[task]`` lists them, see :func:`mossa.run_dir.cross_task_controls`) as
    ``"control__<its task>"``; seed i >= 1 of a task's control, on that task's prompts,
    as ``"control__<task>__seed<i>"`` (its adapter name). With ``controls == "seen"``
    only seen tasks have a control. Each SFT snapshot step in ``snapshots`` runs on every
    task as model ``"sft_step<N>"`` (its adapter name, :func:`mossa.run_dir.snapshot_adapter`).
    """
    names = [t["name"] for t in tasks]
    jobs = [(None, "base", t) for t in names] + [(SFT, SFT, t) for t in names]
    for task in control_tasks(tasks, controls):
        adapter = control_adapter(task)
        jobs.append((adapter, "control", task))
        jobs.extend((adapter, adapter, other) for other in names if task in cross.get(other, ()))
    for task in control_tasks(tasks, controls):
        for replica in range(1, control_seeds):
            adapter = control_adapter(task, replica)
            jobs.append((adapter, adapter, task))
    for step in snapshots:
        adapter = snapshot_adapter(step)
        jobs.extend((adapter, adapter, task) for task in names)
    return jobs


def run_plan(tasks: list[dict], cfg: RunConfig, snapshots: list[int] = ()) -> list[tuple]:
    """:func:`plan_jobs` for a run's config (ValueError for a bad
    ``analysis.cross_task_controls``); ``snapshots``: the SFT snapshot steps to extract."""
    cross = cross_task_controls(
        tasks,
        controls=cfg.training.controls,
        k=cfg.analysis.cross_task_controls,
        cross_task=cfg.extraction.cross_task,
        seed=cfg.seed,
    )
    return plan_jobs(
        tasks,
        controls=cfg.training.controls,
        cross=cross,
        control_seeds=cfg.training.control_seeds,
        snapshots=snapshots,
    )


_CHECKED_BEFORE_LOAD = ("prompt_hashes", "base", "adapter", "adapter_sha256", "pooling", "dtype")
_CHECKED_AFTER_LOAD = ("layers", "d", "context_length")


def _matching_entries(
    store: ActivationStore,
    expected: dict,
    keys: tuple[str, ...],
    *,
    force: bool,
    verify: bool = False,
) -> set:
    """Entries present in the store whose manifest agrees with ``expected`` on ``keys``.

    A present entry that disagrees raises ValueError naming its manifest, unless
    ``force``: then it is left out (to be recomputed). With ``verify``, an entry whose
    tensor is damaged is left out too (with a warning), whatever ``force`` says.
    """
    keep = set()
    for (model, task), want in expected.items():
        if not store.has(model, task):
            continue
        have = store.manifest(model, task)
        bad = next((k for k in keys if have.get(k) != want[k]), None)
        if bad is None and verify and not store.intact(model, task):
            warnings.warn(
                f"{store.path(model, task)} is damaged (unreadable, or values that do not "
                "match its checksum): recomputing it",
                UserWarning,
                stacklevel=2,
            )
        elif bad is None:
            keep.add((model, task))
        elif not force:
            why = (
                "its prompts differ from RUN/tasks/analysis_prompts.jsonl"
                if bad == "prompt_hashes"
                else f"{bad} is {have.get(bad)!r} but this run has {want[bad]!r}"
            )
            raise ValueError(
                f"{store.manifest_path(model, task)} does not match this run: {why}; "
                "re-run with --force to recompute it"
            )
    return keep


def _load_base(cfg: RunConfig):
    """The base model and tokenizer on ``compute.device`` in ``compute.dtype``."""
    from mossa.models.device import load_placed

    model, tokenizer, _, _ = load_placed(cfg.model.base, cfg.model, cfg.compute)
    return model, tokenizer


def _expected_manifests(
    cfg: RunConfig, jobs: list, prompts: dict, adapter_dirs: dict, run_dir: Path
) -> dict:
    """Manifest fields each (model, task) entry must have to belong to this run."""
    adapter_hashes = {a: _adapter_sha256(d, run_dir) for a, d in adapter_dirs.items()}
    task_hashes = {t: [prompt_hash(p) for p in prompts[t]] for _, _, t in jobs}
    return {
        (model, task): {
            "prompt_hashes": task_hashes[task],
            "base": cfg.model.base,
            "adapter": adapter,
            "adapter_sha256": adapter_hashes.get(adapter),
            "pooling": cfg.extraction.pooling,
            "dtype": cfg.extraction.dtype,
        }
        for adapter, model, task in jobs
    }


def _encode_tasks(tokenizer, prompts: dict, tasks: list[str], limit: int | None):
    """Token ids and truncation counts per task, with one warning for all of them."""
    encoded, truncated = {}, {}
    for task in tasks:
        encoded[task], truncated[task] = lm.encode_prompts(
            tokenizer, prompts[task], max_length=limit
        )
    per_task = ", ".join(f"{t}: {k}" for t, k in truncated.items() if k)
    warn_truncated(
        sum(truncated.values()),
        sum(len(prompts[t]) for t in tasks),
        limit,
        f" of the analysis set ({per_task})",
    )
    return encoded, truncated


def run_extraction(run_dir: Path, cfg: RunConfig, *, force: bool = False) -> None:
    """The extract stage: hidden states of every task's analysis prompts into RUN/activations.

    Finished (model, task) entries whose manifest matches this run are skipped, so an
    interrupted run resumes. An entry that does not match (other prompts, base model,
    adapter weights, pooling, dtype, layers, hidden size or context length) is refused
    with a ValueError naming its manifest, unless ``force`` is set: then it is recomputed.
    The base model is loaded only when something is left to compute.
    """
    run = RunDir(run_dir)
    run_dir = run.root
    store = run.store()
    store.remove_temp_files()
    prompts = run.read_analysis_prompts()
    tasks = run.read_tasks(required=("name",))
    for t in tasks:
        if not prompts.get(t["name"]):
            raise ValueError(f"task {t['name']!r} has no analysis prompts in {run.tasks_dir}")
    snapshots = run.snapshot_steps() if cfg.training.snapshot_every else []
    jobs = run_plan(tasks, cfg, snapshots)
    adapter_dirs = {a: run.adapter(a) for a, _, _ in jobs if a is not None}
    expected = _expected_manifests(cfg, jobs, prompts, adapter_dirs, run_dir)
    done = _matching_entries(store, expected, _CHECKED_BEFORE_LOAD, force=force, verify=True)
    if len(done) == len(jobs):
        return

    from mossa.models import load_tokenizer, meta_model, resolve_base

    trust = cfg.model.trust_remote_code
    base_path = resolve_base(cfg.model.base, trust_remote_code=trust)
    skeleton = meta_model(base_path, trust_remote_code=trust)  # shapes, without weights
    n_layers, d = model_shape(skeleton)
    limit = context_limit(skeleton, cfg.model.max_length)
    for want in expected.values():
        want.update(layers=n_layers, d=d, context_length=limit)
    done &= _matching_entries(store, expected, _CHECKED_AFTER_LOAD, force=force)
    pending = [(a, m, t) for a, m, t in jobs if (m, t) not in done]
    tokenizer = load_tokenizer(base_path, trust_remote_code=trust)
    pending_tasks = sorted({t for *_, t in pending})
    encoded, truncated = _encode_tasks(tokenizer, prompts, pending_tasks, limit)

    units: dict = {}  # adapter -> its pending (store model, task) entries, in plan order
    for adapter, name, task in pending:
        units.setdefault(adapter, []).append((name, task))
    entries = [(a, tuple(e)) for a, e in units.items()]
    model_jobs = pack_units(entries, [len(e) for _, e in entries], cfg.executor.workers, "extract")
    metas = {
        (name, task): dict(
            expected[(name, task)], n_truncated=truncated[task], layer_convention=LAYER_CONVENTION
        )
        for _, name, task in pending
    }
    fn = functools.partial(
        extract_job,
        run_dir=str(run_dir),
        cfg=cfg,
        adapter_dirs={a: str(p) for a, p in adapter_dirs.items()},
        encoded=encoded,
        prompts={t: prompts[t] for t in pending_tasks},
        metas=metas,
        progress=runs_in_process(model_jobs, cfg.executor),
    )
    run_model_jobs(fn, model_jobs, cfg.executor, "extract")


def extract_job(
    job: ModelJob,
    *,
    run_dir: str,
    cfg: RunConfig,
    adapter_dirs: dict,
    encoded: dict,
    prompts: dict,
    metas: dict,
    progress: bool,
) -> int:
    """Extract one job's units (adapter, its entries) on one loaded base into the store;
    returns the entries written (top-level: executors pickle it)."""
    model, tokenizer = _load_base(cfg)
    _, dtype = resolve_compute(cfg.compute)
    store = RunDir(run_dir).store()
    slot = lm.AdapterSlot(model)
    flat = [(adapter, name, task) for adapter, entries in job.units for name, task in entries]
    bar = tqdm(flat, desc="extract", unit="file", disable=None if progress else True)
    for adapter, name, task in bar:
        bar.set_postfix_str(f"{name}/{task}")
        # plan_jobs puts the base first, so its states come from the model before any
        # LoRA layer is injected into it (PeftModel.from_pretrained modifies it in place).
        hidden = states_from_ids(
            model if adapter is None else slot.use(adapter, Path(adapter_dirs[adapter])),
            encoded[task],
            pad_id=lm.pad_id(tokenizer),
            batch_size=cfg.extraction.batch_size,
            pooling=cfg.extraction.pooling,
            dtype=dtype,
        )
        store.save(name, task, hidden, prompts=prompts[task], meta=metas[(name, task)])
    bar.close()
    return len(flat)


def run(run_dir: Path, cfg: RunConfig, *, recompute: bool = False) -> None:
    """The extract stage; ``recompute`` recomputes entries that do not match the run
    instead of refusing them."""
    run_extraction(run_dir, cfg, force=recompute)
