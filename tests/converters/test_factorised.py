"""Compressed models (factorised embedding and matrices) through every converter: real smaller tensors in
the files, and the parity gate passes. One int8 file per format where the format has int8 (TFLite's
conversion alone takes ~10 s)."""

from __future__ import annotations

import pytest
from conftest import make_tiny_model, save_tiny_model_dir

from edgebert.artifact import ArtifactConfig
from edgebert.compress.factorise import factorise
from edgebert.export.pipeline import convert_and_verify
from edgebert.model.tokenizer import load_tokenizer
from edgebert.registry import CONVERTERS


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    model = factorise(make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos")), 16, 12).eval()
    folder = save_tiny_model_dir(tmp_path_factory.mktemp("compressed"), model)
    return model, load_tokenizer(folder)


@pytest.mark.parametrize(("fmt", "precision"), [("onnx", "int8"), ("tflite", "int8"), ("torchscript", "fp32")])
def test_factorised_model_exports_with_parity(compressed, tmp_path, fmt, precision):
    if fmt == "tflite":
        pytest.importorskip("litert_torch")
    model, tok = compressed
    entry = convert_and_verify(model, tok, CONVERTERS.get(fmt)(), ArtifactConfig(fmt, precision, 32), tmp_path, 1)
    assert entry["parity"]["passed"]
    if fmt == "onnx":
        import onnx

        shapes = {i.name: tuple(i.dims) for i in onnx.load(str(tmp_path / entry["file"])).graph.initializer}
        # the small table is gathered: no vocab x hidden tensor anywhere in the file
        assert not any(len(s) == 2 and s[0] == model.config.vocab_size and s[1] == 48 for s in shapes.values())
        assert any(len(s) == 2 and s[0] == model.config.vocab_size and s[1] == 16 for s in shapes.values())
