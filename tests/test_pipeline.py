"""Stage skipping: a finished stage is skipped unless the config sections it reads change."""

from dataclasses import replace

import pytest

from mossa.config import load_config
from mossa.pipeline import runner as pipeline


@pytest.fixture
def fake_stages(monkeypatch):
    calls: list[str] = []

    def runner(name):
        def run(run_dir, cfg):
            calls.append(name)
            (run_dir / f"{name}.out").write_text(name)

        return run

    stages = tuple(
        replace(s, run=runner(s.name), outputs=(f"{s.name}.out",)) for s in pipeline.STAGES
    )
    monkeypatch.setattr(pipeline, "STAGES", stages)
    return calls


def test_second_run_skips_everything(tmp_path, fake_stages):
    cfg = load_config(profile="demo-smoke")
    pipeline.run_pipeline(tmp_path, cfg)
    assert fake_stages == list(pipeline.STAGE_NAMES)
    fake_stages.clear()
    pipeline.run_pipeline(tmp_path, cfg)
    assert fake_stages == []
    assert (tmp_path / "config.resolved.yaml").exists()


def test_changed_section_reruns_that_stage_and_later_ones(tmp_path, fake_stages):
    pipeline.run_pipeline(tmp_path, load_config(profile="demo-smoke"))
    fake_stages.clear()
    cfg = load_config(profile="demo-smoke", overrides=["extraction.batch_size=3"])
    pipeline.run_pipeline(tmp_path, cfg, force=True)
    assert fake_stages == ["extract", "analyze", "report"]


def test_executor_settings_do_not_invalidate_training(tmp_path, fake_stages):
    pipeline.run_pipeline(tmp_path, load_config(profile="demo-smoke"))
    fake_stages.clear()
    cfg = load_config(profile="demo-smoke", overrides=["executor.workers=2"])
    pipeline.run_pipeline(tmp_path, cfg)
    assert fake_stages == []


def test_failed_stage_is_redone_and_resumes_in_place(tmp_path, fake_stages, monkeypatch):
    cfg = load_config(profile="demo-smoke")
    stages = list(pipeline.STAGES)
    good_extract = stages[3].run
    failures = {"left": 1}

    def flaky(run_dir, cfg_):
        if failures["left"]:
            failures["left"] -= 1
            (run_dir / "extract.out").write_text("partial")
            raise RuntimeError("killed")
        good_extract(run_dir, cfg_)

    stages[3] = replace(stages[3], run=flaky)
    monkeypatch.setattr(pipeline, "STAGES", tuple(stages))
    with pytest.raises(RuntimeError):
        pipeline.run_pipeline(tmp_path, cfg)
    stages = pipeline.read_manifest(tmp_path)["stages"]
    assert stages["extract"]["status"] == "failed"
    assert stages["extract"]["error"] == "RuntimeError: killed"
    assert "analyze" not in stages
    fake_stages.clear()
    pipeline.run_pipeline(tmp_path, cfg)
    assert fake_stages == ["extract", "analyze", "report"]
    assert (tmp_path / "extract.out").read_text() == "extract"


def test_only_one_stage_invalidates_later_ones(tmp_path, fake_stages):
    cfg = load_config(profile="demo-smoke")
    pipeline.run_pipeline(tmp_path, cfg)
    fake_stages.clear()
    pipeline.run_pipeline(tmp_path, cfg, only="analyze")
    assert fake_stages == ["analyze"]
    assert "report" not in pipeline.read_manifest(tmp_path)["stages"]
    fake_stages.clear()
    pipeline.run_pipeline(tmp_path, cfg)
    assert fake_stages == ["report"]


def test_executor_threads_sets_torch_threads(tmp_path, fake_stages):
    import torch

    before = torch.get_num_threads()
    try:
        pipeline.run_pipeline(
            tmp_path, load_config(profile="demo-smoke", overrides=["executor.threads=1"])
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_changed_config_is_refused_without_force(tmp_path, fake_stages):
    pipeline.run_pipeline(tmp_path, load_config(profile="demo-smoke"))
    before = (tmp_path / "config.resolved.yaml").read_text()
    fake_stages.clear()
    cfg = load_config(profile="demo-smoke", overrides=["training.lr=0.5"])
    with pytest.raises(ValueError, match=r"training differ.*train, evaluate.*--force"):
        pipeline.run_pipeline(tmp_path, cfg)
    assert fake_stages == []
    assert (tmp_path / "config.resolved.yaml").read_text() == before
    pipeline.run_pipeline(tmp_path, cfg, force=True)
    assert fake_stages == ["train", "evaluate", "extract", "analyze", "report"]


def test_cli_refuses_changed_config_with_exit_2(tmp_path, fake_stages, monkeypatch, capsys):
    from mossa import cli

    def exit_code(*extra):
        args = ["mossa", "run", "--profile", "demo-smoke", "--out", str(tmp_path), *extra]
        monkeypatch.setattr("sys.argv", args)
        with pytest.raises(SystemExit) as done:
            cli.main()
        return done.value.code

    assert exit_code() == 0
    assert exit_code("--set", "analysis.bootstrap=7") == 2
    assert "analysis differ" in capsys.readouterr().err
    assert exit_code("--set", "analysis.bootstrap=7", "--force") == 0


def test_stage_alone_refuses_the_outputs_of_a_failed_stage(tmp_path, fake_stages, monkeypatch):
    cfg = load_config(profile="demo-smoke")
    pipeline.run_pipeline(tmp_path, cfg)
    stages = list(pipeline.STAGES)

    def broken(run_dir, cfg_):
        raise RuntimeError("disk gone")

    stages[4] = replace(stages[4], run=broken)  # analyze
    monkeypatch.setattr(pipeline, "STAGES", tuple(stages))
    with pytest.raises(RuntimeError):
        pipeline.run_pipeline(tmp_path, cfg, only="analyze")
    fake_stages.clear()
    with pytest.raises(ValueError, match="stage analyze failed, so its outputs cannot be used"):
        pipeline.run_pipeline(tmp_path, cfg, only="report")
    assert fake_stages == []


def test_redo_runs_a_finished_stage_and_every_later_one(tmp_path, fake_stages):
    cfg = load_config(profile="demo-smoke")
    pipeline.run_pipeline(tmp_path, cfg)
    fake_stages.clear()
    pipeline.run_pipeline(tmp_path, cfg, redo="extract")
    assert fake_stages == ["extract", "analyze", "report"]
    with pytest.raises(ValueError, match="--redo: unknown stage 'extraction'; stages: tasks"):
        pipeline.run_pipeline(tmp_path, cfg, redo="extraction")
