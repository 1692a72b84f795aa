"""One owner for the run directory: every path in it, its readers, and its lock.

```
RUN/
  config.resolved.yaml   manifest.json   .lock
  tasks/tasks.json       tasks/analysis_prompts.jsonl          (stage tasks)
  adapters/sft/          adapters/control__<task>/             (stage train)
                         adapters/control__<task>__seed<i>/    (training.control_seeds > 1)
  eval/task_metrics.json                                       (stage evaluate)
  activations/<model>/<task>.safetensors + .json               (stage extract)
  tables/*.csv, *.json, cka_cross_layer/<task>.npz             (stage analyze)
  figures/*.png          report.html                           (stage report)
```

No other module builds a path inside a run directory by hand: they ask a
:class:`RunDir`. Readers check what they read and raise
:class:`mossa.io.CorruptRunFile` naming the file and the command that rebuilds it.

``tasks.json`` records the SHA-256 of the task suite it was built from and of the
analysis prompts it froze; :meth:`RunDir.check_suite` refuses a suite rebuilt from the
config that differs, and :meth:`RunDir.read_analysis_prompts` refuses prompts that were
changed after the tasks stage.

The lock: two ``mossa`` commands writing one run directory would train the same adapters
twice and interleave their manifest writes. :meth:`RunDir.lock` takes an exclusive
``flock`` on ``RUN/.lock`` and writes who holds it (pid, host, command, start time) into
the file. The kernel drops the lock when its process ends, however it ends, so a lock
left by a crash is stale by construction: the next command takes it and says that the
previous holder did not finish. A second process asking for a held lock gets
:class:`RunDirBusy` (a ValueError: one line, exit 2) naming the holder. The lock is
re-entrant within a process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path

from rich.console import Console

from mossa.io import atomic_write_text, corrupt, read_json, read_text, rebuild_command

SFT = "sft"
CONTROL_DIR_PREFIX = "control__"
TASK_FIELDS = (
    "name",
    "cluster",
    "seen",
    "n_train",
    "flesch_kincaid",
    "coleman_liau",
    "n_readability",
)
_held: dict[Path, int] = {}  # resolved run dir -> lock nesting depth in this process
console = Console(stderr=True, soft_wrap=True)


class RunDirBusy(ValueError):
    """Another process holds the run directory's lock."""


SEED_SUFFIX = "__seed"


SNAPSHOT_PREFIX = "sft_step"
SNAPSHOTS = "snapshots"  # folder of an adapter's snapshots, one ``step-<N>`` folder each


def snapshot_steps(adapter_dir: Path) -> list[int]:
    """Steps of the snapshots an adapter keeps, ascending (empty without any)."""
    folder = Path(adapter_dir) / SNAPSHOTS
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("step-*") if p.is_dir())


def snapshot_adapter(step: int) -> str:
    """Adapter (and store model) name of the SFT snapshot at ``step``; names sort by step."""
    return f"{SNAPSHOT_PREFIX}{step:08d}"


def control_adapter(task: str, seed: int = 0) -> str:
    """Name of the control adapter of ``task`` (its directory under RUN/adapters).

    Seed 0 is the control every stage uses; seeds 1.. (``training.control_seeds``) are
    ``control__<task>__seed<i>``, the replicas that measure the noise ceiling.
    """
    return CONTROL_DIR_PREFIX + task + (f"{SEED_SUFFIX}{seed}" if seed else "")


def control_tasks(tasks: list[dict], controls: str) -> list[str]:
    """Names of the tasks that have a control (all, or the seen ones for ``"seen"``)."""
    return [t["name"] for t in tasks if controls != "seen" or t.get("seen", True)]


def cross_task_controls(
    tasks: list[dict], *, controls: str, k: int, cross_task: bool, seed: int
) -> dict[str, list[str]]:
    """The other tasks whose controls run on each task's prompts (task specificity).

    For every task with a control: all other tasks with a control when ``cross_task``
    (``extraction.cross_task``), else ``k`` of them (``analysis.cross_task_controls``;
    0: none), ranked by a hash of the run seed and both task names (so the choice does
    not depend on the order of the suite), sorted.

    Raises ValueError naming ``analysis.cross_task_controls`` when ``k`` exceeds the
    number of other tasks with a control.
    """
    names = control_tasks(tasks, controls)
    available = len(names) - 1
    if not cross_task and k > max(available, 0):
        raise ValueError(
            f"analysis.cross_task_controls={k}: this run has {available} other task(s) with a "
            f"control per task, so at most {max(available, 0)} (0 turns task specificity off)"
        )
    out = {}
    for task in names:
        others = [o for o in names if o != task]
        if not cross_task:
            rank = {o: hashlib.sha256(f"{seed}\0{task}\0{o}".encode()).hexdigest() for o in others}
            others = sorted(sorted(others, key=rank.__getitem__)[:k])
        out[task] = others
    return out


