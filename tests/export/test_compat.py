"""`edgebert compat`: sha256 first, then every runtime per artifact; MediaPipe reported as not checked here."""

from __future__ import annotations

import json

import pytest

from edgebert.cli import main
from edgebert.export.compat import NOT_CHECKED_MEDIAPIPE, RUNTIMES, compat
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


def test_every_runtime_of_every_artifact(folder, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    result = compat(folder)
    table = {(r["file"], r["runtime"]): r for r in result["rows"]}
    assert set(table) == {
        ("model.onnx", "onnxruntime"),
        ("model.tflite", "ai-edge-litert"),
        ("model.tflite", "mediapipe"),
        ("model.pt", "torch"),
    }
    for (_, runtime), row in table.items():
        if runtime == "mediapipe":
            assert row["status"] == NOT_CHECKED_MEDIAPIPE and row["loads"] is None
        else:
            assert row["status"] == "ok" and row["loads"] and row["argmax_agreement"] == 1.0
    assert result["exit_code"] == 0 and result["written"]
    assert json.loads((folder / "manifest.json").read_text())["compatibility"]["rows"] == result["rows"]
    assert set(RUNTIMES) == {"onnx", "tflite", "torchscript"}


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
