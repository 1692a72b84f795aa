"""The console entry point: bad input and unwritable or full disks give one line, exit 2."""

from __future__ import annotations

import errno
import os
import sys

import pytest

import mossa.similarity.files
from conftest import run_main
from mossa import cli


def _raise(exc: BaseException):
    def fail(*_args, **_kwargs):
        raise exc

    return fail


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/x/y"), "/x/y: Permission denied"),
        (
            PermissionError(errno.EPERM, "Operation not permitted", "/x/y"),
            "/x/y: Operation not permitted",
        ),
        (OSError(errno.ENOSPC, "No space left on device", "/x/y"), "/x/y: No space left on device"),
        (OSError(errno.EROFS, "Read-only file system", "/ro/f"), "/ro/f: Read-only file system"),
        (OSError(errno.ENOSPC, "No space left on device"), "[Errno 28] No space left on device"),
        (
            OSError(errno.EACCES, "Permission denied", "/a/tmp", None, "/a/final"),
            "/a/tmp -> /a/final: Permission denied",
        ),
    ],
)
def test_disk_errors_give_one_line_naming_the_path(monkeypatch, capsys, exc, expected):
    monkeypatch.setattr(mossa.similarity.files, "load_activations", _raise(exc))
    code, out, err = run_main(monkeypatch, capsys, "cka", "a.npy", "b.npy")
    assert code == 2
    assert err == f"error: {expected}\n" and out == ""


@pytest.mark.parametrize(
    "exc", [OSError(errno.EIO, "Input/output error", "/x/y"), RuntimeError("a bug")]
)
def test_other_errors_keep_their_traceback(monkeypatch, exc):
    monkeypatch.setattr(mossa.similarity.files, "load_activations", _raise(exc))
    monkeypatch.setattr(sys, "argv", ["mossa", "cka", "a.npy", "b.npy"])
    with pytest.raises(type(exc)):
        cli.main()


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root: chmod does not stop root from writing into a directory"
)
def test_real_read_only_directory(monkeypatch, capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        out_dir = locked / "run"
        code, _, err = run_main(
            monkeypatch, capsys, "clustering", "--profile", "regex-smoke", "--out", str(out_dir)
        )
    finally:
        locked.chmod(0o755)
    assert code == 2
    assert err.startswith(f"error: {out_dir}") and "Permission denied" in err
    assert err.count("\n") == 1


def test_set_errors_name_the_item(monkeypatch, capsys):
    code, _, err = run_main(monkeypatch, capsys, "run", "--set", "name=/tmp/evil", "--dry-run")
    assert code == 2
    assert err.startswith("error: --set name=/tmp/evil: name: ") and err.count("\n") == 1
    code, _, err = run_main(monkeypatch, capsys, "run", "--set", "training.lr=.inf", "--dry-run")
    assert code == 2 and err.startswith("error: --set training.lr=.inf: training.lr: ")
