"""`mossa tasks`: JSON and tables for the built-in suite, Flan input, argument errors, speed."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from mossa.cli import app
from mossa.tasks import CLUSTER_NAMES, CLUSTERS

MOSSA = Path(sys.executable).parent / "mossa"
JSON_KEYS = {
    "name", "cluster", "seen", "metric", "n_templates", "n_train", "n_validation", "n_test",
    "flesch_kincaid", "coleman_liau", "n_readability", "source", "package", "license",
    "original_split", "stands_in_for",
}  # fmt: skip


def run_mossa(
    *args: str, cwd: Path | None = None
) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run the installed command; return the result, wall seconds and child CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [str(MOSSA), *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, wall, cpu


def test_json_for_the_synthetic_suite_is_complete_and_fast():
    result, wall, cpu = run_mossa("tasks", "--json")
    print(f"mossa tasks --json: {wall:.1f} s wall, {cpu:.1f} s CPU")
    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)["tasks"]
    assert len(tasks) >= 30
    assert all(set(t) == JSON_KEYS for t in tasks)
    assert {t["cluster"] for t in tasks} == set(CLUSTERS)
    assert all(t["n_templates"] >= 10 for t in tasks)
    assert all(isinstance(t["flesch_kincaid"], float) for t in tasks)
    assert [t["seen"] for t in tasks] == [t["cluster"] != "unseen" for t in tasks]
    # The issue asks for < 10 s (about 5 s CPU on an idle 2-core machine). Test machines
    # are shared, so the bounds here are generous and on CPU time rather than wall time.
    assert cpu < 20, f"{cpu:.1f} s CPU"
    assert wall < 180


def test_tables_per_cluster():
    result = CliRunner().invoke(app, ["tasks", "--seed", "1"])
    assert result.exit_code == 0, result.output
    for cluster in CLUSTERS:
        assert f"{CLUSTER_NAMES[cluster]} ({cluster})" in result.output
    for name in ("wiki_nli", "english_to_velan", "linear_equations", "arithmetic_word_problems"):
        assert name in result.output
    assert "35 tasks (32 seen, 3 unseen) in 12 clusters" in result.output


def test_flan_option_and_warnings(tmp_path):
    rows = [{"inputs": f"q{i}", "targets": f"a{i}", "task": "snli"} for i in range(10)]
    rows += [{"inputs": "x", "targets": "y", "task": "fix_punct"}]
    path = tmp_path / "flan.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["tasks", "--flan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    tasks = json.loads(result.stdout)["tasks"]
    assert [(t["name"], t["cluster"], t["n_templates"]) for t in tasks] == [("snli", "nli", 1)]
    assert (tasks[0]["n_train"], tasks[0]["n_validation"], tasks[0]["n_test"]) == (7, 1, 2)
    assert result.stderr.startswith("warning: ") and "fix_punct" in result.stderr


def test_suite_and_flan_together_is_refused(tmp_path):
    result, _, _ = run_mossa("tasks", "--suite", "builtin", "--flan", "x.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: give either --suite or --flan, not both"
    result, _, _ = run_mossa("tasks", "--suite", "nonexistent.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: task file not found: nonexistent.yaml"
    assert list(tmp_path.iterdir()) == []


def test_json_for_the_real_suite_names_sources_and_is_fast():
    result, wall, cpu = run_mossa("tasks", "--suite", "real", "--json")
    print(f"mossa tasks --suite real --json: {wall:.1f} s wall, {cpu:.1f} s CPU")
    assert result.returncode == 0, result.stderr
    tasks = json.loads(result.stdout)["tasks"]
    assert len(tasks) >= 30 and {t["cluster"] for t in tasks} == set(CLUSTERS)
    assert sum(not t["seen"] for t in tasks) >= 5
    for t in tasks:
        assert t["n_templates"] == 10
        assert t["source"] and t["license"] and "==" in t["package"], t["name"]
    # the issue asks for under a minute; CPU time, as wall time varies on shared machines
    assert cpu < 45, f"{cpu:.1f} s CPU"
