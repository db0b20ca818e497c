"""The size model of compressed models: factorised tables and matrices counted as the module holds them."""

import pytest
from conftest import make_tiny_model

from edgebert.compress.factorise import factorise
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec
from edgebert.select.costs import costs


@pytest.mark.parametrize("ranks", [(0, 0), (16, 0), (0, 12), (16, 12), (8, 20)])
@pytest.mark.parametrize("task", ["embedding", "classification"])
def test_params_match_the_module_for_every_rank_and_slice(ranks, task):
    kw = {"task": "classification", "num_labels": 2, "labels": ("a", "b")} if task == "classification" else {}
    model = factorise(make_tiny_model(**kw), *ranks)
    for spec in (SubnetSpec(1, 1), SubnetSpec(0.25, 0.5), SubnetSpec(0.5, 1)):
        sub = slice_model(model, spec)
        c = costs(model.config, 16, spec)
        assert c.params == sub.num_parameters(), (ranks, spec.key)


def test_factorised_embedding_shrinks_predicted_bytes_and_adds_its_projection():
    dense = make_tiny_model(vocab_size=4000).config
    small = factorise(make_tiny_model(vocab_size=4000), 8, 0).config
    a, b = costs(dense, 16), costs(small, 16)
    assert b.embedding_params == a.embedding_params - 4000 * (48 - 8)
    assert b.matrix_params == a.matrix_params + 8 * 48 and b.embedding_macs == 16 * 8 * 48
    for fmt in ("onnx", "tflite", "torchscript"):  # the weights (runtime=True: without the file's graph records)
        assert b.weight_bytes("int8", fmt, runtime=True) < 0.5 * a.weight_bytes("int8", fmt, runtime=True)
    # int8 tables: per row of every table, factorised or not, TFLite's fp32 scale and int64 zero point
    matrices, tables = b.weight_parts("int8", "tflite")
    assert tables == b.embedding_params + 12 * (4000 + 64 + 2)
