"""Config loading: profiles, overrides, errors that name what is wrong, and `mossa config`."""

import json
import re

import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from conftest import run_main
from mossa.cli import app
from mossa.cli.config import CONFIG_KINDS
from mossa.config import (
    RunConfig,
    TrainingConfig,
    apply_override,
    dump_config,
    field_docs,
    load_config,
    profile_names,
)


def test_every_bundled_profile_validates():
    names = profile_names()
    assert {"demo", "demo-smoke", "gemma-270m", "llama2-7b-flan"} <= set(names)
    for name in names:
        assert isinstance(load_config(profile=name), RunConfig)


def test_default_profile_is_demo():
    assert load_config().name == "demo"


def test_set_overrides_a_key_with_yaml_typing():
    cfg = load_config(profile="demo", overrides=["training.sft_steps=10", "analysis.kernel=rbf"])
    assert cfg.training.sft_steps == 10
    assert cfg.analysis.kernel == "rbf"


def test_dumped_config_round_trips(tmp_path):
    cfg = load_config(profile="demo-smoke", overrides=["training.lr=0.01"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(file=path) == cfg


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["training.lr=0"], "training.lr"),
        (["training.sft_steps=0"], "training.sft_steps"),
        (["training.bogus=1"], "training.bogus"),
        (["analysis.kernel=cosine"], "analysis.kernel"),
        (["nodots"], "section.key=value"),
    ],
)
def test_bad_values_name_the_field(overrides, fragment):
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        load_config(profile="demo", overrides=overrides)


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ValueError, match="demo-smoke"):
        load_config(profile="nope")


