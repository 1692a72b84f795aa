"""File I/O shared by every stage: atomic writes, checksums, and readers of run files.

Every artifact of a run is written through :func:`atomic_write_bytes` /
:func:`atomic_write_text`: the data goes to a temporary file in the target's directory
and is moved into place with ``os.replace``, so a reader (or a resumed run) sees either
the old file or the complete new one, never a half-written file. Files follow the umask.

Every file a stage writes is read back by a later stage. When one is unreadable or
damaged (truncated, garbled, not UTF-8, the wrong JSON shape, bytes that no longer match
their checksum), the reader raises :class:`CorruptRunFile`: a ValueError whose one-line
message names the file, what is wrong, and the command that rebuilds it, so the CLI
reports it and exits 2 instead of analysing damaged numbers or printing a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

TEMP_SUFFIX = ".tmp"
CHECKSUM_FILE = "checksums.json"
_CHUNK = 1 << 20


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, then rename).

    The parent directory is created when missing. On any error the temporary file is
    removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    # os.open with mode 0o666 lets the umask decide the permissions, as for any other file
    # (tempfile.mkstemp would make every artifact private to its owner).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write (a full disk) names no file: name it
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_write_bytes` left under ``folder``
    (a stage calls it before rewriting its outputs); returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


class CorruptRunFile(ValueError):
    """A run file that cannot be used as it is; the message says how to rebuild it."""


def rebuild_command(stage: str, run_dir: Path | str | None) -> str:
    """The command that rebuilds the outputs of ``stage`` in ``run_dir``."""
    where = str(run_dir) if run_dir is not None else "RUN"
    return f"mossa run --out {where} --redo {stage}"


def corrupt(path: Path, problem: str, stage: str, run_dir: Path | None) -> CorruptRunFile:
    """The error for ``path``: ``<path>: <problem>; rebuild it with `<command>```."""
    return CorruptRunFile(f"{path}: {problem}; rebuild it with `{rebuild_command(stage, run_dir)}`")


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_text(path: Path, *, stage: str, run_dir: Path | None) -> str:
    """A run file's UTF-8 text (CorruptRunFile when missing, unreadable or not UTF-8)."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise corrupt(path, "missing", stage, run_dir) from None
    except UnicodeDecodeError as exc:
        raise corrupt(
            path, f"not UTF-8 text ({exc.reason} at byte {exc.start})", stage, run_dir
        ) from None
    except OSError as exc:
        raise corrupt(path, f"cannot be read ({exc.strerror})", stage, run_dir) from None


def read_json(path: Path, expect: type, *, stage: str, run_dir: Path | None):
    """A run file's JSON value, checked to be an ``expect`` (dict or list)."""
    text = read_text(path, stage=stage, run_dir=run_dir)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise corrupt(
            path, f"not valid JSON ({exc.msg} at line {exc.lineno})", stage, run_dir
        ) from None
    if not isinstance(value, expect):
        kind = "an object" if expect is dict else "a list"
        raise corrupt(path, f"expected {kind}, found {type(value).__name__}", stage, run_dir)
    return value


def write_checksums(folder: Path, names: list[str]) -> None:
    """Record the SHA-256 of ``folder/<name>`` for each name in ``folder/checksums.json``.

    Names are paths relative to ``folder`` (sub-folders allowed).
    """
    folder = Path(folder)
    sums = {name: sha256_file(folder / name) for name in sorted(names)}
    atomic_write_text(folder / CHECKSUM_FILE, json.dumps(sums, indent=1) + "\n")


def verify_checksums(folder: Path, *, stage: str, run_dir: Path | None) -> None:
    """Check every file listed in ``folder/checksums.json`` against its recorded SHA-256."""
    folder = Path(folder)
    sums = read_json(folder / CHECKSUM_FILE, dict, stage=stage, run_dir=run_dir)
    for name, want in sorted(sums.items()):
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts or not isinstance(want, str):
            raise corrupt(folder / CHECKSUM_FILE, f"bad entry {name!r}", stage, run_dir)
        if not path.is_file():
            raise corrupt(path, "missing", stage, run_dir)
        if sha256_file(path) != want:
            raise corrupt(
                path, f"bytes do not match the checksum in {CHECKSUM_FILE}", stage, run_dir
            )


def checksums_match(folder: Path) -> bool:
    """True when ``folder/checksums.json`` exists and every listed file matches it."""
    try:
        verify_checksums(folder, stage="", run_dir=None)
    except CorruptRunFile:
        return False
    return True