def suite_sha256(tasks: list) -> str:
    """SHA-256 of a task suite's content: names, clusters, templates and every example."""
    records = [asdict(t) if is_dataclass(t) else t for t in tasks]
    text = json.dumps(records, sort_keys=True, default=list, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RunDir:
    """Paths and readers of one run directory (``root``)."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # ------------------------------------------------------------------ paths
    @property
    def config(self) -> Path:
        return self.root / "config.resolved.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def tasks_dir(self) -> Path:
        return self.root / "tasks"

    @property
    def tasks_json(self) -> Path:
        return self.tasks_dir / "tasks.json"

    @property
    def analysis_prompts(self) -> Path:
        return self.tasks_dir / "analysis_prompts.jsonl"

    @property
    def adapters_dir(self) -> Path:
        return self.root / "adapters"

    def adapter(self, name: str) -> Path:
        """Directory of adapter ``name`` (``sft``, ``control__<task>`` or an SFT snapshot
        ``sft_step<N>``, kept inside the SFT adapter by the training loop)."""
        if name.startswith(SNAPSHOT_PREFIX) and name[len(SNAPSHOT_PREFIX) :].isdigit():
            step = int(name[len(SNAPSHOT_PREFIX) :])
            return self.adapters_dir / SFT / SNAPSHOTS / f"step-{step:08d}"
        return self.adapters_dir / name

    def snapshot_steps(self) -> list[int]:
        """Steps of the SFT snapshots the trained SFT adapter keeps (empty without any)."""
        return snapshot_steps(self.adapter(SFT))

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def task_metrics(self) -> Path:
        return self.eval_dir / "task_metrics.json"

    @property
    def activations_dir(self) -> Path:
        return self.root / "activations"

    def store(self):
        """The run's :class:`mossa.store.ActivationStore`."""
        from mossa.store import ActivationStore

        return ActivationStore(self.activations_dir)

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    def table(self, name: str) -> Path:
        """A file of RUN/tables, e.g. ``table("cka.csv")``."""
        return self.tables_dir / name

    @property
    def cross_layer_dir(self) -> Path:
        return self.tables_dir / "cka_cross_layer"

    def cross_layer(self, task: str) -> Path:
        return self.cross_layer_dir / f"{task}.npz"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def rebuild_command(self, stage: str) -> str:
        """The command that rebuilds the outputs of ``stage`` here."""
        return rebuild_command(stage, self.root)

    # ------------------------------------------------------------------ tasks
    def write_tasks(self, records: list[dict], prompts: list[dict], suite: str | None) -> None:
        """Write analysis_prompts.jsonl and tasks.json (with the suite's and prompts' hashes)."""
        text = "\n".join(json.dumps(p) for p in prompts) + "\n"
        atomic_write_text(self.analysis_prompts, text)
        doc = {
            "suite_sha256": suite,
            "analysis_prompts_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "tasks": records,
        }
        atomic_write_text(self.tasks_json, json.dumps(doc, indent=2) + "\n")

    def _tasks_doc(self) -> dict:
        path = self.tasks_json
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run the tasks stage first (mossa run)")
        doc = read_json(path, dict, stage="tasks", run_dir=self.root)
        if not isinstance(doc.get("tasks"), list):
            raise corrupt(path, "expected an object with a 'tasks' list", "tasks", self.root)
        return doc

    def read_tasks(self, required: tuple[str, ...] = TASK_FIELDS) -> list[dict]:
        """The task records of tasks.json, checked for the ``required`` fields."""
        path, tasks = self.tasks_json, self._tasks_doc()["tasks"]
        if not tasks:
            raise corrupt(path, "expected a non-empty list of task records", "tasks", self.root)
        for i, t in enumerate(tasks):
            if not isinstance(t, dict):
                raise corrupt(path, f"task record {i} is not an object", "tasks", self.root)
            missing = [f for f in ("name", *required) if f not in t]
            if missing:
                raise corrupt(path, f"task record {i} lacks fields {missing}", "tasks", self.root)
            if not isinstance(t["name"], str) or not t["name"]:
                raise corrupt(path, f"task record {i} has no task name", "tasks", self.root)
        return tasks

    def check_suite(self, tasks: list) -> None:
        """Refuse a suite (rebuilt from the config) other than the one tasks.json froze
        (nothing to check before the tasks stage has run)."""
        if not self.tasks_json.is_file():
            return
        recorded = self._tasks_doc().get("suite_sha256")
        if recorded is not None and recorded != suite_sha256(tasks):
            raise ValueError(
                f"{self.tasks_json}: the task suite built from the config differs from the one "
                "the tasks stage froze (a task file or the built-in suite changed); rebuild "
                f"the tasks and every later stage with `{self.rebuild_command('tasks')}`"
            )

    def read_analysis_prompts(self) -> dict[str, list[str]]:
        """Analysis prompts per task, in their frozen order, checked against tasks.json."""
        path = self.analysis_prompts
        if not path.exists():
            raise ValueError(f"{path} is missing: run the tasks stage first (mossa run)")
        text = read_text(path, stage="tasks", run_dir=self.root)
        recorded = self._tasks_doc().get("analysis_prompts_sha256")
        if recorded is not None and recorded != hashlib.sha256(text.encode()).hexdigest():
            raise corrupt(path, f"changed since {self.tasks_json} was written", "tasks", self.root)
        prompts: dict[str, list[str]] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                problem = f"line {number}: not valid JSON ({exc.msg})"
                raise corrupt(path, problem, "tasks", self.root) from None
            if not (
                isinstance(rec, dict)
                and isinstance(rec.get("task"), str)
                and isinstance(rec.get("prompt"), str)
            ):
                problem = f"line {number}: expected an object with string 'task' and 'prompt'"
                raise corrupt(path, problem, "tasks", self.root)
            prompts.setdefault(rec["task"], []).append(rec["prompt"])
        return prompts

    # ------------------------------------------------------------------ other readers
    def read_task_metrics(self) -> list[dict] | None:
        """The records of eval/task_metrics.json (None when the run was not evaluated)."""
        if not self.task_metrics.is_file():
            return None
        return read_json(self.task_metrics, list, stage="evaluate", run_dir=self.root)

    def write_task_metrics(self, records: list[dict]) -> None:
        atomic_write_text(self.task_metrics, json.dumps(records, indent=2) + "\n")

    def read_config(self):
        """The run's resolved config (ValueError when this is not a run directory)."""
        from mossa.config import load_config

        if not self.config.is_file():
            raise ValueError(
                f"{self.config} not found: RUN_DIR must be a run directory made by `mossa run`"
            )
        return load_config(file=self.config)

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory's lock for the block (the directory is created if needed).

        Raises
        ------
        RunDirBusy
            When another live process holds it; the message names that process.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root.resolve()
        if key in _held:
            _held[key] += 1
            try:
                yield
            finally:
                _held[key] -= 1
            return
        with (self.root / ".lock").open("a+", encoding="utf-8") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunDirBusy(
                    f"{self.root} is in use by {_describe(_holder(fh))}; wait for it to finish "
                    "or stop it, or choose another --out"
                ) from None
            previous = _holder(fh)
            if previous:
                console.print(
                    f"[yellow]{self.root}: the previous run ({_describe(previous)}) ended "
                    "without releasing its lock; its finished stages are kept and the rest "
                    "resumes[/yellow]"
                )
            _write_holder(fh)
            _held[key] = 1
            try:
                yield
            finally:
                del _held[key]
                fh.seek(0)
                fh.truncate()  # an empty file: released cleanly
                fh.flush()
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _holder(fh) -> dict:
    fh.seek(0)
    try:
        data = json.loads(fh.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _write_holder(fh) -> None:
    fh.seek(0)
    fh.truncate()
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started": time.time(),
    }
    fh.write(json.dumps(me))
    fh.flush()


def _describe(holder: dict) -> str:
    if not holder:
        return "an unknown process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (
        f"pid {holder.get('pid')} on {holder.get('host')} "
        f"(`{holder.get('command')}`, started {started})"
    )
