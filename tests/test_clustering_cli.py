"""`mossa clustering` end to end on the regex-smoke profile, and its bad-input exit code."""

from __future__ import annotations

import base64
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from mossa.cli import app
from mossa.clustering.config import PROFILE_DIR, ClusteringConfig, load_clustering_config
from mossa.clustering.report import POSITION_NAMES
from mossa.clustering.study import run_study

MOSSA = Path(sys.executable).parent / "mossa"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clustering") / "smoke"
    result = CliRunner().invoke(app, ["clustering", "--profile", "regex-smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def _csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return reader.fieldnames, list(reader)


def test_smoke_writes_ari_table_for_every_step_layer_split(smoke_run):
    out, _ = smoke_run
    cfg = load_clustering_config("regex-smoke")
    columns, rows = _csv(out / "tables" / "ari.csv")
    assert columns == ["step", "layer", "split", "position", "ari"]
    keys = {(int(r["step"]), int(r["layer"]), r["split"], r["position"]) for r in rows}
    expected = {
        (s, layer, split, "separator")
        for s in cfg.training.checkpoints
        for layer in range(cfg.model.n_layer + 1)
        for split in ("train", "validation")
    }
    assert keys == expected and len(rows) == len(expected)
    assert all(-0.5 <= float(r["ari"]) <= 1.0 for r in rows)


def test_smoke_writes_accuracy_figures_report_and_config(smoke_run):
    out, output = smoke_run
    cfg = load_clustering_config("regex-smoke")
    columns, rows = _csv(out / "tables" / "accuracy.csv")
    assert columns == ["step", "split", "accuracy"]
    assert {(int(r["step"]), r["split"]) for r in rows} == {
        (s, split) for s in cfg.training.checkpoints for split in ("train", "validation")
    }
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 for r in rows)
    step0 = [float(r["accuracy"]) for r in rows if r["step"] == "0"]
    final = [float(r["accuracy"]) for r in rows if int(r["step"]) == cfg.training.steps]
    assert max(final) > max(step0)  # training does something
    png = b"\x89PNG\r\n\x1a\n"
    for name in ("ari.png", "accuracy.png"):
        assert (out / "figures" / name).read_bytes().startswith(png)
    html = (out / "report.html").read_text(encoding="utf-8")
    embedded = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(embedded) == (out / "figures" / "ari.png").read_bytes()
    assert "reproduce" in html and "reproduce" in output
    assert "separator (&lt;sep&gt; after the instruction)" in html  # the clustered state
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text(encoding="utf-8"))
    assert ClusteringConfig.model_validate(resolved) == cfg


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("model:\n  n_layer: 2\n  widht: 8\n", "model.widht"),
        ("analysis:\n  position: middle\n", "analysis.position"),
        ("tasks:\n  regexes_per_task: 0\n", "tasks.regexes_per_task"),
        ("tasks:\n  n_tasks: 80\n", "tasks.n_tasks (80) is more than the vocabulary"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, yaml_text, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text, encoding="utf-8")
    proc = subprocess.run(
        [str(MOSSA), "clustering", "--config", str(bad), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert key in lines[0] and str(bad) in lines[0]
    assert not (tmp_path / "o").exists()


def test_study_measures_every_position_of_one_model_per_m_and_seed(tmp_path):
    cfg = load_clustering_config("regex-smoke")
    rows = run_study(cfg, tmp_path, ms=(1, 2), seeds=(5,))
    assert [(r["m"], r["seed"]) for r in rows[::4]] == [(1, 5), (2, 5)]
    assert [r["position"] for r in rows[:4]] == list(POSITION_NAMES)
    for m in (1, 2):
        run = tmp_path / f"M{m}_seed5"
        resolved = load_clustering_config(file=run / "config.resolved.yaml")
        assert resolved.tasks.regexes_per_task == m and resolved.seed == 5
        suite = json.loads((run / "tasks.json").read_text(encoding="utf-8"))
        assert all(len(t["regexes"]) == m for t in suite["tasks"])
        _, ari = _csv(run / "tables" / "ari.csv")
        assert {int(r["step"]) for r in ari} == {0, cfg.training.steps}
        final = {
            r["position"]: float(r["ari"])
            for r in ari
            if (int(r["step"]), r["layer"], r["split"])
            == (cfg.training.steps, str(cfg.model.n_layer), "validation")
        }
        for row in rows:
            if row["m"] == m:
                assert row["deepest_final"] == pytest.approx(final[row["position"]], abs=1e-6)
    _, table = _csv(tmp_path / "study.csv")
    assert len(table) == 8
    markdown = (tmp_path / "study.md").read_text(encoding="utf-8").splitlines()
    assert len(markdown) == 2 + 8 and markdown[2].startswith("| 1 | separator")


def _float_fields(model) -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        if isinstance(field.default, BaseModel):
            paths += [f"{name}.{sub}" for sub in _float_fields(type(field.default))]
        elif field.annotation is float:
            paths.append(name)
    return paths


def test_every_float_field_refuses_inf_and_nan():
    fields = _float_fields(ClusteringConfig)
    assert {"training.lr", "model.dropout", "analysis.finding_margin"} <= set(fields)
    for path in fields:
        for value in [".inf", "-.inf", ".nan", "nan"]:
            item = f"{path}={value}"
            with pytest.raises(ValueError, match=rf"^--set {re.escape(item)}: .*finite number"):
                load_clustering_config("regex-smoke", overrides=[item])


def test_top_level_set_and_blame():
    assert load_clustering_config("regex-smoke", overrides=["seed=4"]).seed == 4
    with pytest.raises(ValueError, match=r"^--set training\.steps=0: training\.steps: "):
        load_clustering_config("regex-smoke", overrides=["training.steps=0"])
    # a check across fields names the file and the --set items that changed that section
    with pytest.raises(ValueError) as info:
        load_clustering_config("regex-smoke", overrides=["seed=2", "model.n_head=3"])
    message = str(info.value)
    assert message.startswith(str(PROFILE_DIR / "regex-smoke.yaml") + " with --set model.n_head=3:")
    assert "divisible" in message and "seed=2" not in message


@pytest.mark.parametrize("name", ["/abs", "../x", "a/b", ".hidden", "x "])
def test_names_that_leave_runs_dir_are_refused(name, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": name}), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: name: .*a name must be"):
        load_clustering_config(file=path)


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat


def test_config_command_shows_every_key_with_the_profiles_value():
    result = CliRunner().invoke(app, ["config", "clustering", "--profile", "regex-smoke", "--json"])
    assert result.exit_code == 0, result.output
    keys = json.loads(result.output)["keys"]
    smoke = _flatten(load_clustering_config("regex-smoke").model_dump(mode="json"))
    defaults = _flatten(ClusteringConfig().model_dump(mode="json"))
    assert [row["key"] for row in keys] == list(smoke)
    assert {row["key"]: row["value"] for row in keys} == smoke
    assert {row["key"]: row["default"] for row in keys} == defaults
    assert all(row["description"] for row in keys)
    assert smoke["tasks.n_tasks"] != defaults["tasks.n_tasks"]
