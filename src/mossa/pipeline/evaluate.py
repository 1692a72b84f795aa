"""The evaluate stage: task metrics of the base model, the SFT model and each task's control.

Each model answers the task's test prompts by greedy decoding and is scored with the task's
metric (see :mod:`mossa.inference`). The models are packed into ``executor.workers``
jobs; each loads the base once and switches its adapters in place on it. Writes
``RUN/eval/task_metrics.json`` with every model's per-example scores, from which the
analysis computes intervals and competence (:mod:`mossa.analysis.competence`).
"""

from __future__ import annotations

import functools
from pathlib import Path

from mossa.analysis.competence import chance_level
from mossa.config import RunConfig
from mossa.inference.generation import eval_prompts, evaluate_model
from mossa.models import lm
from mossa.pipeline.model_jobs import ModelJob, pack_units, run_model_jobs, runs_in_process
from mossa.run_dir import SFT, RunDir, control_adapter
from mossa.training.loop import check_adapter


def run_evaluation(run_dir: Path, cfg: RunConfig, tasks: list) -> None:
    """Evaluate base, SFT and each task's control; write ``RUN/eval/task_metrics.json``.

    Records per task: ``task``, ``cluster``, ``metric``, ``n`` (examples evaluated: the
    first ``evaluation.max_examples`` of the test split), ``chance`` and ``classes`` (null
    unless a classification task), the metric of ``base``, ``sft`` and ``control`` and
    ``examples`` (per model, the per-example scores). ``control`` is null for a task
    without a control adapter (``controls: seen``). The models are spread over
    ``executor.workers`` jobs (:mod:`mossa.pipeline.model_jobs`).
    """
    run = RunDir(run_dir)
    run.check_suite(tasks)
    controls = [t for t in tasks if t.seen or cfg.training.controls == "all"]
    for name in [SFT, *(control_adapter(t.name) for t in controls)]:
        check_adapter(run.adapter(name), run.root)
    names = [t.name for t in tasks]
    # (label, adapter, tasks): the base and SFT on every task, a control on its own
    units = [("base", None, tuple(names)), ("sft", SFT, tuple(names))]
    units += [("control", control_adapter(t.name), (t.name,)) for t in controls]
    jobs = pack_units(units, [len(u[2]) for u in units], cfg.executor.workers, "evaluate")
    fn = functools.partial(
        evaluate_job,
        run_dir=str(run.root),
        cfg=cfg,
        tasks=tasks,
        progress=runs_in_process(jobs, cfg.executor),
    )
    results = {}
    for part in run_model_jobs(fn, jobs, cfg.executor, "evaluate"):
        results |= part
    records = []
    for task in tasks:
        _, targets = eval_prompts(task, cfg.evaluation.max_examples, cfg.seed)
        chance, classes = chance_level(task, targets)
        record = {"task": task.name, "cluster": task.cluster, "metric": task.metric}
        record.update(n=len(targets), chance=chance, classes=classes)
        scored = {m: results.get((m, task.name)) for m in ("base", "sft", "control")}
        record.update({m: None if r is None else r.score for m, r in scored.items()})
        record["examples"] = {m: None if r is None else r.examples for m, r in scored.items()}
        records.append(record)
    run.write_task_metrics(records)


def evaluate_job(
    job: ModelJob, *, run_dir: str, cfg: RunConfig, tasks: list, progress: bool
) -> dict:
    """One job's models on their tasks, on one loaded base: ``{(label, task): Evaluation}``
    (top-level: executors pickle it). The base is scored with any adapter switched off."""
    from tqdm.auto import tqdm

    from mossa.models import resolve_base
    from mossa.models.device import load_placed

    run = RunDir(run_dir)
    by_name = {t.name: t for t in tasks}
    base_path = resolve_base(cfg.model.base, trust_remote_code=cfg.model.trust_remote_code)
    base, tokenizer, _, dtype = load_placed(base_path, cfg.model, cfg.compute)
    ev = cfg.evaluation
    kwargs = {
        "max_examples": ev.max_examples,
        "max_new_tokens": ev.max_new_tokens,
        "batch_size": ev.batch_size,
        "seed": cfg.seed,
        "max_length": cfg.model.max_length,
        "dtype": dtype,
    }
    slot = lm.AdapterSlot(base)
    out = {}
    bar = tqdm(
        total=sum(len(u[2]) for u in job.units), desc="evaluate", disable=None if progress else True
    )
    for label, adapter, names in job.units:
        for name in names:
            bar.set_postfix_str(f"{label}/{name}")
            if adapter is None:
                with slot.disabled() as model:
                    out[label, name] = evaluate_model(model, tokenizer, by_name[name], **kwargs)
            else:
                model = slot.use(adapter, run.adapter(adapter))
                out[label, name] = evaluate_model(model, tokenizer, by_name[name], **kwargs)
            bar.update(1)
    bar.close()
    return out


def run(run_dir: Path, cfg: RunConfig) -> None:
    """The evaluate stage (the suite is rebuilt from the config and checked)."""
    from mossa.pipeline.tasks import load_run_tasks

    run_evaluation(run_dir, cfg, load_run_tasks(cfg))
