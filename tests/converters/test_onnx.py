"""ONNX converter, stage by stage: export -> file loads in ORT -> matches PyTorch -> dynamic shapes -> int8/fp16."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from converter_helpers import SEQ_LEN, feeds, random_feeds, tiny_cls, tiny_embedder, tok, torch_outputs  # noqa: F401

from edgebert.artifact import ArtifactConfig
from edgebert.export.verify import verify
from edgebert.model.tokenizer import INPUT_NAMES
from edgebert.registry import CONVERTERS


@pytest.fixture(scope="module")
def conv():
    return CONVERTERS.get("onnx")()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, conv, tiny_embedder, tiny_cls):
    """Convert lazily, once per (model, precision) for the whole module: exports take seconds each."""
    made = {}

    def get(precision="fp32", classifier=False):
        key = (precision, classifier)
        if key not in made:
            model = tiny_cls if classifier else tiny_embedder
            path = tmp_path_factory.mktemp("onnx") / "model.onnx"
            facts = conv.convert(model, ArtifactConfig("onnx", precision, SEQ_LEN), path)
            made[key] = (path, facts)
        return made[key]

    return get


def test_fp32_file_keeps_all_inputs_with_symbolic_axes(artifact, tiny_embedder):
    path, facts = artifact()
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == list(INPUT_NAMES)  # token_type_ids must not be dropped
    for i in graph.input:
        assert [d.dim_param for d in i.type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert [o.name for o in graph.output] == [tiny_embedder.output_name]
    assert [i["name"] for i in facts["inputs"]] == list(INPUT_NAMES)
    assert facts["inputs"][0]["shape"] == ["batch", "sequence"]
    assert facts["outputs"] == [{"name": "embeddings", "dtype": "float32", "shape": ["batch", 48]}]


def test_fp32_loads_and_matches_torch(artifact, conv, tiny_embedder, feeds):
    run = conv.load(artifact()[0])
    out = run(feeds)
    assert out.dtype == np.float32 and out.shape == (len(feeds["input_ids"]), 48)
    assert np.abs(out - torch_outputs(tiny_embedder, feeds)).max() <= 1e-5


@pytest.mark.parametrize("batch, length", [(1, 1), (1, 9), (5, 17), (3, SEQ_LEN), (2, 64)])
def test_dynamic_batch_and_sequence(artifact, conv, tiny_embedder, batch, length):
    # Lengths beyond the export's seq_len work too: only the model's position table bounds them.
    run = conv.load(artifact()[0])
    f = random_feeds(tiny_embedder, batch, length)
    assert np.abs(run(f) - torch_outputs(tiny_embedder, f)).max() <= 1e-5


def test_export_is_deterministic_and_quiet(artifact, conv, tiny_embedder, tmp_path, capfd):
    capfd.readouterr()
    conv.convert(tiny_embedder, ArtifactConfig("onnx", "fp32", SEQ_LEN), tmp_path / "again.onnx")
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""  # the exporter's chatter is swallowed
    assert (tmp_path / "again.onnx").read_bytes() == artifact()[0].read_bytes()


def test_int8_is_smaller_and_within_gate(artifact, conv, tiny_embedder, tok):
    path, facts = artifact("int8")
    assert path.stat().st_size < 0.6 * artifact()[0].stat().st_size
    assert any("int8" in n for n in facts["notes"])
    figures = verify(tiny_embedder, conv.load(path), tok, conv, ArtifactConfig("onnx", "int8", SEQ_LEN))
    assert figures["passed"], figures
    assert figures["min_cosine"] >= 0.98 and figures["batch_sizes"][-1] > 1


def test_int8_classifier_keeps_decisions(artifact, conv, tiny_cls, tok):
    path, _ = artifact("int8", classifier=True)
    figures = verify(tiny_cls, conv.load(path), tok, conv, ArtifactConfig("onnx", "int8", SEQ_LEN))
    assert figures["argmax_agreement"] == 1.0, figures
    assert figures["passed"]


def test_fp16_keeps_fp32_io_and_is_within_gate(artifact, conv, tiny_embedder, tok):
    path, _ = artifact("fp16")
    graph = onnx.load(str(path)).graph
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    # On a tiny model the graph itself is a large share of the file, so fp16 weights save ~30%, not 50%.
    assert path.stat().st_size < 0.75 * artifact()[0].stat().st_size
    figures = verify(tiny_embedder, conv.load(path), tok, conv, ArtifactConfig("onnx", "fp16", SEQ_LEN))
    assert figures["passed"] and figures["min_cosine"] >= 0.999, figures


def test_precisions_and_tolerances(conv):
    assert conv.precisions == ("fp32", "fp16", "int8") and conv.dynamic_shapes
    assert conv.resolve_precision("int8") == ("int8", None)
    assert conv.tolerance("fp32").max_abs_diff <= 1e-4
    assert conv.tolerance("int8").min_cosine >= 0.98
    assert conv.runtime_version()[0].isdigit()


@pytest.mark.slow
def test_minilm_parity(minilm_dir, conv, tmp_path):
    from edgebert.model.bert import load_model
    from edgebert.model.tokenizer import load_tokenizer

    model, tokenizer = load_model(minilm_dir), load_tokenizer(minilm_dir)
    for precision in ("fp32", "int8"):
        cfg = ArtifactConfig("onnx", precision, 128)
        conv.convert(model, cfg, tmp_path / f"{precision}.onnx")
        figures = verify(model, conv.load(tmp_path / f"{precision}.onnx"), tokenizer, conv, cfg)
        assert figures["passed"], figures
        if precision == "fp32":
            assert figures["max_abs_diff"] <= 1e-4
        else:
            assert figures["mean_cosine"] >= 0.99 and figures["min_cosine"] >= 0.98
