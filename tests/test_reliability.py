"""Fault injection on a real run directory: what mossa promises in docs/reliability.md.

Each test damages a copy of the session's demo-smoke run (or kills, races or starves a
run) and checks the promise: identical tables after a resume or a rebuild, one line
naming the file and exit 2 for anything corrupt, nothing used from a failed stage.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import mossa_cmd, run_main
from mossa.pipeline import runner as pipeline

pytestmark = pytest.mark.slow
STAGES = ("tasks", "train", "evaluate", "extract", "analyze", "report")


def copy_run(smoke_run, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(smoke_run[0], run)
    return run


def table_contents(run: Path) -> dict:
    """Every table of RUN/tables: CSV and JSON bytes, npz arrays (zip headers hold times)."""
    out = {}
    for path in sorted((run / "tables").rglob("*")):
        key = str(path.relative_to(run / "tables"))
        if path.suffix == ".npz":
            with np.load(path) as data:
                out[key] = {k: data[k].tobytes() for k in data.files}
        elif path.is_file() and path.name != "checksums.json":
            out[key] = path.read_bytes()
    return out


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``mossa ARGS`` in this process: (exit code, stderr)."""
    code, _, err = run_main(monkeypatch, capsys, *args)
    return code, err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def rerun(run: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    cmd = mossa_cmd("run", "--profile", "demo-smoke", "--out", str(run), *extra)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def an_activation(run: Path, model: str = "sft") -> Path:
    return sorted((run / "activations" / model).glob("*.safetensors"))[0]


# ---------------------------------------------------------------------------- kills


def test_kill_during_each_stage_then_resume_gives_identical_tables(smoke_run, smoke_env, tmp_path):
    run = tmp_path / "run"
    for stage in STAGES:
        cmd = mossa_cmd("run", "--profile", "demo-smoke", "--out", str(run))
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=smoke_env)
        for line in proc.stderr:
            if line.startswith(f"{stage} ..."):
                time.sleep(0.5)
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        entry = pipeline.read_manifest(run)["stages"].get(stage, {})
        assert entry.get("status") != "done" or stage in ("tasks", "report"), (stage, entry)
    done = rerun(run, smoke_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert table_contents(run) == table_contents(smoke_run[0])
    assert not list(run.rglob("*.tmp")), "temporary files left behind"


def test_analyze_and_report_clear_temp_files_a_kill_left(smoke_run, tmp_path, monkeypatch, capsys):
    """A kill inside an atomic write leaves ``.NAME.HEX.tmp``; the stage run again removes it."""
    run = copy_run(smoke_run, tmp_path)
    stale = [
        run / "tables" / ".cka.csv.0123456789ab.tmp",
        run / "figures" / ".cka_layers.png.0123456789ab.tmp",
    ]
    for path in stale:
        path.write_bytes(b"half a file")
    for stage in ("analyze", "report"):
        code, err = run_cli(monkeypatch, capsys, stage, str(run))
        assert code == 0, err
    assert not any(p.exists() for p in stale)
    assert table_contents(run) == table_contents(smoke_run[0])


# ---------------------------------------------------------------------------- damage


def test_corrupted_activation_values_are_refused_then_rebuilt(
    smoke_run, smoke_env, tmp_path, monkeypatch, capsys
):
    run = copy_run(smoke_run, tmp_path)
    target = an_activation(run)
    data = bytearray(target.read_bytes())
    data[-1000:-200] = np.full(200, 1e3, dtype=np.float32).tobytes()  # 200 floats
    target.write_bytes(bytes(data))

    code, err = run_cli(monkeypatch, capsys, "analyze", str(run))
    assert code == 2
    assert_one_line_error(err, str(target), "checksum", f"mossa run --out {run} --redo extract")
    assert pipeline.read_manifest(run)["stages"]["analyze"]["status"] == "failed"
    code, err = run_cli(monkeypatch, capsys, "report", str(run))  # stale tables are not used
    assert code == 2
    assert_one_line_error(err, "stage analyze failed")

    done = rerun(run, smoke_env, "--redo", "extract")
    assert done.returncode == 0, done.stderr[-3000:]
    assert table_contents(run) == table_contents(smoke_run[0])


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_unreadable_activation_file_names_the_file(
    smoke_run, tmp_path, monkeypatch, capsys, damage
):
    run = copy_run(smoke_run, tmp_path)
    target = an_activation(run, "control")
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a tensor\n")
    code, err = run_cli(monkeypatch, capsys, "analyze", str(run))
    assert code == 2
    assert_one_line_error(err, str(target), "--redo extract")


def test_damaged_adapter_is_refused_then_retrained_identical(
    smoke_run, smoke_env, tmp_path, monkeypatch, capsys
):
    run = copy_run(smoke_run, tmp_path)
    weights = run / "adapters" / "sft" / "adapter_model.safetensors"
    original = weights.read_bytes()
    data = bytearray(original)
    data[-64:] = bytes(64)
    weights.write_bytes(bytes(data))
    shutil.rmtree(run / "activations" / "sft")  # extraction must read the adapter again

    code, err = run_cli(monkeypatch, capsys, "extract", str(run))
    assert code == 2
    assert_one_line_error(err, str(weights), "--redo train")

    done = rerun(run, smoke_env, "--redo", "train")
    assert done.returncode == 0, done.stderr[-3000:]
    assert weights.read_bytes() == original  # retrained, and training is deterministic
    assert table_contents(run) == table_contents(smoke_run[0])


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_last_row(path: Path) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))


