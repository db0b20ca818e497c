"""`edgebert bench FOLDER --target ...`: results recorded in the manifest, failures leave it unchanged."""

from __future__ import annotations

import json

import pytest

from edgebert.cli import main


@pytest.fixture
def export_dir(tiny_model_dir, tmp_path):
    out = tmp_path / "exp"
    assert (
        main(
            [
                "export",
                "--model",
                str(tiny_model_dir),
                "--formats",
                "onnx,torchscript",
                "--seq-len",
                "16",
                "--out",
                str(out),
                "--no-measure",
            ]
        )
        == 0
    )
    return out


def test_bench_local_records_measurements(export_dir, capsys):
    capsys.readouterr()
    assert main(["bench", str(export_dir), "--target", "local", "--runs", "5", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [x["format"] for x in r["results"]] == ["onnx", "torchscript"]
    m = json.loads((export_dir / "manifest.json").read_text())
    for a in m["artifacts"]:
        (meas,) = a["latency"]["measured"]
        assert meas["kind"] == "measured" and meas["where"] == "local" and meas["runs"] >= 5 and meas["p50_ms"] > 0
        assert meas["runtime_version"]


def test_bench_failure_leaves_manifest_unchanged(export_dir, capsys):
    before = (export_dir / "manifest.json").read_bytes()
    code = main(["bench", str(export_dir), "--target", "ssh://nobody@127.0.0.1:1", "--timeout", "10", "--runs", "2"])
    err = capsys.readouterr().err
    assert code == 5 and "Traceback" not in err and "127.0.0.1" in err
    assert (export_dir / "manifest.json").read_bytes() == before


def test_bench_adb_skips_what_it_cannot_measure(export_dir, capsys):
    code = main(["bench", str(export_dir), "--target", "adb://", "--formats", "torchscript"])
    assert code == 2 and "TorchScript" in capsys.readouterr().err


def test_bench_not_an_export_folder(tmp_path, capsys):
    assert main(["bench", str(tmp_path)]) == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["swap", "flip", "delete"])
def test_bench_refuses_an_artifact_that_is_not_the_manifests(export_dir, tmp_path, capsys, damage):
    """Issue 11 item 3: a swapped model.onnx was timed and recorded under the original entry (exit 0)."""
    onnx = export_dir / "model.onnx"
    if damage == "swap":  # same format, other bytes: what an int8 export's file would be
        onnx.write_bytes(onnx.read_bytes() + b"\0")
    elif damage == "flip":  # same size, other bytes
        data = bytearray(onnx.read_bytes())
        data[len(data) // 2] ^= 0xFF
        onnx.write_bytes(bytes(data))
    else:
        onnx.unlink()
    before = (export_dir / "manifest.json").read_bytes()
    assert main(["bench", str(export_dir), "--target", "local", "--runs", "2"]) == 2
    err = capsys.readouterr().err
    assert "model.onnx" in err and "nothing was measured or recorded" in err and "Traceback" not in err
    assert (export_dir / "manifest.json").read_bytes() == before


def test_bench_cooldown_sustained_and_hygiene_in_the_manifest(export_dir, capsys):
    """Issue 12 item 6: CI of the median, spread, drift, thermal (or null) and the cool-down, schema-valid."""
    import time
    from importlib.resources import files

    import jsonschema

    capsys.readouterr()
    start = time.perf_counter()
    args = ["bench", str(export_dir), "--runs", "6", "--cooldown", "0.5", "--sustained", "0.3", "--json"]
    assert main(args) == 0
    assert time.perf_counter() - start >= 0.5  # one cool-down between the two artifacts
    r = json.loads(capsys.readouterr().out)
    assert [x["cooldown_s"] for x in r["results"]] == [0.0, 0.5]
    m = json.loads((export_dir / "manifest.json").read_text())
    jsonschema.validate(m, json.loads(files("edgebert").joinpath("data/manifest.schema.json").read_text()))
    for a in m["artifacts"]:
        (meas,) = a["latency"]["measured"]
        lo, hi = meas["p50_ci95_ms"]
        assert meas["kind"] == "measured" and lo <= meas["p50_ms"] <= hi and meas["p90_ms"] >= meas["p50_ms"]
        assert meas["sustained_s"] == 0.3 and meas["timed_s"] >= 0.3 and meas["drift_pct"] is not None
        assert meas["iqr_ms"] >= 0 and "thermal_before" in meas and "thermal_after" in meas
    assert main(["bench", str(export_dir), "--cooldown", "-1"]) == 2
