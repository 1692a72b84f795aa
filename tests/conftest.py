"""Fixtures shared by several test modules."""

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread (and the machine is shared)."""
    import torch  # here, not at module level: some tests check what importing mossa loads

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the mossa console entry point in this process: (exit code, stdout, stderr)."""
    from mossa import cli

    monkeypatch.setattr(sys, "argv", ["mossa", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as done:
        code = done.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def mossa_cmd(*args: str) -> list[str]:
    """The mossa command line, run with this interpreter."""
    return [sys.executable, "-m", "mossa.cli", *args]


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory):
    """A private model cache (the tiny base is built once per session)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def smoke_env(smoke_cache):
    return {**os.environ, "MOSSA_CACHE_DIR": str(smoke_cache), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, smoke_env):
    """`mossa run --profile demo-smoke` once per session: (run dir, completed process).

    Tests that damage a run work on a copy of it (see test_reliability.py).
    """
    out = tmp_path_factory.mktemp("smoke")
    cmd = mossa_cmd("run", "--profile", "demo-smoke", "--out", str(out))
    done = subprocess.run(cmd, capture_output=True, text=True, env=smoke_env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done
