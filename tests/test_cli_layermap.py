"""`mossa layermap TABLE.csv`: the map of any table in the cka.csv schema, and bad input that
exits 2 naming the column, model, line or task count."""

import csv
import json

import numpy as np
import pytest

from conftest import run_main
from mossa.analysis.layer_map import LayerMap

L, T = 12, 8
X = np.arange(1, L + 1)
PAPER = np.interp(X, [1, 4, 8, L], [-0.04, -0.04, 0.5, 0.55])  # shared 1-4, transition 5-8


def write_table(
    path,
    *,
    curve=PAPER,
    n_tasks=T,
    layers=L,
    names=None,
    extra=True,
    seed=0,
    models=("base", "sft"),
    unseen=True,
):
    """A cka.csv-schema table: base falling with depth, sft = base + curve + task noise."""
    rng = np.random.default_rng(seed)
    x = np.arange(1, layers + 1)
    curve = np.interp(x, np.linspace(1, layers, len(curve)), curve)
    names = names or [f"task {i}" for i in range(n_tasks)]
    header = ["model", "task", "cluster", "seen", "layer", "n", "cka", "cka_biased"]
    header += ["note"] if extra else []
    rows = []
    for name in names:
        base = (
            0.9
            - 0.5 * x / layers
            + 0.08 * rng.standard_normal()
            + 0.02 * rng.standard_normal(layers)
        )
        sft = base + curve + 0.04 * rng.standard_normal(layers)
        for model, values in (("base", base), ("sft", sft), ("control", np.ones(layers))):
            if model in (*models, "control"):
                rows.append([model, name, "c", "true", 0, 48, 1.0, 1.0] + (["x"] if extra else []))
                rows += [
                    [model, name, "c", "true", i + 1, 48, v, v + 0.05] + (["x"] if extra else [])
                    for i, v in enumerate(values)
                ]
    if unseen:  # an unseen task with garbage is left out
        rows += [
            ["sft", "unseen", "u", "false", i, 48, "nan", "", *(["x"] if extra else [])]
            for i in range(3)
        ]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def layermap(monkeypatch, capsys, *args):
    return run_main(monkeypatch, capsys, "layermap", "--n-boot", "199", *map(str, args))


