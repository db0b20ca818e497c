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
