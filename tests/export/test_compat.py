"""`edgebert compat`: sha256 first, then every runtime per artifact; MediaPipe reported as not checked here."""

from __future__ import annotations

import json

import pytest

from edgebert.cli import main
from edgebert.export.compat import NOT_CHECKED_MEDIAPIPE, NOT_INSTALLED, RUNTIMES, compat
from edgebert.export.isolated import ISOLATED, isolated_python
from edgebert.export.mediapipe_env import ENV_VAR
from edgebert.export.pipeline import ExportConfig, export
from edgebert.model.spec import SubnetSpec


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from conftest import make_tiny_model, save_tiny_model_dir

    pytest.importorskip("litert_torch")
    root = tmp_path_factory.mktemp("compat")
    model_dir = save_tiny_model_dir(root / "tiny", make_tiny_model(task="classification", num_labels=2))
    out = root / "out"
    export(ExportConfig(out=str(out), model=str(model_dir), spec=SubnetSpec(0.5, 1.0), seq_len=32), progress=False)
    return out


ALL_INSTALLED = all(isolated_python(r) is not None for r in ISOLATED.values())
needs_envs = pytest.mark.skipif(
    not ALL_INSTALLED, reason="an isolated runtime (older LiteRT or ONNX Runtime venv) is not installed: see .ci/run"
)


def test_every_runtime_of_every_artifact(folder, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    for rt in ISOLATED.values():
        monkeypatch.delenv(rt.env_var, raising=False)
    result = compat(folder)
    table = {(r["file"], r["runtime"]): r for r in result["rows"]}
    assert set(table) == {
        ("model.onnx", "onnxruntime"),
        ("model.tflite", "ai-edge-litert"),
        ("model.tflite", "mediapipe"),
        ("model.pt", "torch"),
        *((f"model.{rt.format}", name) for name, rt in ISOLATED.items()),
    }
    for (_, runtime), row in table.items():
        if runtime == "mediapipe":
            assert row["status"] == NOT_CHECKED_MEDIAPIPE and row["loads"] is None
        elif runtime in ISOLATED:
            assert row["status"] == NOT_INSTALLED and row["loads"] is None
        else:
            assert row["status"] == "ok" and row["loads"] and row["argmax_agreement"] == 1.0
    assert result["exit_code"] == 0 and result["written"]
    assert json.loads((folder / "manifest.json").read_text())["compatibility"]["rows"] == result["rows"]
    assert set(RUNTIMES) == {"onnx", "tflite", "torchscript", "executorch"}
    (mobile,) = result["ort_mobile"]  # converted and checked in edgebert's onnxruntime; no package op set here
    assert mobile["ort_parity"]["status"] == "ok" and mobile["reduced_package"]["status"].startswith("not checked")
    acc = mobile["accelerators"]  # ORT's usability checker: NNAPI / CoreML partitions of the graph
    assert set(acc) == {"nnapi", "coreml"} and all(
        a["partitions"] >= 1 and a["try_ep"] in {"YES", "MAYBE", "NO"} for a in acc.values()
    )
    assert "partitions" in mobile["verdict"]


@needs_envs
def test_older_runtimes_load_or_say_why_not(folder):
    result = compat(folder, write=False)
    rows = {r["runtime"]: r for r in result["rows"]}
    old = rows["onnxruntime==1.15.0"]  # the oldest cp311 wheel: reads ONNX IR up to 9, edgebert writes 10
    assert old["status"] == "does not load" and old["ir_version"] == 10 and "IR versions up to 9" in old["why"]
    for name in ("onnxruntime==1.18.0", "ai-edge-litert==1.4.0", "tflite-runtime==2.14.0"):
        row = rows[name]
        assert row["status"] == "ok", row
        assert row["version"] == ISOLATED[name].version and row["argmax_agreement"] == 1.0
        assert row["max_abs_diff"] < 1e-4 and row["n_inputs"] >= 8
    (mobile,) = result["ort_mobile"]
    assert mobile["ort_parity"]["status"] == "ok" and mobile["ort_bytes"] > 0
    reduced = mobile["reduced_package"]  # onnxruntime-mobile's op set: ONNX opsets 12-15
    assert reduced["status"] == "needs kernels or types it lacks" and max(reduced["opsets"]) == 15
    assert reduced["missing_kernels"] and set(reduced["missing_kernels"]) <= set(mobile["required_kernels"])
    assert "--include_ops_by_config" in mobile["verdict"] and "full ORT Mobile packages" in mobile["verdict"]


def test_changed_file_is_not_judged(folder, tmp_path, monkeypatch, capsys):
    import shutil

    monkeypatch.delenv(ENV_VAR, raising=False)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with open(copy / "model.pt", "ab") as f:
        f.write(b"\0")
    before = (copy / "manifest.json").read_text()
    assert main(["compat", str(copy)]) == 4
    out = capsys.readouterr().out
    assert "model.pt size" in out and "changed since export" in out
    assert (copy / "manifest.json").read_text() == before  # nothing recorded from a folder that changed
