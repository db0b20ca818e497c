"""TorchScript converter: trace + freeze -> loads with torch.jit -> matches PyTorch -> dynamic shapes; fp32 only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from converter_helpers import SEQ_LEN, feeds, random_feeds, tiny_cls, tiny_embedder, tok, torch_outputs  # noqa: F401

from edgebert.artifact import ArtifactConfig
from edgebert.export.verify import verify
from edgebert.registry import CONVERTERS


@pytest.fixture(scope="module")
def conv():
    return CONVERTERS.get("torchscript")()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, conv, tiny_embedder):
    path = tmp_path_factory.mktemp("ts") / ("model" + conv.suffix)
    facts = conv.convert(tiny_embedder, ArtifactConfig("torchscript", "fp32", SEQ_LEN), path)
    return path, facts


def test_file_loads_and_matches_torch(exported, conv, tiny_embedder, feeds):
    path, facts = exported
    assert path.name == "model.pt" and path.stat().st_size > 0
    assert [i["name"] for i in facts["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert facts["outputs"][0]["name"] == "embeddings"
    out = conv.load(path)(feeds)
    assert out.dtype == np.float32
    assert np.abs(out - torch_outputs(tiny_embedder, feeds)).max() <= 1e-5


@pytest.mark.parametrize("batch, length", [(1, 1), (1, 8), (5, 17), (3, SEQ_LEN), (2, 64)])
def test_dynamic_batch_and_sequence(exported, conv, tiny_embedder, batch, length):
    # Traced at batch 2 / length 24: other shapes must not be baked in.
    f = random_feeds(tiny_embedder, batch, length)
    assert np.abs(conv.load(exported[0])(f) - torch_outputs(tiny_embedder, f)).max() <= 1e-5


def test_runtime_restores_thread_count(exported, conv, tiny_embedder):
    before = torch.get_num_threads()
    conv.load(exported[0], threads=before + 1)(random_feeds(tiny_embedder, 1, 8))
    assert torch.get_num_threads() == before


def test_classifier_verifies(conv, tiny_cls, tok, tmp_path):
    cfg = ArtifactConfig("torchscript", "fp32", SEQ_LEN)
    conv.convert(tiny_cls, cfg, tmp_path / "cls.pt")
    figures = verify(tiny_cls, conv.load(tmp_path / "cls.pt"), tok, conv, cfg)
    assert figures["passed"] and figures["argmax_agreement"] == 1.0, figures
    assert figures["max_abs_diff"] <= 1e-5 and 1 in figures["batch_sizes"] and max(figures["batch_sizes"]) > 1


@pytest.mark.parametrize("requested", ["int8", "fp16"])
def test_no_quantized_path_falls_back_to_fp32_with_a_note(conv, tiny_embedder, tmp_path, requested):
    assert conv.precisions == ("fp32",)
    precision, note = conv.resolve_precision(requested)
    assert precision == "fp32" and note == f"torchscript has no supported {requested} path; exported fp32"
    facts = conv.convert(tiny_embedder, ArtifactConfig("torchscript", requested, SEQ_LEN), tmp_path / "m.pt")
    assert note in facts["notes"]
    assert conv.resolve_precision("fp32") == ("fp32", None)


@pytest.mark.slow
def test_minilm_parity(minilm_dir, conv, tmp_path):
    from edgebert.model.bert import load_model
    from edgebert.model.tokenizer import load_tokenizer

    model, tokenizer = load_model(minilm_dir), load_tokenizer(minilm_dir)
    cfg = ArtifactConfig("torchscript", "fp32", 128)
    conv.convert(model, cfg, tmp_path / "model.pt")
    figures = verify(model, conv.load(tmp_path / "model.pt"), tokenizer, conv, cfg)
    assert figures["passed"] and figures["max_abs_diff"] <= 1e-4, figures
