"""Did each control learn its task? Task-metric intervals and the ``competent`` flag.

MOSSA compares what a task's control learned with what SFT learned; where the control
learned nothing the comparison is noise. From the per-example scores the evaluate stage
keeps (``RUN/eval/task_metrics.json``) this module gives every model's metric an interval
and tests the control against the base on the same examples:

* accuracy (0/1 per example): Wilson interval; control vs base by the exact McNemar test
  (a two-sided binomial test on the discordant examples);
* ROUGE-L and BLEU: percentile bootstrap over examples (BLEU re-scored from summed sentence
  statistics); control vs base by a paired bootstrap (the same resample for both).

A task is *competent* when its control beats the base (difference > 0 with p < 1 -
confidence) and, where the task has a chance level, the control's interval lies above it.
Chance (classification tasks only) is the majority-label rate of the evaluated examples:
the accuracy of always giving the most frequent answer, which is at least 1/k for k labels
and is what a model that ignores the input reaches on unbalanced test sets.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest

from mossa.inference.metrics import aggregate, normalize_answer

MAX_CLASSES = 20  # at most this many distinct answers over a task's examples: classification
MIN_COMPETENT = 3  # fewer competent seen tasks than this: no verdict is drawn
MODELS = ("base", "sft", "control")
NOT_CHECKED = "not checked: eval/task_metrics.json keeps no per-example scores"


def chance_level(task, targets: Sequence[str]) -> tuple[float | None, int | None]:
    """Chance accuracy (0-100) of ``task`` on the evaluated ``targets``, and its label count.

    Only for accuracy tasks whose examples (every split) have at most :data:`MAX_CLASSES`
    distinct answers after normalisation and whose evaluated targets are among them; else
    (None, None). Chance is the majority-label rate of ``targets``.
    """
    if task.metric != "accuracy" or not targets:
        return None, None
    labels = {normalize_answer(ex.target) for split in ("train", "validation", "test")
              for ex in task.split(split)}  # fmt: skip
    evaluated = [normalize_answer(t) for t in targets]
    if len(labels) > MAX_CLASSES or not set(evaluated) <= labels:
        return None, None
    top = max(evaluated.count(label) for label in set(evaluated))
    return 100.0 * top / len(evaluated), len(labels)


def wilson(hits: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion, in percent (scipy's binomtest)."""
    ci = binomtest(int(hits), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return 100.0 * ci.low, 100.0 * ci.high


def resample_index(n: int, n_boot: int, seed: int, task: str) -> np.ndarray:
    """[n_boot, n] example indices drawn with replacement; the same for every model of a task."""
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    return rng.integers(0, n, size=(n_boot, n))


def resampled(metric: str, examples, index: np.ndarray) -> np.ndarray:
    """The metric of every resample in ``index`` [B, n] of ``examples`` -> [B]."""
    values = np.asarray(examples, dtype=np.float64)
    if metric == "bleu":
        return np.array([aggregate("bleu", values[row]) for row in index])
    scale = 100.0 if metric == "accuracy" else 1.0
    return scale * values[index].mean(axis=1)


def interval(metric: str, examples, index: np.ndarray, confidence: float) -> tuple[float, float]:
    """Wilson for accuracy, else the percentile bootstrap over ``index``."""
    if metric == "accuracy":
        return wilson(int(np.sum(examples)), len(examples), confidence)
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(resampled(metric, examples, index), [tail, 100.0 - tail])
    return float(low), float(high)


def paired_test(
    metric: str, control, base, index: np.ndarray, confidence: float
) -> tuple[float, float, float, float, str]:
    """Control minus base on the same examples: difference, interval, two-sided p, test name.

    The interval is the paired percentile bootstrap for every metric; the p-value is exact
    McNemar for accuracy, else from the paired bootstrap, floored at 1/(B+1).
    """
    diff = aggregate(metric, control) - aggregate(metric, base)
    boot = resampled(metric, control, index) - resampled(metric, base, index)
    tail = 50.0 * (1.0 - confidence)
    low, high = (float(v) for v in np.percentile(boot, [tail, 100.0 - tail]))
    if metric == "accuracy":
        c, b = np.asarray(control, dtype=int), np.asarray(base, dtype=int)
        wins, losses = int(np.sum((c == 1) & (b == 0))), int(np.sum((c == 0) & (b == 1)))
        p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
        return diff, low, high, float(p), "mcnemar_exact"
    n_boot = len(boot)
    one_side = min(np.sum(boot <= 0), np.sum(boot >= 0))
    p = min(1.0, 2.0 * (one_side + 1) / (n_boot + 1))
    return diff, low, high, float(p), "paired_bootstrap"


def _num(value) -> float:
    return math.nan if value is None else float(value)


def task_metric_row(record: dict, confidence: float, n_boot: int, seed: int) -> dict:
    """One row of task_metrics.csv from one record of eval/task_metrics.json."""
    task, metric = str(record["task"]), str(record["metric"])
    row: dict = {"task": task, "metric": metric, "n": None, "chance": _num(record.get("chance"))}
    for model in MODELS:
        row[model] = _num(record.get(model))
        row[f"{model}_low"] = row[f"{model}_high"] = math.nan
    row.update(diff=math.nan, diff_low=math.nan, diff_high=math.nan, p_value=math.nan, test="")
    examples = record.get("examples")
    if not examples:
        return {**row, "competent": False, "reason": NOT_CHECKED}
    n = len(examples["base"])
    row["n"] = n
    index = resample_index(n, n_boot, seed, task)
    for model in MODELS:
        if examples.get(model) is not None:
            if len(examples[model]) != n:
                raise ValueError(
                    f"task {task!r}: {model} has {len(examples[model])} examples, base {n}"
                )
            low, high = interval(metric, examples[model], index, confidence)
            row[f"{model}_low"], row[f"{model}_high"] = low, high
    if examples.get("control") is None:
        return {**row, "competent": False, "reason": "no control"}
    diff, low, high, p, test = paired_test(
        metric, examples["control"], examples["base"], index, confidence
    )
    row.update(diff=diff, diff_low=low, diff_high=high, p_value=p, test=test)
    alpha = 1.0 - confidence
    if not (diff > 0 and p < alpha):
        reason = f"control not above base (difference {diff:+.1f}, p = {p:.3f}, n = {n})"
        return {**row, "competent": False, "reason": reason}
    if math.isfinite(row["chance"]) and not row["control_low"] > row["chance"]:
        reason = (
            f"control not above chance (interval from {row['control_low']:.1f}, chance "
            f"{row['chance']:.1f}, n = {n})"
        )
        return {**row, "competent": False, "reason": reason}
    return {**row, "competent": True, "reason": ""}


def task_metric_rows(records: list[dict], confidence: float, n_boot: int, seed: int) -> list[dict]:
    """Rows of task_metrics.csv, one per evaluated task (see :func:`task_metric_row`)."""
    return [task_metric_row(r, confidence, n_boot, seed) for r in records]


def read_task_metrics(run, cfg) -> list[dict]:
    """Rows of task_metrics.csv from RUN/eval/task_metrics.json (empty when not evaluated)."""
    from mossa.io import corrupt

    records = run.read_task_metrics()
    if records is None:
        return []
    ev = cfg.evaluation
    try:
        return task_metric_rows(records, ev.confidence, ev.bootstrap, cfg.seed)
    except (KeyError, TypeError, ValueError) as exc:
        problem = f"expected records with task, metric, scores and per-example scores ({exc!r})"
        raise corrupt(run.task_metrics, problem, "evaluate", run.root) from None


def competent_tasks(rows: list[dict]) -> set[str] | None:
    """Names of the competent tasks; None when competence was not checked (no per-example
    scores at all, e.g. a run evaluated before they were kept): then no task is left out."""
    if not any(r["n"] is not None for r in rows):
        return None
    return {r["task"] for r in rows if r["competent"]}
