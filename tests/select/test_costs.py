"""Costs from a config alone: MACs per part by hand, width and depth scaling, bytes per precision."""

from __future__ import annotations

import pytest
from conftest import make_tiny_model, tiny_config

from edgebert.model.bert import BertConfig
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec, subnet_config
from edgebert.registry import CONVERTERS
from edgebert.select.costs import costs


def test_macs_of_a_known_config_by_hand():
    # 2 layers, hidden 8, 2 heads of 4, FFN 16, seq 10.
    c = costs(
        BertConfig(vocab_size=50, hidden_size=8, heads=(2, 2), ffn=(16, 16), head_dim=4, max_position_embeddings=12),
        seq_len=10,
    )
    assert c.qkv_macs == 2 * 3 * 10 * 8 * 8  # per layer: 3 projections of 10 tokens, 8 -> 8
    assert c.out_macs == 2 * 10 * 8 * 8
    assert c.ffn_macs == 2 * (10 * 8 * 16 + 10 * 16 * 8)
    assert c.attention_macs == 2 * (2 * 10 * 10 * 4 + 2 * 10 * 10 * 4)  # QKᵀ and PV, 2 heads
    assert c.head_macs == 0
    assert c.linear_macs == 3840 + 1280 + 5120
    assert c.layers == 2 and c.seq_len == 10


def test_attention_grows_with_the_square_of_the_sequence():
    cfg = tiny_config()
    short, long = costs(cfg, 16), costs(cfg, 32)
    assert long.attention_macs == 4 * short.attention_macs
    assert long.linear_macs == 2 * short.linear_macs


def test_half_width_halves_linear_macs_of_the_layers():
    cfg = BertConfig(vocab_size=100, hidden_size=64, heads=(4,) * 4, ffn=(256,) * 4, head_dim=16)
    full, half = costs(cfg, 32), costs(cfg, 32, SubnetSpec(0.5, 1.0))
    assert half.linear_macs * 2 == full.linear_macs
    assert half.attention_macs * 2 == full.attention_macs
    quarter_depth = costs(cfg, 32, SubnetSpec(1.0, 0.5))
    assert quarter_depth.linear_macs * 2 == full.linear_macs and quarter_depth.layers == 2


@pytest.mark.parametrize("task", ["embedding", "classification"])
def test_config_and_parameter_count_match_the_sliced_model(task):
    kw = dict(task="classification", num_labels=2, labels=("neg", "pos")) if task == "classification" else {}
    model = make_tiny_model(**kw)
    for w in WIDTHS:
        for d in DEPTHS:
            spec = SubnetSpec(w, d)
            sub = slice_model(model, spec)
            assert subnet_config(model.config, spec) == sub.config
            assert costs(model.config, 16, spec).params == sub.num_parameters()


def test_bytes_shrink_with_int8_and_follow_each_converter_on_embeddings():
    cfg = BertConfig(vocab_size=1000, hidden_size=64, heads=(4, 4), ffn=(256, 256), head_dim=16)
    c = costs(cfg, 32)
    fp32, fp16 = c.weight_bytes("fp32", "onnx"), c.weight_bytes("fp16", "tflite")
    onnx, tflite = CONVERTERS.get("onnx"), CONVERTERS.get("tflite")
    # The file: the weights, each layer's graph records and, in TFLite, the packed vocabulary.
    assert fp32 == 4 * c.params + 2 * onnx.graph_bytes_per_layer
    assert fp16 == 2 * c.params + 2 * tflite.graph_bytes_per_layer + 1000 * tflite.vocab_bytes_per_token
    int8_onnx, int8_ts = c.weight_bytes("int8", "onnx"), c.weight_bytes("int8", "torchscript")
    assert CONVERTERS.get("onnx").quantizes_embeddings and not CONVERTERS.get("torchscript").quantizes_embeddings
    assert int8_onnx < int8_ts < fp32
    # ≈ 1 byte per weight plus fp32 biases and scales, and the same graph records
    assert int8_onnx - 2 * onnx.graph_bytes_per_layer < 0.3 * 4 * c.params
    # torch.ao keeps the tables fp32 (and TorchScript has no graph records counted)
    assert int8_ts - (int8_onnx - 2 * onnx.graph_bytes_per_layer) > 2.9 * c.embedding_params
    # XNNPACK and ORT's CPU kernels run fp16 weights in fp32: the file halves, the memory does not.
    assert c.weight_bytes("fp16", "tflite", runtime=True) == 4 * c.params
    assert c.weight_bytes("fp16", "onnx", runtime=True) == 4 * c.params
    matrices, tables = c.weight_parts("int8", "torchscript")
    assert tables == 4 * c.embedding_params and matrices + tables == int8_ts


def test_activation_estimate_covers_attention_maps():
    cfg = tiny_config()
    c = costs(cfg, 64)
    assert c.activation_elems >= 2 * 3 * 64 * 64  # two s×s maps for each of the 3 heads
    assert c.activation_bytes() == 4 * c.activation_elems


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_weight_bytes_match_the_converters_files(tmp_path, fmt, precision):
    """The predicted file is the written one, as export writes it (model card and, in TFLite, the vocabulary
    packed in), within 5 %: `compress --memory` judges a limit by this prediction alone (MiniLM-shaped files:
    within 2.3 %, benchmarks/file_size.py). A big vocabulary makes the tables, their per-row int8 parameters
    and the packed vocab dominate."""
    import torch

    from edgebert.artifact import ArtifactConfig
    from edgebert.export.card import model_card
    from edgebert.model.bert import Bert
    from edgebert.model.packaged import default_model_dir
    from edgebert.model.tokenizer import load_tokenizer
    from edgebert.registry import CONVERTERS

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=64, heads=(4,), ffn=(256,), head_dim=16, max_position_embeddings=64)
    model = Bert(cfg).eval()
    conv = CONVERTERS.get(fmt)()
    path = tmp_path / f"m{conv.suffix}"
    conv.convert(model, ArtifactConfig(fmt, precision, 16), path)
    conv.describe(path, model_card(model, load_tokenizer(default_model_dir()), name="size"))
    expected = costs(cfg, 16).weight_bytes(precision, fmt)
    assert path.stat().st_size == pytest.approx(expected, rel=0.05)