def _not_utf8(path: Path) -> None:
    path.write_bytes(b'{"model": "\xff\xfe"}')


def _not_object(path: Path) -> None:
    path.write_text("[1, 2, 3]\n")


def _not_list(path: Path) -> None:
    path.write_text('{"task": "t"}\n')


DAMAGES = {
    "cka.csv truncated": ("tables/cka.csv", _truncate, "report", "--redo analyze"),
    "cka.csv row dropped": ("tables/cka.csv", _drop_last_row, "report", "checksum"),
    "layer_groups.json truncated": (
        "tables/layer_groups.json",
        _truncate,
        "report",
        "--redo analyze",
    ),
    "cross-layer npz truncated": ("tables/cka_cross_layer/*.npz", _truncate, "report", "analyze"),
    "table checksums not an object": ("tables/checksums.json", _not_object, "report", "object"),
    "activation manifest not UTF-8": ("activations/base/*.json", _not_utf8, "analyze", "UTF-8"),
    "activation manifest not an object": (
        "activations/sft/*.json",
        _not_object,
        "analyze",
        "expected an object",
    ),
    "tasks.json truncated": ("tasks/tasks.json", _truncate, "analyze", "--redo tasks"),
    "analysis prompts not UTF-8": (
        "tasks/analysis_prompts.jsonl",
        _not_utf8,
        "extract",
        "--redo tasks",
    ),
    "task metrics not a list": ("eval/task_metrics.json", _not_list, "analyze", "--redo evaluate"),
    "run manifest truncated": ("manifest.json", _truncate, "analyze", "delete it"),
}


@pytest.mark.parametrize("case", list(DAMAGES))
def test_corrupt_run_file_gives_one_line_naming_it(smoke_run, tmp_path, monkeypatch, capsys, case):
    pattern, damage, command, needle = DAMAGES[case]
    run = copy_run(smoke_run, tmp_path)
    target = sorted(run.glob(pattern))[0]
    damage(target)
    code, err = run_cli(monkeypatch, capsys, command, str(run))
    assert code == 2
    assert_one_line_error(err, str(target), needle)


# ---------------------------------------------------------------------------- races, disks


