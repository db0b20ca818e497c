"""int8-keep-ends (issue 16 item 5): embeddings and the first/last layer stay fp32, the middle is int8."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgebert.artifact import ArtifactConfig
from edgebert.converters.onnx import OnnxConverter


def _int8_weights(path) -> int:
    """int8 weight matrices (per-channel zero points are int8 too, but 1-D)."""
    init = onnx.load(str(path)).graph.initializer
    return sum(1 for t in init if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2)


def test_onnx_keep_ends_quantizes_only_the_middle_layer(tiny_model, tmp_path):
    conv = OnnxConverter()
    conv.convert(tiny_model, ArtifactConfig("onnx", "int8", 32), tmp_path / "a.onnx")
    facts = conv.convert(tiny_model, ArtifactConfig("onnx", "int8", 32, recipe="int8-keep-ends"), tmp_path / "b.onnx")
    plain, kept = _int8_weights(tmp_path / "a.onnx"), _int8_weights(tmp_path / "b.onnx")
    assert kept == 6 and plain == 3 * 6  # 3 layers x 6 projections vs the middle layer's six
    tables = {t.name: t.data_type for t in onnx.load(str(tmp_path / "b.onnx")).graph.initializer}
    assert tables["embeddings.word.weight"] == onnx.TensorProto.FLOAT
    assert any("first and last layer" in n for n in facts["notes"])


def test_tflite_keep_ends_quantizes_only_the_middle_layer(tiny_model, tmp_path):
    pytest.importorskip("litert_torch")
    from ai_edge_litert.interpreter import Interpreter

    from edgebert.converters.tflite import TfliteConverter

    conv = TfliteConverter()
    conv.convert(tiny_model, ArtifactConfig("tflite", "int8", 32), tmp_path / "a.tflite")
    conv.convert(tiny_model, ArtifactConfig("tflite", "int8", 32, recipe="int8-keep-ends"), tmp_path / "b.tflite")

    def int8_names(path):
        return [t["name"] for t in Interpreter(model_path=str(path)).get_tensor_details() if t["dtype"] == np.int8]

    plain, kept = int8_names(tmp_path / "a.tflite"), int8_names(tmp_path / "b.tflite")
    assert len(kept) == 6 and len(plain) > 3 * 6
    assert all("Layer_1/" in n for n in kept)
