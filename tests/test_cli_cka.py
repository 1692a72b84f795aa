"""`mossa cka A B`: table and JSON output, file formats, and one-line errors (exit 2)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy_safetensors
from safetensors.torch import save_file as save_torch_safetensors
from typer.testing import CliRunner

from conftest import run_main
from mossa.cli import app
from mossa.similarity import DegenerateInputWarning, cka, mutual_knn, procrustes, rsa
from mossa.similarity.files import load_activations

MOSSA = Path(sys.executable).with_name("mossa")
runner = CliRunner()


@pytest.fixture
def layered(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 40, 12)).astype(np.float32)
    y = (x[..., :8] + rng.standard_normal((3, 40, 8))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "y.npz", hidden=y, labels=np.arange(40))
    return x, y, tmp_path / "x.npy", tmp_path / "y.npz"


def test_table_lists_one_row_per_layer(layered):
    x, y, a, b = layered
    result = runner.invoke(app, ["cka", str(a), str(b)])
    assert result.exit_code == 0, result.output
    rows = re.findall(r"│\s*(\d+)\s*│\s*(-?[\d.]+)\s*│", result.output)
    assert [int(layer) for layer, _ in rows] == [0, 1, 2]
    np.testing.assert_allclose([float(v) for _, v in rows], cka(x, y), atol=1e-6)
    assert "linear CKA (debiased), n = 40 rows" in result.output


def test_json_output_matches_the_api(layered):
    x, y, a, b = layered
    args = ["cka", str(a), str(b), "--json", "--kernel", "rbf", "--threshold", "0.5", "--biased"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["kernel"] == "rbf" and record["debiased"] is False and record["n"] == 40
    expected = cka(x, y, kernel="rbf", threshold=0.5, debiased=False)
    np.testing.assert_allclose(record["cka"], expected, atol=1e-12)


@pytest.mark.parametrize(
    ("measure", "extra", "func", "title"),
    [
        ("procrustes", [], procrustes, "Procrustes similarity"),
        (
            "mutual_knn",
            ["--k", "5"],
            lambda x, y: mutual_knn(x, y, k=5),
            "mutual k-NN overlap (k = 5)",
        ),
        ("rsa", [], rsa, "RSA (Spearman"),
    ],
)
def test_other_measures_table_matches_the_api(layered, measure, extra, func, title):
    x, y, a, b = layered
    result = runner.invoke(app, ["cka", str(a), str(b), "--measure", measure, *extra])
    assert result.exit_code == 0, result.output
    rows = re.findall(r"│\s*(\d+)\s*│\s*(-?[\d.]+)\s*│", result.output)
    assert [int(layer) for layer, _ in rows] == [0, 1, 2]
    np.testing.assert_allclose([float(v) for _, v in rows], func(x, y), atol=1e-6)
    assert result.output.startswith(f"{title}") and "n = 40 rows" in result.output
    assert f" {measure} " in result.output  # the column is named after the measure


def test_other_measure_json_names_measure_and_options(layered):
    x, y, a, b = layered
    result = runner.invoke(app, ["cka", str(a), str(b), "--measure", "mutual_knn", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["measure"] == "mutual_knn" and record["k"] == 10 and record["n"] == 40
    assert "kernel" not in record and "cka" not in record
    np.testing.assert_allclose(record["mutual_knn"], mutual_knn(x, y, k=10), atol=1e-12)
    default = json.loads(runner.invoke(app, ["cka", str(a), str(b), "--json"]).output)
    assert default["measure"] == "cka" and default["kernel"] == "linear"


def test_two_dimensional_files_and_safetensors(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 6))
    y = torch.from_numpy(x[:, :4] + rng.standard_normal((30, 4))).to(torch.bfloat16)
    save_numpy_safetensors({"acts": x}, str(tmp_path / "x.safetensors"))
    save_torch_safetensors({"hidden": y, "extra": y[:2].clone()}, str(tmp_path / "y.safetensors"))
    result = runner.invoke(
        app, ["cka", str(tmp_path / "x.safetensors"), str(tmp_path / "y.safetensors"), "--json"]
    )
    assert result.exit_code == 0, result.output
    value = json.loads(result.output)["cka"]
    assert isinstance(value, float)
    assert value == pytest.approx(cka(x, y.float().numpy()), abs=1e-12)


def test_constant_layer_is_null_in_json(tmp_path):
    x = np.random.default_rng(2).standard_normal((2, 10, 3))
    x[0] = 1.0
    np.save(tmp_path / "x.npy", x)
    with pytest.warns(DegenerateInputWarning):
        result = runner.invoke(
            app, ["cka", str(tmp_path / "x.npy"), str(tmp_path / "x.npy"), "--json"]
        )
    assert result.exit_code == 0
    values = json.loads(result.output[result.output.index("{") :])["cka"]
    assert values[0] is None and values[1] == pytest.approx(1.0)


def test_load_activations_errors_name_the_file(tmp_path):
    bad = tmp_path / "many.npz"
    np.savez(bad, a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"many\.npz: holds 2 arrays \['a', 'b'\]; .*'hidden'"):
        load_activations(bad)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"junk\.npy: cannot read activations"):
        load_activations(tmp_path / "junk.npy")
    np.save(tmp_path / "words.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"words\.npy: activations must be real numbers"):
        load_activations(tmp_path / "words.npy")
    with pytest.raises(FileNotFoundError, match=r"absent\.npy: no such activation file"):
        load_activations(tmp_path / "absent.npy")


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).standard_normal((2, 10, 4)))
    np.save(tmp_path / "flat.npy", np.zeros(10))
    np.savez(tmp_path / "keys.npz", first=np.zeros((10, 4)), second=np.zeros((10, 4)))
    np.save(tmp_path / "short.npy", np.zeros((2, 9, 4)))
    nan = np.random.default_rng(1).standard_normal((2, 10, 4))
    nan[1, 3, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "acts.csv").write_text("1,2\n")
    flat_row = np.random.default_rng(2).standard_normal((2, 10, 4))
    flat_row[0, 7] = 0.5
    np.save(tmp_path / "flat_row.npy", flat_row)
    return {
        "missing": ([str(tmp_path / "nope.npy"), str(good)], "nope.npy: no such activation file"),
        "extension": ([str(tmp_path / "acts.csv"), str(good)], "acts.csv: unsupported extension"),
        "shape": ([str(good), str(tmp_path / "flat.npy")], "flat.npy: activations must be"),
        "key": ([str(tmp_path / "keys.npz"), str(good)], "keys.npz: holds 2 arrays"),
        "rows": ([str(good), str(tmp_path / "short.npy")], "same number of rows"),
        "nan": ([str(tmp_path / "nan.npy"), str(good)], "x contains NaN or Inf in 1 of 20 rows"),
        "kernel": ([str(good), str(good), "--kernel", "poly"], "kernel must be one of"),
        "measure": ([str(good), str(good), "--measure", "svcca"], "measure must be one of ("),
        "k": (
            [str(good), str(good), "--measure", "mutual_knn", "--k", "10"],
            "good.npy (y): k must be an integer with 1 <= k < n = 10",
        ),
        "constant row": (
            [str(tmp_path / "flat_row.npy"), str(good), "--measure", "rsa"],
            "(y): x has constant values (Pearson correlation undefined) in 1 of 20 rows",
        ),
        "option": (
            [str(good), str(good), "--measure", "rsa", "--kernel", "rbf"],
            "kernel is not an option of measure 'rsa'",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "extension",
        "shape",
        "key",
        "rows",
        "nan",
        "kernel",
        "measure",
        "k",
        "constant row",
        "option",
    ],
)
def test_bad_input_raises_value_error_in_process(tmp_path, case):
    args, message = _bad_inputs(tmp_path)[case]
    result = runner.invoke(app, ["cka", *args])
    assert isinstance(result.exception, ValueError | FileNotFoundError)
    assert message in str(result.exception)


@pytest.mark.parametrize("case", ["missing", "key", "rows", "measure", "k", "constant row"])
def test_bad_input_exits_2_with_one_line(tmp_path, case):
    args, message = _bad_inputs(tmp_path)[case]
    proc = subprocess.run([str(MOSSA), "cka", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert proc.stdout == ""


def _garbled_files(tmp_path: Path) -> dict[str, bytes]:
    """Damaged activation files, each of a kind that raised its own exception type
    (SafetensorError, TokenError, MemoryError, zlib.error, NotImplementedError...)."""
    good = np.random.default_rng(0).standard_normal((2, 10, 4)).astype(np.float32)
    np.save(tmp_path / "g.npy", good)
    save_numpy_safetensors({"hidden": good}, str(tmp_path / "g.safetensors"))
    np.savez(tmp_path / "g.npz", hidden=good)
    np.savez_compressed(tmp_path / "p.npz", hidden=good)
    npy, st, npz, packed = (
        (tmp_path / name).read_bytes() for name in ("g.npy", "g.safetensors", "g.npz", "p.npz")
    )
    shape = npy.index(b"(2, 10, 4)")
    huge = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        huge, {"descr": "<f4", "fortran_order": False, "shape": (10**15,)}
    )
    central = npz.index(b"PK\x01\x02")  # the central directory's compression method
    return {
        "text.safetensors": b"this is a text file, not safetensors\n",
        "empty.safetensors": b"",
        "cut.safetensors": st[:-20],
        "text.npy": b"hello",
        "cut.npy": npy[:-20],
        "header.npy": npy[:shape] + b"[2, 10, 4 " + npy[shape + 10 :],
        "huge.npy": huge.getvalue() + b"\0" * 16,
        "cut.npz": npz[: len(npz) // 2],
        "crc.npz": npz[:200] + bytes(b ^ 0xFF for b in npz[200:260]) + npz[260:],
        "inflate.npz": packed[:80] + b"\xff" * 24 + packed[104:],
        "method.npz": npz[: central + 10] + b"\x63\x00" + npz[central + 12 :],
    }


def test_garbled_files_give_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    files = _garbled_files(tmp_path)
    np.save(tmp_path / "good.npy", np.zeros((2, 10, 4)))
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        for args in (
            [str(path), str(tmp_path / "good.npy")],
            [str(tmp_path / "good.npy"), str(path)],
        ):
            code, out, err = run_main(monkeypatch, capsys, "cka", *args)
            assert code == 2, name
            assert err.startswith(f"error: {path}: ") and err.count("\n") == 1, (name, err)
            assert out == ""


def test_text_saved_as_safetensors_exits_2_without_traceback(tmp_path):
    fake = tmp_path / "acts.safetensors"
    fake.write_text("layer,value\n0,1.5\n", encoding="utf-8")
    np.save(tmp_path / "good.npy", np.zeros((10, 4)))
    proc = subprocess.run(
        [str(MOSSA), "cka", str(fake), str(tmp_path / "good.npy")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {fake}: cannot read activations (")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
