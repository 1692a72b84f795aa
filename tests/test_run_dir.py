"""RunDir: the one owner of run-directory paths, the suite hash its readers check, and
the rule that no other module builds a path inside a run directory by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mossa.config import load_config
from mossa.io import CorruptRunFile
from mossa.pipeline.tasks import load_run_tasks, write_task_artifacts
from mossa.run_dir import RunDir, control_adapter, suite_sha256

SRC = Path(__file__).resolve().parents[1] / "src" / "mossa"


@pytest.fixture(scope="module")
def smoke_cfg():
    return load_config(profile="demo-smoke")


def test_tasks_stage_freezes_the_suite_hash_and_train_refuses_another_suite(tmp_path, smoke_cfg):
    tasks = write_task_artifacts(tmp_path, smoke_cfg)
    run = RunDir(tmp_path)
    run.check_suite(load_run_tasks(smoke_cfg))  # the same suite, rebuilt: accepted
    other = load_run_tasks(smoke_cfg.model_copy(update={"seed": 1}))
    assert suite_sha256(other) != suite_sha256(tasks)
    with pytest.raises(ValueError, match=r"tasks.json: the task suite built from the config "
                       r"differs .* --redo tasks"):  # fmt: skip
        run.check_suite(other)
    assert [t["name"] for t in run.read_tasks()] == [t.name for t in tasks]


def test_analysis_prompts_edited_after_the_tasks_stage_are_refused(tmp_path, smoke_cfg):
    write_task_artifacts(tmp_path, smoke_cfg)
    run = RunDir(tmp_path)
    prompts = run.read_analysis_prompts()
    assert sum(len(v) for v in prompts.values()) == 12 * smoke_cfg.tasks.n_analysis
    text = run.analysis_prompts.read_text()
    run.analysis_prompts.write_text(text.replace("?", "!", 1))
    with pytest.raises(CorruptRunFile, match=r"analysis_prompts.jsonl: changed since .*tasks.json"):
        run.read_analysis_prompts()


def test_paths_are_the_documented_layout(tmp_path):
    run = RunDir(tmp_path)
    rel = {
        name: str(path.relative_to(tmp_path))
        for name, path in {
            "config": run.config,
            "manifest": run.manifest,
            "tasks": run.tasks_json,
            "prompts": run.analysis_prompts,
            "control": run.adapter(control_adapter("t1")),
            "metrics": run.task_metrics,
            "cka": run.table("cka.csv"),
            "cross": run.cross_layer("t1"),
            "report": run.report,
        }.items()
    }
    assert rel == {
        "config": "config.resolved.yaml",
        "manifest": "manifest.json",
        "tasks": "tasks/tasks.json",
        "prompts": "tasks/analysis_prompts.jsonl",
        "control": "adapters/control__t1",
        "metrics": "eval/task_metrics.json",
        "cka": "tables/cka.csv",
        "cross": "tables/cka_cross_layer/t1.npz",
        "report": "report.html",
    }
    assert run.store().root == tmp_path / "activations"


RUN_PATH = re.compile(
    r"""["'](?:adapters|activations|tables|figures|eval|tasks\.json|manifest\.json|"""
    r"""config\.resolved\.yaml|task_metrics\.json|analysis_prompts\.jsonl|report\.html|"""
    r"""cka_cross_layer|control__)["'/{]"""
)


def test_no_module_outside_run_dir_and_pipeline_builds_a_run_path():
    # clustering/ writes its own experiment directory, not a MOSSA run directory
    allowed = {SRC / "run_dir.py"}
    offenders = []
    for path in SRC.rglob("*.py"):
        if path in allowed or path.parent.name in ("pipeline", "clustering"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            if RUN_PATH.search(code) and '"""' not in code:
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
