"""Where built models live, and how they get there without ever being half-written.

A cache entry is a directory ``<cache_root>/<name>``. It is built in a hidden sibling
``.partial-<name>-<pid>-<random>`` and renamed into place only when complete, so an entry
that exists is always whole: a killed build leaves at most a ``.partial-*`` directory, which
the next build of the same name removes once its owning process is gone. A lock file per
name makes concurrent builders (e.g. several worker processes) wait for one build instead of
repeating it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

PARTIAL_PREFIX = ".partial-"


def cache_root() -> Path:
    """The mossa cache directory: ``$MOSSA_CACHE_DIR`` if set, else ``~/.cache/mossa``."""
    env = os.environ.get("MOSSA_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mossa"


def config_hash(payload: object, length: int = 12) -> str:
    """Short stable hash of a JSON-serialisable payload (sorted keys), for cache keys."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(root: Path, name: str) -> None:
    """Delete ``.partial-<name>-<pid>-*`` dirs whose process no longer runs (killed builds)."""
    for partial in root.glob(f"{PARTIAL_PREFIX}{name}-*"):
        pid_text = partial.name[len(PARTIAL_PREFIX) + len(name) + 1 :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(partial, ignore_errors=True)


@contextlib.contextmanager
def build_lock(root: Path, name: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<root>/.lock-<name>`` (blocks while another process builds)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".lock-{name}").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``target`` only if the block succeeds.

    On any exception (or KeyboardInterrupt) the temporary directory is deleted and
    ``target`` is left untouched. Call under :func:`build_lock` so ``target`` cannot appear
    meanwhile; an existing ``target`` is an error rather than silently replaced.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target.parent, target.name)
    tmp = Path(
        tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{target.name}-{os.getpid()}-", dir=target.parent)
    )
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an entry is an ordinary directory
        if target.exists():
            raise FileExistsError(f"cache entry appeared while building: {target}")
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_entry(target: Path) -> None:
    """Delete a cache entry for a forced rebuild: rename it aside first so removal is atomic."""
    target = Path(target)
    if not target.exists():
        return
    doomed = target.with_name(f"{PARTIAL_PREFIX}{target.name}-{os.getpid()}-removed")
    os.rename(target, doomed)
    shutil.rmtree(doomed)


def ensure_entry(
    root: Path, name: str, build: Callable[[Path], object], *, force: bool = False
) -> tuple[Path, bool]:
    """Return ``(<root>/<name>, built)``, running ``build(tmp_dir)`` first if the entry is missing.

    ``build`` writes the entry's files into the directory it is given; the directory is
    renamed into place only after ``build`` returns. ``force`` rebuilds an existing entry.
    """
    target = Path(root) / name
    with build_lock(Path(root), name):
        if force:
            remove_entry(target)
        if target.is_dir():
            return target, False
        with atomic_dir(target) as tmp:
            build(tmp)
    return target, True
