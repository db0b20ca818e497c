"""ONNX carries the model card in metadata_props, readable from ONNX Runtime; numerics unchanged."""

from __future__ import annotations

import json
import shutil

import numpy as np
from converter_helpers import SEQ_LEN, feeds, tiny_cls, tok  # noqa: F401

from edgebert.artifact import ArtifactConfig
from edgebert.export.card import model_card
from edgebert.registry import CONVERTERS


def test_card_in_metadata_props(tmp_path, tiny_cls, tok, feeds):
    conv = CONVERTERS.get("onnx")()
    plain, path = tmp_path / "plain.onnx", tmp_path / "model.onnx"
    conv.convert(tiny_cls, ArtifactConfig("onnx", "fp32", SEQ_LEN), plain)
    shutil.copy(plain, path)
    card = model_card(tiny_cls, tok, name="tiny cls")
    described = conv.describe(path, card)
    conv.describe(path, card)  # twice: keys are replaced, not repeated
    props = conv.load(path).session.get_modelmeta().custom_metadata_map
    assert props == described["props"]
    assert props["edgebert.tokenizer"] == "bert_wordpiece" and props["edgebert.vocab_file"] == "vocab.txt"
    assert props["edgebert.output_kind"] == "classification" and json.loads(props["edgebert.labels"]) == ["neg", "pos"]
    assert json.loads(props["edgebert.inputs"]) == ["input_ids", "attention_mask", "token_type_ids"]
    assert np.array_equal(conv.load(plain)(feeds), conv.load(path)(feeds))
