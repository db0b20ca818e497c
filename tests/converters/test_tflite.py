"""TFLite converter: litert-torch -> loads in LiteRT -> matches PyTorch (batch loop, padding) -> fp16/int8.

Conversions take ~10 s each even for the tiny model, so each file is made once per module.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from converter_helpers import SEQ_LEN, feeds, random_feeds, tiny_cls, tiny_embedder, tok, torch_outputs  # noqa: F401

from edgebert.artifact import ArtifactConfig
from edgebert.errors import MissingExtraError, ModelError
from edgebert.export.verify import verify
from edgebert.model.tokenizer import INPUT_NAMES
from edgebert.registry import CONVERTERS


@pytest.fixture(scope="module")
def conv():
    return CONVERTERS.get("tflite")()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, conv, tiny_embedder, tiny_cls):
    made = {}

    def get(precision="fp32", classifier=False):
        pytest.importorskip("litert_torch")
        key = (precision, classifier)
        if key not in made:
            model = tiny_cls if classifier else tiny_embedder
            path = tmp_path_factory.mktemp("tflite") / "model.tflite"
            made[key] = (path, conv.convert(model, ArtifactConfig("tflite", precision, SEQ_LEN), path))
        return made[key]

    return get


def test_signature_is_named_and_static(artifact, conv):
    path, facts = artifact()
    run = conv.load(path)
    names = list(run._runner.get_input_details())
    # The converter's signature orders inputs by name, not as the model takes them: the runtime
    # has to map by name, which this file exercises.
    assert sorted(names) == sorted(INPUT_NAMES) and names != list(INPUT_NAMES)
    assert run.output_name == "embeddings" and run.seq_len == SEQ_LEN
    assert facts["inputs"][0] == {"name": "input_ids", "dtype": "int32", "shape": [1, SEQ_LEN]}
    assert facts["outputs"][0]["shape"] == [1, 48]


def test_fp32_matches_torch_across_a_padded_batch(artifact, conv, tiny_embedder, feeds):
    # Batch 4, padded to the longest sentence (< SEQ_LEN): the runtime loops rows and pads each to SEQ_LEN.
    out = conv.load(artifact()[0])(feeds)
    assert out.shape == (4, 48) and out.dtype == np.float32
    assert np.abs(out - torch_outputs(tiny_embedder, feeds)).max() <= 1e-5


def test_longer_inputs_are_truncated_to_the_static_length(artifact, conv, tiny_embedder):
    f = random_feeds(tiny_embedder, 2, SEQ_LEN + 9)
    cut = {k: v[:, :SEQ_LEN] for k, v in f.items()}
    assert np.abs(conv.load(artifact()[0])(f) - torch_outputs(tiny_embedder, cut)).max() <= 1e-5


def test_int8_is_smaller_and_within_gate(artifact, conv, tiny_embedder, tok):
    path, _ = artifact("int8")
    assert path.stat().st_size < 0.6 * artifact()[0].stat().st_size
    figures = verify(tiny_embedder, conv.load(path), tok, conv, ArtifactConfig("tflite", "int8", SEQ_LEN))
    assert figures["passed"] and figures["min_cosine"] >= 0.98, figures
    assert figures["batch_sizes"] == [1]  # static files are verified one row at a time


def test_int8_classifier_keeps_decisions(artifact, conv, tiny_cls, tok):
    path, _ = artifact("int8", classifier=True)
    figures = verify(tiny_cls, conv.load(path), tok, conv, ArtifactConfig("tflite", "int8", SEQ_LEN))
    assert figures["argmax_agreement"] == 1.0 and figures["passed"], figures


def test_fp16_is_smaller_and_within_gate(artifact, conv, tiny_embedder, tok):
    path, _ = artifact("fp16")
    assert path.stat().st_size < 0.75 * artifact()[0].stat().st_size
    figures = verify(tiny_embedder, conv.load(path), tok, conv, ArtifactConfig("tflite", "fp16", SEQ_LEN))
    assert figures["passed"] and figures["min_cosine"] >= 0.999, figures


@pytest.mark.parametrize(
    "name, canonical",
    [("input_ids", "input_ids"), ("args_0", "input_ids"), ("args_1", "attention_mask"), ("args_2", "token_type_ids")],
)
def test_input_name_mapping(name, canonical):
    from edgebert.converters.tflite import _canonical_name

    assert _canonical_name(name) == canonical


@pytest.mark.parametrize("name", ["args_3", "position_ids", "serving_default_x"])
def test_unknown_inputs_are_refused(name):
    from edgebert.converters.tflite import _canonical_name

    with pytest.raises(ModelError, match=name):
        _canonical_name(name)


def test_missing_extra_names_the_pip_line(monkeypatch, conv, tiny_embedder, tmp_path):
    # A None entry in sys.modules makes the import fail as if the package were not installed.
    for mod in ("litert_torch", "ai_edge_litert", "ai_edge_litert.interpreter"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(MissingExtraError, match=r"pip install 'edgebert\[tflite\]'") as err:
        conv.convert(tiny_embedder, ArtifactConfig("tflite", "fp32", SEQ_LEN), tmp_path / "m.tflite")
    assert "TFLite export" in str(err.value) and not (tmp_path / "m.tflite").exists()
    with pytest.raises(MissingExtraError, match=r"edgebert\[tflite\]"):
        conv.load(tmp_path / "m.tflite")


def test_importing_the_converter_stays_light():
    import subprocess

    code = (
        "import sys; from edgebert.registry import CONVERTERS; CONVERTERS.names(); "
        "heavy = [m for m in ('litert_torch', 'ai_edge_litert', 'ai_edge_quantizer', 'onnxruntime') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_minilm_parity(minilm_dir, conv, tmp_path):
    pytest.importorskip("litert_torch")
    from edgebert.model.bert import load_model
    from edgebert.model.tokenizer import load_tokenizer

    model, tokenizer = load_model(minilm_dir), load_tokenizer(minilm_dir)
    for precision in ("fp32", "int8"):
        cfg = ArtifactConfig("tflite", precision, 128)
        conv.convert(model, cfg, tmp_path / f"{precision}.tflite")
        figures = verify(model, conv.load(tmp_path / f"{precision}.tflite"), tokenizer, conv, cfg)
        assert figures["passed"], figures
        if precision == "fp32":
            assert figures["max_abs_diff"] <= 1e-4
        else:
            assert figures["mean_cosine"] >= 0.99 and figures["min_cosine"] >= 0.98
