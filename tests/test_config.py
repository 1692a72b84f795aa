"""Config loading: profiles, overrides, and errors that name what is wrong."""

import pytest

from mossa.config import RunConfig, dump_config, load_config, profile_names


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
