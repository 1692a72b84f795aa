"""Task suites for mossa: types, clusters, the built-in suite, Flan 2021, user files, mixing.

Import from here; the submodules are implementation detail. See docs/tasks.md.
"""

from mossa.tasks.clusters import (
    CLUSTER_NAMES,
    CLUSTERS,
    FLAN_TASK_CLUSTERS,
    TABLE1,
    UNSEEN_CLUSTER,
    match_flan_task,
)
from mossa.tasks.mixing import (
    analysis_prompts,
    control_items,
    mixture_counts,
    sft_mixture,
    validation_items,
)
from mossa.tasks.readability import readability, task_readability
from mossa.tasks.registry import load_suite, task_summary
from mossa.tasks.types import METRICS, SPLITS, Example, Metric, Task, Template, TrainItem

__all__ = [
    "CLUSTERS",
    "CLUSTER_NAMES",
    "FLAN_TASK_CLUSTERS",
    "METRICS",
    "SPLITS",
    "TABLE1",
    "UNSEEN_CLUSTER",
    "Example",
    "Metric",
    "Task",
    "Template",
    "TrainItem",
    "analysis_prompts",
    "control_items",
    "load_suite",
    "match_flan_task",
    "mixture_counts",
    "readability",
    "sft_mixture",
    "task_readability",
    "task_summary",
    "validation_items",
]