def test_bad_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("tasks: [unclosed\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_config(file=path)
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_config(file=path)


# ------------------------------------------------------------------ non-finite numbers

NON_FINITE = [".inf", "-.inf", ".nan", "nan", "inf", "1e999"]


def _float_fields(model) -> list[str]:
    """Key paths of every float field of a config model (its sections included)."""
    paths = []
    for name, field in model.model_fields.items():
        if isinstance(field.default, BaseModel):
            paths += [f"{name}.{sub}" for sub in _float_fields(type(field.default))]
        elif field.annotation in (float, float | None):
            paths.append(name)
    return paths


def test_every_float_field_refuses_inf_and_nan():
    fields = _float_fields(RunConfig)
    assert {"training.lr", "training.lora_alpha", "analysis.threshold"} <= set(fields)
    assert len(fields) >= 10
    for path in fields:
        for value in NON_FINITE:
            item = f"{path}={value}"
            pattern = rf"^--set {re.escape(item)}: {re.escape(path)}: .*finite number"
            with pytest.raises(ValueError, match=pattern):
                load_config(profile="demo-smoke", overrides=[item])


def test_non_finite_number_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  lora_alpha: .nan\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: training\.lora_alpha: "):
        load_config(file=path)


# ------------------------------------------------------------------ the --set grammar


def test_set_accepts_top_level_and_nested_keys():
    cfg = load_config(profile="demo-smoke", overrides=["seed=7", "name=other", "tasks.n_test=9"])
    assert (cfg.seed, cfg.name, cfg.tasks.n_test) == (7, "other", 9)
    data = {"a": {"x": 1}}
    assert apply_override(data, "a.b.c=[1, 2]") == ("a", "b", "c")
    assert apply_override(data, "top=") == ("top",)
    assert data == {"a": {"x": 1, "b": {"c": [1, 2]}}, "top": ""}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("nodots", "--set expects key=value or section.key=value, got 'nodots'"),
        ("=3", "--set expects key=value"),
        ("training..lr=1", "--set expects key=value"),
        ("training.lr=[1", "--set training.lr=[1: the value is not valid YAML"),
        ("seed.x=1", "--set seed.x=1: 'seed' is not a section"),
    ],
)
def test_malformed_set_items_are_named(item, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(profile="demo-smoke", overrides=[item])


def test_clustering_config_uses_the_same_grammar():
    from mossa.clustering.config import load_clustering_config

    for item in ["seed.x=1", "training..lr=1", "training.lr=[1"]:
        with pytest.raises(ValueError) as run_error:
            load_config(profile="demo-smoke", overrides=[item])
        with pytest.raises(ValueError) as clustering_error:
            load_clustering_config("regex-smoke", overrides=[item])
        assert str(run_error.value) == str(clustering_error.value)


# ------------------------------------------------------------------ who is blamed


def test_error_from_set_names_the_item_not_the_profile():
    with pytest.raises(ValueError) as info:
        load_config(profile="demo", overrides=["training.sft_steps=5", "training.lr=0"])
    message = str(info.value)
    assert message.startswith("--set training.lr=0: training.lr: ")
    assert "demo.yaml" not in message and "sft_steps" not in message


def test_error_from_the_file_names_the_file_even_with_other_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("training:\n  lr: -1\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_config(file=path, overrides=["training.sft_steps=5", "seed=3"])
    message = str(info.value)
    assert message.startswith(f"{path}: training.lr: ") and "--set" not in message


def test_later_set_of_the_same_key_is_blamed():
    with pytest.raises(ValueError, match=r"^--set training=\{lr: 0\}: training\.lr: "):
        load_config(profile="demo-smoke", overrides=["training.lr=1", "training={lr: 0}"])


# ------------------------------------------------------------------ names stay inside runs/

BAD_NAMES = [
    "/abs",
    "/tmp/evil",
    "../up",
    "a/b",
    "a\\b",
    "..",
    ".hidden",
    "",
    "trailing ",
    " leading",
    "new\nline",
    "nul\x00x",
    "tab\tx",
    "é",
    "x" * 101,
    "v1..2",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_leave_runs_dir_are_refused(name):
    with pytest.raises(ValidationError, match="a name must be 1-100 letters"):
        RunConfig(name=name)


def test_bad_name_error_names_the_field_and_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: ../outside\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=rf"^{re.escape(str(path))}: name: .*\(got '\.\./outside'\)"
    ):
        load_config(file=path)
    with pytest.raises(ValueError, match=r"^--set name=/abs: name: "):
        load_config(profile="demo-smoke", overrides=["name=/abs"])


@pytest.mark.parametrize("name", ["demo", "run-1.2_x", "A", "x" * 100, "a.b.c", "-dash"])
def test_plain_names_are_accepted(name):
    assert RunConfig(name=name).name == name


# ------------------------------------------------------------------ the pretraining config


def test_pretrain_config_defaults_are_the_bundled_model():
    from mossa.models.tiny import TinyConfig, load_tiny_config

    assert load_tiny_config() == TinyConfig()
    assert load_tiny_config(overrides=["steps=7", "max_tweets=null"]).steps == 7


@pytest.mark.parametrize(
    ("run_item", "pretrain_item"),
    [
        ("training.lr=.inf", "lr=.inf"),
        ("training.lr=.nan", "lr=.nan"),
        ("training.weight_decay=-.inf", "weight_decay=-.inf"),
        ("training.bogus=1", "bogus=1"),
        ("training.lr=[1", "lr=[1"),
    ],
)
def test_pretrain_config_errors_read_like_the_run_configs(run_item, pretrain_item):
    from mossa.models.tiny import load_tiny_config

    with pytest.raises(ValueError) as run_error:
        load_config(profile="demo-smoke", overrides=[run_item])
    with pytest.raises(ValueError) as pretrain_error:
        load_tiny_config(overrides=[pretrain_item])
    assert str(pretrain_error.value) == str(run_error.value).replace("training.", "")
    assert str(pretrain_error.value).startswith("--set ")


def test_every_pretrain_float_field_refuses_inf_and_nan():
    from mossa.models.tiny import TinyConfig, load_tiny_config

    fields = _float_fields(TinyConfig)
    assert {"lr", "min_lr_ratio", "weight_decay", "grad_clip"} <= set(fields)
    for path in fields:
        for value in NON_FINITE:
            item = f"{path}={value}"
            pattern = rf"^--set {re.escape(item)}: {path}: Input should be a finite number"
            with pytest.raises(ValueError, match=pattern):
                load_tiny_config(overrides=[item])


def test_pretrain_config_file_errors_name_the_file(tmp_path):
    from mossa.models.tiny import load_tiny_config

    path = tmp_path / "tiny.yaml"
    for text, message in [
        ("lr: .nan\n", "lr: Input should be a finite number (got nan)"),
        ("layers: 3\n", "layers: Extra inputs are not permitted (got 3)"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=f"^{re.escape(f'{path}: {message}')}$"):
            load_tiny_config(file=path, overrides=["steps=5"])
    with pytest.raises(ValueError, match=r"^defaults with --set n_heads=3: config: .*divisible"):
        load_tiny_config(overrides=["n_heads=3"])


# ------------------------------------------------------------------ field descriptions


def _leaf_fields(model, prefix=""):
    """(key path, FieldInfo) of every key of ``model``; sections must have a docstring."""
    for name, field in model.model_fields.items():
        if isinstance(field.default, BaseModel):
            assert (type(field.default).__doc__ or "").strip(), f"section {name} has no docstring"
            yield from _leaf_fields(type(field.default), f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


@pytest.mark.parametrize("kind", list(CONFIG_KINDS))
def test_every_field_has_a_description(kind):
    model = CONFIG_KINDS[kind]().model
    fields = dict(_leaf_fields(model))
    assert len(fields) >= 20
    assert [path for path, field in fields.items() if not (field.description or "").strip()] == []
    docs = field_docs(model)
    assert [d.key for d in docs] == list(fields)
    assert all(d.description == fields[d.key].description for d in docs)


def test_config_json_lists_every_key_with_type_default_and_description():
    result = CliRunner().invoke(app, ["config", "run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["config"], data["profile"]) == ("run", None)
    keys = {row["key"]: row for row in data["keys"]}
    assert len(keys) == len(data["keys"]) == len(dict(_leaf_fields(RunConfig)))
    assert keys["training.lr"] == {
        "key": "training.lr",
        "type": "float",
        "default": 5e-05,
        "description": TrainingConfig.model_fields["lr"].description,
    }
    assert keys["training.lora_dropout"]["type"] == "0 <= float < 1"
    assert keys["analysis.pca_variance"]["type"] == "0 < float <= 1"
    assert keys["tasks.tasks_per_cluster"]["type"] == "int > 0 | null"
    assert keys["training.controls"]["type"] == '"all" | "seen"'
    assert keys["training.target_modules"]["default"] == ["q_proj", "v_proj"]


def test_config_shows_a_profiles_values_beside_the_defaults():
    demo = load_config(profile="demo")
    result = CliRunner().invoke(app, ["config", "run", "--profile", "demo", "--json"])
    assert result.exit_code == 0, result.output
    keys = {row["key"]: row for row in json.loads(result.output)["keys"]}
    assert (keys["training.lr"]["default"], keys["training.lr"]["value"]) == (5e-05, 0.005)
    assert keys["name"]["value"] == demo.name == "demo"
    assert keys["training.target_modules"]["value"] == demo.training.target_modules
    assert keys["model.max_length"]["value"] == demo.model.max_length != 256


def test_config_is_plain_when_piped_and_a_table_on_a_terminal():
    runner = CliRunner()
    piped = runner.invoke(app, ["config", "run"], env={"FORCE_COLOR": None, "TTY_COMPATIBLE": None})
    assert piped.exit_code == 0, piped.output
    lines = piped.output.splitlines()
    assert lines[0] == "key\ttype\tdefault\tdescription"
    lr = TrainingConfig.model_fields["lr"].description
    assert f"training.lr\tfloat\t5e-05\t{lr}" in lines
    terminal = runner.invoke(app, ["config", "run"], env={"TTY_COMPATIBLE": "1", "COLUMNS": "200"})
    assert terminal.exit_code == 0, terminal.output
    assert "┏" in terminal.output and "training.lr" in terminal.output
    assert "\t" not in terminal.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["config", "runs"], "unknown config 'runs'; choose one of: run, clustering, pretrain"),
        (["config", "run", "--profile", "nope"], "unknown profile 'nope'; available: demo, "),
        (["config", "pretrain", "--profile", "tiny"], "unknown profile 'tiny': this config has"),
    ],
)
def test_config_bad_input_exits_2_with_one_line(monkeypatch, capsys, args, message):
    code, out, err = run_main(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
