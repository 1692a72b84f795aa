"""One writer per run directory: an advisory lock on ``RUN/.lock``.

Two ``mossa run`` on one ``--out`` would train the same adapters twice and interleave
their manifest writes. :func:`hold_run_lock` takes an exclusive ``flock`` on
``RUN/.lock`` and writes who holds it (pid, host, command, start time) into the file.
The kernel drops the lock when its process ends, however it ends, so a lock left by a
crash (SIGKILL, power loss of a local disk) is stale by construction: the next run takes
it and says that the previous holder did not finish. A second process asking for a held
lock gets :class:`RunDirBusy` (a ValueError: one line, exit 2) naming the holder.

The lock is re-entrant within a process, so a stage command called from ``mossa run``
does not lock itself out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # resolved run dir -> nesting depth in this process
console = Console(stderr=True, soft_wrap=True)


class RunDirBusy(ValueError):
    """Another process holds the run directory's lock."""


def _holder(fh) -> dict:
    fh.seek(0)
    try:
        data = json.loads(fh.read() or "{}")
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict) -> str:
    if not holder:
        return "an unknown process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (
        f"pid {holder.get('pid')} on {holder.get('host')} "
        f"(`{holder.get('command')}`, started {started})"
    )


@contextlib.contextmanager
def hold_run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the duration of the block (created when missing).

    Raises
    ------
    RunDirBusy
        When another live process holds it; the message names that process.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fh = (run_dir / LOCK_NAME).open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirBusy(
                f"{run_dir} is in use by {_describe(_holder(fh))}; wait for it to finish "
                "or stop it, or choose another --out"
            ) from None
        previous = _holder(fh)
        if previous:
            console.print(
                f"[yellow]{run_dir}: the previous run ({_describe(previous)}) ended without "
                "releasing its lock; its finished stages are kept and the rest resumes[/yellow]"
            )
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
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            fh.seek(0)
            fh.truncate()  # an empty file: released cleanly
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()
