"""`mossa run --dry-run`: the job plan and its estimates, on this machine, without the model."""

import json
import subprocess
import sys

import pytest

from mossa.config import load_config
from mossa.pipeline.plan import make_plan
from mossa.tasks import FLAN_TASK_CLUSTERS, UNSEEN_CLUSTER


def dry_run(*args):
    cmd = [sys.executable, "-m", "mossa.cli", "run", "--dry-run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_paper_setup_plan_without_model_or_data():
    done = dry_run("--profile", "llama2-7b-flan", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    n_tasks = len(FLAN_TASK_CLUSTERS)
    n_unseen = sum(c == UNSEEN_CLUSTER for c in FLAN_TASK_CLUSTERS.values())
    assert plan["tasks"] == {
        "seen": n_tasks - n_unseen,
        "total": n_tasks,
        "counted_from": "paper Table 1 (suite not readable here)",
    }
    assert len(plan["jobs"]) == 1 + n_tasks  # SFT + a control per task, seen and unseen
    assert plan["jobs"][0] == pytest.approx(
        {
            "name": "sft",
            "steps": 100000,
            "tokens": 100000 * 16 * 320,
            "gpu_hours": plan["jobs"][0]["gpu_hours"],
        }
    )
    # 4 x 6.74e9 FLOPs per token at 35% of 312 TFLOP/s
    expected_sft = 4 * 6.74e9 * 100000 * 16 * 320 / (312e12 * 0.35 * 3600)
    assert plan["gpu_hours"]["sft"] == pytest.approx(expected_sft)
    assert plan["gpu_hours"]["total"] > plan["gpu_hours"]["controls"] > plan["gpu_hours"]["sft"]
    # fp16 states, 33 layers x 100 prompts x 4096 dims, base + sft + control per task, and
    # analysis.cross_task_controls = 3 other tasks' controls on each task's prompts
    assert plan["activation_disk_gb"] == pytest.approx(n_tasks * 6 * 33 * 100 * 4096 * 2 / 1e9)


def test_human_readable_plan_mentions_the_totals():
    done = dry_run("--profile", "llama2-7b-flan")
    assert done.returncode == 0, done.stderr
    assert "GPU hours" in done.stdout and "activation store" in done.stdout


def test_cross_task_extraction_grows_the_store():
    base = make_plan(load_config(profile="llama2-7b-flan"))
    cross = make_plan(
        load_config(profile="llama2-7b-flan", overrides=["extraction.cross_task=true"])
    )
    n = base["tasks"]["total"]
    assert cross["activation_disk_gb"] == pytest.approx(base["activation_disk_gb"] * (2 + n) / 6)


def test_unsizable_base_is_a_clear_error():
    done = dry_run("--profile", "demo", "--set", "model.base=some-org/unknown-model")
    assert done.returncode == 2
    assert "cannot size it" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("profile", ["demo", "demo-smoke"])
def test_bundled_bases_are_sized_without_building_them(profile):
    plan = make_plan(load_config(profile=profile))
    assert plan["base_size"]["layers"] in (4, 8)
    assert plan["tasks"]["counted_from"] == "suite"
    assert plan["base_size"]["params"] > 1e4


def test_snapshots_show_their_count_disk_and_extraction():
    """training.snapshot_every: every K-th step and the last, each a LoRA adapter on disk and
    one more model extracted on every task."""
    base = make_plan(load_config(profile="demo-smoke"))
    snap = make_plan(load_config(profile="demo-smoke", overrides=["training.snapshot_every=4"]))
    total = base["tasks"]["total"]
    assert base["snapshots"] == {"steps": 0, "disk_gb": 0.0}
    assert snap["snapshots"]["steps"] == 2  # steps 4 and 6 of 6
    assert snap["extraction"]["sft_snapshots"] == 2 * total
    assert snap["extraction"]["entries"] == base["extraction"]["entries"] + 2 * total
    # q/v LoRA r=8 of a 64-wide, 4-layer model: 2 modules x 4 layers x 8 x (64 + 64) x 4 B
    assert snap["snapshots"]["disk_gb"] == pytest.approx(2 * 2 * 4 * 8 * 128 * 4 / 1e9, rel=0.5)
