"""The ``real`` suite: human-labelled datasets read from pinned package archives.

Every task of :data:`catalog.SPECS` is read from its package's archive (archives.py),
de-duplicated by underlying example, and split so that no example is in two splits:
the dataset's own train/test split where it ships one, otherwise a hold-out drawn by a
hash of the example (so a sentence shared by two tasks lands on the same side of the cut
in both). Templates are applied only when rendering, so one example never appears in two
splits under different wordings. See docs/tasks.md for the task list and licences.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from mossa.tasks.clusters import UNSEEN_CLUSTER
from mossa.tasks.real.archives import cache_dir, load_sources, read_members
from mossa.tasks.real.catalog import SPECS, RealSpec, members_of
from mossa.tasks.real.readers import Row
from mossa.tasks.real.templates import build_templates
from mossa.tasks.types import Example, Task


@cache
def _rows(name: str, root: Path) -> tuple[Row, ...]:
    """The de-duplicated rows of task ``name`` read from the archives in ``root``: the
    first of each key and of each input. Cached per process and cache directory."""
    spec = _spec(name)
    source = load_sources()[spec.package]
    files = read_members(source, list(spec.members), root, batch=members_of(spec.package))
    seen: dict[str, Row] = {}
    shown: set[str] = set()
    for row in spec.reader(files):
        inputs = json.dumps(row.inputs, sort_keys=True)  # cut passages may coincide
        if row.key not in seen and inputs not in shown:
            seen[row.key] = row
            shown.add(inputs)
    if len(seen) < 3:
        raise ValueError(f"real task {name!r}: only {len(seen)} examples in {source.pin}")
    return tuple(seen.values())


def _spec(name: str) -> RealSpec:
    for spec in SPECS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def _order(rows: list[Row], seed: int) -> list[Row]:
    """``rows`` in a seeded order that depends only on each row's key."""
    return sorted(rows, key=lambda r: hashlib.sha256(f"{seed}:{r.key}".encode()).hexdigest())


def holdout_sizes(n: int, n_validation: int, n_test: int) -> tuple[int, int]:
    """Validation and test sizes for ``n`` examples of a single-split dataset.

    Test gets ``n_test`` but at most two fifths of the data, validation ``n_validation``
    but at most a tenth (at least one each): small real datasets (a few hundred rows)
    still give about 100 test examples, which evaluation needs more than training does.
    """
    if n < 3:
        raise ValueError(f"need at least 3 examples to split, got {n}")
    return min(n_validation, max(1, n // 10)), min(n_test, max(1, n * 2 // 5))


def _examples(rows: list[Row]) -> tuple[Example, ...]:
    return tuple(Example(inputs=row.inputs, target=row.target) for row in rows)


def build_real_task(
    spec: RealSpec, *, seed: int, n_train: int, n_validation: int, n_test: int
) -> Task:
    """Split ``spec``'s rows and wrap them in a :class:`Task` with their provenance."""
    rows = list(_rows(spec.name, cache_dir()))
    shipped_test = [r for r in rows if r.split == "test"]
    if shipped_test:
        test = _order(shipped_test, seed)[:n_test]
        rest = _order([r for r in rows if r.split != "test"], seed)
        n_val = min(n_validation, max(1, len(rest) // 10))
        validation, train = rest[:n_val], rest[n_val:]
    else:
        ordered = _order(rows, seed)
        n_val, n_tst = holdout_sizes(len(ordered), n_validation, n_test)
        test, validation, train = (
            ordered[:n_tst], ordered[n_tst : n_tst + n_val], ordered[n_tst + n_val :],
        )  # fmt: skip
    source = load_sources()[spec.package]
    return Task(
        name=spec.name,
        cluster=spec.cluster,
        seen=spec.cluster != UNSEEN_CLUSTER,
        templates=build_templates(spec.body, spec.instructions, spec.options),
        train=_examples(train[:n_train]),
        validation=_examples(validation),
        test=_examples(test),
        metric=spec.metric,
        source=spec.source,
        package=source.pin,
        license=spec.license,
        original_split=spec.original_split,
        stands_in_for=spec.stands_in_for,
    )


def load_real(
    *, seed: int, n_train: int, n_validation: int, n_test: int, clusters: list[str] | None = None
) -> list[Task]:
    """The real tasks (of ``clusters`` only, when given), in catalog order."""
    return [
        build_real_task(spec, seed=seed, n_train=n_train, n_validation=n_validation, n_test=n_test)
        for spec in SPECS
        if clusters is None or spec.cluster in clusters
    ]