def test_json_prints_the_map_and_round_trips(tmp_path, monkeypatch, capsys):
    code, out, err = layermap(monkeypatch, capsys, write_table(tmp_path / "t.csv"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["structure"] is True
    assert data["groups"] == {"shared": [1, 4], "transition": [5, 8], "refinement": [9, 12]}
    assert data["paper_map"]["verdict"] == "holds"
    assert len(data["tasks"]) == T and "unseen" not in data["tasks"]
    assert LayerMap.from_json(data).to_json() == data


def test_summary_names_groups_verdict_and_checks(tmp_path, monkeypatch, capsys):
    code, out, err = layermap(monkeypatch, capsys, write_table(tmp_path / "t.csv"))
    assert code == 0, err
    assert "groups: shared 1-4, transition 5-8, refinement 9-12" in out
    assert "paper map: holds" in out and "at_or_below_base" in out and "layer 12 set aside" in out


def test_noise_has_no_structure(tmp_path, monkeypatch, capsys):
    code, out, _ = layermap(
        monkeypatch, capsys, write_table(tmp_path / "t.csv", curve=np.zeros(L)), "--json"
    )
    data = json.loads(out)
    assert (
        code == 0 and data["structure"] is False and data["groups"] is None
        if "groups" in data
        else True
    )
    assert data["paper_map"]["verdict"] == "does not hold"


@pytest.mark.parametrize("layers", [4, 5, 7, 33])
def test_any_depth_from_4_layers_and_plain_tables(tmp_path, monkeypatch, capsys, layers):
    path = write_table(
        tmp_path / "t.csv", layers=layers, extra=False, unseen=False, names=list("abcde")
    )
    code, out, err = layermap(monkeypatch, capsys, path, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["n_layers"] == layers and data["paper_map"]["verdict"] in (
        "holds",
        "partly",
        "does not hold",
        "not testable",
    )
    assert LayerMap.from_json(data).to_json() == data


def test_only_the_required_columns_suffice(tmp_path, monkeypatch, capsys):
    rows = list(csv.DictReader(open(write_table(tmp_path / "t.csv", unseen=False))))
    with open(tmp_path / "min.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["layer", "cka", "task", "model"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    code, out, err = layermap(monkeypatch, capsys, tmp_path / "min.csv", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (
        data["paper_map"]["verdict"] == "holds"
        and data["biased"]["reason"] == "no cka_biased column"
    )


def damaged(tmp_path, edit):
    path = write_table(tmp_path / "t.csv", extra=False, unseen=False)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ls: [ls[0].replace(",cka,", ",value,")] + ls[1:], "missing column(s) cka"),
        (
            lambda ls: [ls[0].replace("model,task", "m,t")] + ls[1:],
            "missing column(s) model, task",
        ),
        (
            lambda ls: [ls[0]] + [x for x in ls[1:] if not x.startswith("sft,")],
            "no rows of model 'sft'",
        ),
        (
            lambda ls: [ls[0]] + [x for x in ls[1:] if not x.startswith("base,")],
            "no rows of model 'base'",
        ),
        (
            lambda ls: (
                ls[:5] + [ls[5].replace(",48,", ",48,nan,", 1).rsplit(",", 2)[0] + ",0.1"] + ls[6:]
            ),
            "line 6, column cka",
        ),
        (
            lambda ls: [ls[0]] + [x for x in ls[1:] if x.split(",")[1] in ("task 0", "task 1")],
            "2 task(s)",
        ),
        (lambda ls: ls[:3] + ls[4:], "has no base row for layer 2"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(tmp_path, monkeypatch, capsys, edit, message):
    path = damaged(tmp_path, edit)
    code, out, err = layermap(monkeypatch, capsys, path)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert str(path) in lines[0]


def test_missing_file_exits_2(tmp_path, monkeypatch, capsys):
    code, _, err = layermap(monkeypatch, capsys, tmp_path / "none.csv")
    assert code == 2 and "none.csv" in err


def test_any_task_names(tmp_path, monkeypatch, capsys):
    names = ["a, b", 'say "hi"', "é ü 中", " padded "]
    code, out, err = layermap(
        monkeypatch, capsys, write_table(tmp_path / "t.csv", names=names), "--json"
    )
    assert code == 0, err
    assert json.loads(out)["tasks"] == ["a, b", 'say "hi"', "é ü 中", "padded"]


def test_task_option_maps_only_those_tasks(tmp_path, monkeypatch, capsys):
    """Paper-like tasks picked out of a table where most tasks carry no structure."""
    table = tmp_path / "t.csv"
    write_table(table, names=[f"flat {i}" for i in range(T)], curve=np.zeros(L), unseen=False)
    paper = write_table(tmp_path / "p.csv", names=[f"paper {i}" for i in range(T)], seed=1)
    with table.open("a") as f:  # both task sets in one table
        f.writelines(paper.read_text().splitlines(keepends=True)[1:])
    picked = [arg for i in range(T) for arg in ("--task", f"paper {i}")]
    code, out, err = layermap(monkeypatch, capsys, table, "--json", *picked)
    assert code == 0, err
    data = json.loads(out)
    assert data["tasks"] == [f"paper {i}" for i in range(T)]
    assert data["paper_map"]["verdict"] == "holds"
    code, _, err = layermap(monkeypatch, capsys, table, "--task", "paper 0", "--task", "nope")
    assert code == 2 and "--task 'nope': no such task" in err and "flat 0" in err
    code, _, err = layermap(monkeypatch, capsys, table, "--task", "paper 0", "--task", "paper 1")
    assert code == 2 and "2 task(s) given; the layer map needs at least 3" in err