def test_two_concurrent_runs_on_one_directory(smoke_env, tmp_path):
    cmd = mossa_cmd("run", "--profile", "demo-smoke", "--out", str(tmp_path / "run"))
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=smoke_env)
    for line in first.stderr:  # wait until the first run holds the lock
        if line.startswith("tasks ..."):
            break
    second = subprocess.run(cmd, capture_output=True, text=True, env=smoke_env, timeout=120)
    assert second.returncode == 2
    assert_one_line_error(second.stderr, "is in use by", f"pid {first.pid}")
    first.stderr.read()
    assert first.wait(timeout=600) == 0
    stages = pipeline.read_manifest(tmp_path / "run")["stages"]
    assert all(stages[s]["status"] == "done" for s in STAGES)


def test_lock_of_a_killed_run_is_taken_over(tmp_path, capsys):
    from mossa.run_dir import RunDir

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom mossa.run_dir import RunDir\n"
            f"with RunDir({str(tmp_path)!r}).lock():\n    print('held', flush=True)\n"
            "    time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(ValueError, match=f"in use by pid {holder.pid}"):
        with RunDir(tmp_path).lock():
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with RunDir(tmp_path).lock():
        with RunDir(tmp_path).lock():  # re-entrant in one process
            held = json.loads((tmp_path / ".lock").read_text())
            assert held["pid"] == os.getpid()
    assert "ended without releasing its lock" in capsys.readouterr().err
    assert (tmp_path / ".lock").read_text() == ""


def test_full_disk_during_a_stage_gives_one_line_and_a_resumable_run(
    smoke_run, tmp_path, monkeypatch, capsys
):
    import mossa.analysis.tables as tables

    run = copy_run(smoke_run, tmp_path)
    before = table_contents(run)

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(tables, "atomic_write_text", full)
        code, err = run_cli(monkeypatch, capsys, "analyze", str(run))
    assert code == 2
    assert_one_line_error(err, "No space left on device", str(run / "tables"))
    assert pipeline.read_manifest(run)["stages"]["analyze"]["status"] == "failed"
    code, err = run_cli(monkeypatch, capsys, "analyze", str(run))
    assert code == 0, err
    assert table_contents(run) == before


def test_atomic_writes_follow_the_umask(tmp_path):
    from mossa.io import atomic_write_text

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_infinite_learning_rate_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    code, err = run_cli(
        monkeypatch, capsys, "run", "--profile", "demo-smoke", "--out", str(out),
        "--set", "training.lr=.inf",
    )  # fmt: skip
    assert code == 2
    assert_one_line_error(err, "training.lr")
    assert not out.exists()


def test_a_50_mb_field_is_refused_naming_file_line_and_field(tmp_path, monkeypatch, capsys):
    task_file = tmp_path / "tasks.jsonl"
    define = {"task": "big", "cluster": "sentiment", "templates": ["Say: {x}"]}
    big = {"task": "big", "inputs": {"x": "x" * 50_000_000}, "target": "y"}
    task_file.write_text(json.dumps(define) + "\n" + json.dumps(big) + "\n")
    out = tmp_path / "run"
    t0 = time.perf_counter()
    code, err = run_cli(
        monkeypatch, capsys, "run", "--profile", "demo-smoke", "--out", str(out),
        "--set", f"tasks.suite={task_file}",
    )  # fmt: skip
    assert code == 2 and time.perf_counter() - t0 < 60
    assert_one_line_error(err, f"{task_file}:2", "inputs", "50,000,000 characters")
    assert pipeline.read_manifest(out)["stages"]["tasks"]["status"] == "failed"


@pytest.fixture
def read_only_copy(smoke_run, tmp_path):
    """A copy of the smoke run on a tmpfs remounted read-only (needs root's mount)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)])
    if made.returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        shutil.copytree(smoke_run[0], mount / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount / "run"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_read_only_output_gives_one_line_and_changes_nothing(read_only_copy, monkeypatch, capsys):
    before = table_contents(read_only_copy)
    code, err = run_cli(monkeypatch, capsys, "analyze", str(read_only_copy))
    assert code == 2
    assert_one_line_error(err, str(read_only_copy), "Read-only file system")
    assert table_contents(read_only_copy) == before
