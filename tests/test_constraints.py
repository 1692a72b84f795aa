"""The setup path installs pinned versions: constraints.txt covers mossa's dependency tree."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"


def pins() -> dict[str, str]:
    found = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
            assert match, f"constraints.txt: {line!r} is not name==version"
            found[canonicalize_name(match[1])] = match[2]
    return found


def installed_tree(root: str) -> dict[str, str]:
    """Installed distributions that ``root`` needs, with the extras that are installed."""
    seen: dict[str, str] = {}
    todo = [Requirement(root)]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue  # an extra that is not installed
        if name in seen:
            continue
        seen[name] = dist.version
        for text in dist.requires or []:
            child = Requirement(text)
            extras = req.extras or {""}
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
                todo.append(child)
    return seen


def test_every_installed_dependency_is_pinned_at_its_installed_version():
    tree = installed_tree("mossa[dev,ray,flan,gemma]")
    tree.pop("mossa")
    assert len(tree) > 40, "the dependency walk found too little to be right"
    pinned = pins()
    unpinned = sorted(set(tree) - set(pinned))
    assert not unpinned, f"not in constraints.txt (run `make lock`): {unpinned}"
    # torch is pinned without the local tag of its build (+cpu, +cu128)
    differ = {n: (v, pinned[n]) for n, v in tree.items() if v.split("+")[0] != pinned[n]}
    assert not differ, f"installed vs pinned (run `make setup` or `make lock`): {differ}"
