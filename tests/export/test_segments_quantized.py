"""int8 / fp16 early-exit segments: the plain converters' recipes applied per segment, every exit through the
parity gate at the precision's tolerance (cosine and argmax, not element-wise), TorchScript staying fp32."""

from __future__ import annotations

import json

import pytest
from conftest import save_tiny_model_dir

from edgebert.cli import main
from edgebert.export.manifest import sha256_file, validate
from edgebert.runtime import Predictor
from edgebert.runtime.policy import Confidence

TEXTS = ["the movie was great", "a boring and slow story with a terrible ending", "fun"]


def _model_dir(path):
    import torch
    from conftest import make_tiny_model

    from edgebert.model.exits import with_exits

    base = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"), heads=(3, 3), ffn=(70, 70))
    model = with_exits(base)
    with torch.no_grad():
        for p in model.exits.parameters():
            p.add_(0.3 * torch.randn_like(p))
        # Decisive heads: a random tiny model's texts all sit near one decision boundary, where int8 noise
        # flips them; what is tested here is the gate and the files, not a borderline model.
        for head in [*model.exits, model.head]:
            head.classifier.bias.add_(torch.tensor([3.0, -3.0]))
    return save_tiny_model_dir(path, model.eval())


def _export(tmp_path, precision: str, formats: str) -> dict:
    out = tmp_path / precision
    args = ["export", "--model", str(_model_dir(tmp_path / "m")), "--formats", formats, "--seq-len", "16"]
    args += ["--no-measure", "--early-exit", "patience=1", "--quantize", precision, "--out", str(out), "--json"]
    assert main(args) == 0
    return out, json.loads((out / "manifest.json").read_text())


def test_int8_segments_onnx_and_tflite_pass_the_int8_gate(tmp_path, capsys):
    out, m = _export(tmp_path, "int8", "onnx,tflite")
    validate(m)
    ee = m["early_exit"]
    assert ee["precision"] == "int8" and ee["precisions"] == {"onnx": "int8", "tflite": "int8"}
    for fmt in ("onnx", "tflite"):
        p = ee["parity"][fmt]
        assert p["precision"] == "int8" and p["tolerance"]["max_abs_diff"] is None  # judged by cosine + argmax
        tol = p["tolerance"]
        assert p["passed"] and all(e["max_prob_diff"] <= (tol["max_prob_diff"] or 1.0) for e in p["per_exit"])
        assert all(e["decided_agreement"] == 1.0 for e in p["per_exit"])
        for f in ee["files"][fmt]:
            assert f["precision"] == "int8" and sha256_file(out / f["file"]) == f["sha256"]
    import onnx

    seg = onnx.load(str(out / "segment_1.onnx"))
    assert any(n.op_type in ("DynamicQuantizeLinear", "MatMulInteger") for n in seg.graph.node)  # really int8
    for fmt in ("onnx", "tflite"):  # and the runtime runs them: confidence=0 exits at layer 1
        assert [Predictor(out, fmt, policy=Confidence(0.0)).predict(t).exit_layer for t in TEXTS] == [1, 1, 1]
    capsys.readouterr()
    assert main(["predict", str(out), *TEXTS, "--format", "tflite", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


def test_fp16_segments_onnx_keep_float32_io_and_torchscript_stays_fp32(tmp_path):
    out, m = _export(tmp_path, "fp16", "onnx,torchscript")
    ee = m["early_exit"]
    assert ee["precisions"] == {"onnx": "fp16", "torchscript": "fp32"}
    assert any("torchscript has no fp16" in n for n in ee["notes"])
    assert ee["parity"]["onnx"]["precision"] == "fp16" and ee["parity"]["onnx"]["tolerance"]["max_abs_diff"] is None
    assert ee["parity"]["torchscript"]["tolerance"]["max_abs_diff"] == pytest.approx(1e-4)  # fp32's
    import onnx

    seg = onnx.load(str(out / "segment_2.onnx"))
    f32 = onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in seg.graph.input][0] == f32  # hidden passes as float32
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in seg.graph.initializer)
    # an early-exit folder can be exported again over itself with --force (its segments are listed)
    args = ["export", "--model", str(tmp_path / "m"), "--formats", "torchscript", "--seq-len", "16", "--no-measure"]
    assert main(args + ["--early-exit", "patience=1", "--out", str(out), "--force"]) == 0
