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


def _memory(*overrides):
    return make_plan(load_config(profile="llama2-7b-flan", overrides=list(overrides)))["gpu_memory"]


def test_llama2_7b_memory_matches_a_hand_computation():
    """Batch 16 x 1024 tokens, bf16, LoRA r=8 on q/v of 32 blocks (docs/training.md)."""
    gb = _memory()["estimate_gb"]
    tokens = 16 * 1024
    hand = {
        "weights": 6.74e9 * 2,
        "lora_and_optimizer": 8 * (4096 + 4096) * 2 * 32 * (4 + 4 + 4 + 4),
        "saved_activations": tokens * 32 * (21 * 4096 + 6 * 11008),
        "logits": tokens / 4 * 32000 * 4 * 3,  # a quarter of positions, 3 float32 copies
        "overhead": 1e9,
    }
    for part, value in hand.items():
        assert gb[part] == pytest.approx(value / 1e9, rel=0.01), part
    assert gb["total"] == pytest.approx(sum(hand.values()) / 1e9, rel=0.01)
    checkpointed = _memory("compute.gradient_checkpointing=true")["estimate_gb"]
    # block inputs (4 bytes per hidden unit per block) plus one block recomputed
    expected = tokens * (32 * 4 * 4096 + 21 * 4096 + 6 * 11008)
    assert checkpointed["saved_activations"] == pytest.approx(expected / 1e9, rel=0.01)


def test_7b_fits_80_gb_in_bf16_with_checkpointing_and_the_plan_says_so():
    assert _memory("compute.gpu_memory_gb=80", "compute.gradient_checkpointing=true")["fits"]
    plain = _memory("compute.gpu_memory_gb=80")
    assert plain["fits"] is False  # 16 x 1024 tokens of activations alone are ~80 GB
    assert plain["suggestion"]["change"] == {"gradient_checkpointing": True}
    assert plain["suggestion"]["total_gb"] < 80
    done = dry_run("--profile", "llama2-7b-flan", "--set", "compute.gpu_memory_gb=80")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "do not fit compute.gpu_memory_gb=80" in text
    assert "compute.gradient_checkpointing: true" in text


def test_16_gb_needs_4_bit_and_checkpointing():
    memory = _memory("compute.gpu_memory_gb=16")
    assert memory["fits"] is False
    change = memory["suggestion"]["change"]
    assert change["load_in"] == "4bit" and change["gradient_checkpointing"] is True
    assert memory["suggestion"]["total_gb"] <= 16
    quantised = _memory("compute.load_in=4bit")["estimate_gb"]["weights"]
    # linear layers at 4.5 bits (NF4 + absmax), embeddings and head in bf16
    linear = 6.74e9 - 2 * 32000 * 4096
    assert quantised == pytest.approx((linear * 0.53125 + 2 * 32000 * 4096 * 2) / 1e9, rel=0.01)


def test_random_real_shape_preset_is_sized_from_its_meta_model():
    plan = make_plan(
        load_config(profile="llama2-7b-flan", overrides=["model.base=random:llama-2-7b"])
    )
    assert plan["base_size"]["params"] == pytest.approx(6.74e9, rel=0.001)
    assert plan["base_size"]["embedding_params"] == 2 * 32000 * 4096
