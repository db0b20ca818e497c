"""TFLite metadata written by edgebert: read back through the schema, packed files, unchanged numerics."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from converter_helpers import SEQ_LEN, feeds, tiny_cls, tiny_embedder, tok  # noqa: F401

from edgebert.artifact import ArtifactConfig
from edgebert.converters.tflite_metadata import metadata_flatbuffer, packed_file, read_metadata, write_metadata
from edgebert.export.card import model_card
from edgebert.registry import CONVERTERS


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_embedder, tiny_cls, tok):
    """(plain file, file with metadata, card) per task; one conversion each."""
    pytest.importorskip("litert_torch")
    conv, made = CONVERTERS.get("tflite")(), {}
    for task, model in (("embedding", tiny_embedder), ("classification", tiny_cls)):
        folder = tmp_path_factory.mktemp(task)
        conv.convert(model, ArtifactConfig("tflite", "fp32", SEQ_LEN), folder / "plain.tflite")
        shutil.copy(folder / "plain.tflite", folder / "model.tflite")
        card = model_card(model, tok, name=f"tiny {task}")
        made[task] = (
            folder / "plain.tflite",
            folder / "model.tflite",
            card,
            write_metadata(folder / "model.tflite", card),
        )
    return made


def test_encoder_metadata_reads_back(files, tok):
    _, path, card, summary = files["embedding"]
    meta = read_metadata(path)
    assert meta["name"] == "tiny embedding" and meta["author"] == "edgebert" and meta["min_parser_version"] == "1.1.0"
    # MediaPipe's BERT preprocessor finds the inputs by these names, in the subgraph's input order.
    assert [t["name"] for t in meta["inputs"]] == ["ids", "mask", "segment_ids"]
    assert [t["name"] for t in meta["outputs"]] == ["embeddings"]
    assert meta["input_process_units"] == [{"type": "BertTokenizer", "vocab_files": ["vocab.txt"]}]
    assert meta["packed_files"] == ["vocab.txt"]
    vocab = packed_file(path, "vocab.txt").decode().splitlines()
    assert vocab == list(card.vocab) and all(tok.token_to_id(vocab[i]) == i for i in (0, 100, len(vocab) - 1))
    assert summary["bytes_added"] > len("\n".join(vocab)) and summary["tokenizer"]["type"] == "BertTokenizer"


def test_classifier_output_carries_its_labels(files):
    _, path, _, _ = files["classification"]
    meta = read_metadata(path)
    assert meta["outputs"][0]["name"] == "logits"
    assert meta["outputs"][0]["associated_files"] == [{"name": "labels.txt", "type": 2}]  # TENSOR_AXIS_LABELS
    assert packed_file(path, "labels.txt").decode().splitlines() == ["neg", "pos"]
    assert sorted(meta["packed_files"]) == ["labels.txt", "vocab.txt"]


def test_metadata_changes_no_number(files, feeds):
    conv = CONVERTERS.get("tflite")()
    for plain, path, _, _ in files.values():
        assert np.array_equal(conv.load(plain)(feeds), conv.load(path)(feeds))


def test_rewriting_replaces_and_is_deterministic(files, tmp_path):
    _, path, card, _ = files["embedding"]
    again = tmp_path / "again.tflite"
    shutil.copy(path, again)
    write_metadata(again, card)  # onto a file that already has metadata and a zip
    assert again.read_bytes() == path.read_bytes()


def test_plain_file_has_no_metadata(files):
    assert read_metadata(files["embedding"][0]) == {}


def test_flatbuffer_identifier(files):
    _, _, card, _ = files["embedding"]
    assert metadata_flatbuffer(card, ["input_ids", "attention_mask", "token_type_ids"])[4:8] == b"M001"
