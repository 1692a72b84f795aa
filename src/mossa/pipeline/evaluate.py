"""The evaluate stage: task metrics of the base model, the SFT model and each task's control.

Each model answers the task's test prompts by greedy decoding and is scored with the task's
metric (see :mod:`mossa.inference`). The base is loaded once; the SFT adapter and the
controls are switched in place on it. Writes ``RUN/eval/task_metrics.json`` with every
model's per-example scores, from which the analysis computes intervals and competence
(:mod:`mossa.analysis.competence`).
"""

from __future__ import annotations

from pathlib import Path

from mossa.analysis.competence import chance_level
from mossa.config import RunConfig
from mossa.inference.generation import eval_prompts, evaluate_model
from mossa.models import lm
from mossa.run_dir import SFT, RunDir, control_adapter
from mossa.training.loop import check_adapter


def run_evaluation(run_dir: Path, cfg: RunConfig, tasks: list) -> None:
    """Evaluate base, SFT and each task's control; write ``RUN/eval/task_metrics.json``.

    Records per task: ``task``, ``cluster``, ``metric``, ``n`` (examples evaluated: the
    first ``evaluation.max_examples`` of the test split), ``chance`` and ``classes`` (null
    unless a classification task), the metric of ``base``, ``sft`` and ``control`` and
    ``examples`` (per model, the per-example scores). ``control`` is null for a task
    without a control adapter (``controls: seen``).
    """
    from tqdm.auto import tqdm

    from mossa.models import resolve_base
    from mossa.models.device import load_placed

    run = RunDir(run_dir)
    run.check_suite(tasks)
    controls = [t for t in tasks if t.seen or cfg.training.controls == "all"]
    for name in [SFT, *(control_adapter(t.name) for t in controls)]:
        check_adapter(run.adapter(name), run.root)
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
    has_control = {t.name for t in controls}
    records = []
    for task in tqdm(tasks, desc="evaluate"):
        _, targets = eval_prompts(task, ev.max_examples, cfg.seed)
        chance, classes = chance_level(task, targets)
        record = {"task": task.name, "cluster": task.cluster, "metric": task.metric}
        record.update(n=len(targets), chance=chance, classes=classes)
        results = {}
        slot.use(SFT, run.adapter(SFT))
        with slot.disabled() as model:
            results["base"] = evaluate_model(model, tokenizer, task, **kwargs)
        results["sft"] = evaluate_model(slot.peft, tokenizer, task, **kwargs)
        results["control"] = None
        if task.name in has_control:
            name = control_adapter(task.name)
            model = slot.use(name, run.adapter(name))
            results["control"] = evaluate_model(model, tokenizer, task, **kwargs)
        record.update({m: None if r is None else r.score for m, r in results.items()})
        record["examples"] = {m: None if r is None else r.examples for m, r in results.items()}
        records.append(record)
    run.write_task_metrics(records)


def run(run_dir: Path, cfg: RunConfig) -> None:
    """The evaluate stage (the suite is rebuilt from the config and checked)."""
    from mossa.pipeline.tasks import load_run_tasks

    run_evaluation(run_dir, cfg, load_run_tasks(cfg))
