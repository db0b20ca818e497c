"""MediaPipe Tasks in its own environment (EDGEBERT_MEDIAPIPE_PYTHON; .ci/run creates it): it reads edgebert's
TFLite metadata, tokenizes with the packed vocabulary itself, and agrees with the PyTorch sub-network."""

from __future__ import annotations

import json

import pytest

from edgebert.errors import RunnerError
from edgebert.export.compat import mediapipe_parity
from edgebert.export.mediapipe_env import ENV_VAR, mediapipe_python, run_mediapipe

needs_mediapipe = pytest.mark.skipif(mediapipe_python() is None, reason=f"{ENV_VAR} is not set")


def test_without_the_environment_the_message_says_how(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(RunnerError, match=ENV_VAR):
        run_mediapipe(tmp_path / "m.tflite", "embedding", ["x"])
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-python"))
    with pytest.raises(RunnerError, match="does not exist"):
        run_mediapipe(tmp_path / "m.tflite", "embedding", ["x"])


def _rotten_tomatoes(n: int, accents: bool = False) -> list[str]:
    """The first n test-split reviews; without `accents`, those whose text has no accented letter: MediaPipe's
    WordPiece lowercases but keeps accents, which Hugging Face's BERT normaliser strips (measured: the one
    Spanish review among the first 50 scored cosine 0.9855, 1.0000 with its accents removed)."""
    from edgebert.train.data import load_data

    texts = [e.text for e in load_data("rotten-tomatoes", split="test").examples]
    return [t for t in texts if accents or not _has_accents(t)][:n]


def _has_accents(text: str) -> bool:
    import unicodedata

    return any(unicodedata.category(c) == "Mn" for c in unicodedata.normalize("NFD", text))


def _export(tmp_path, model_dir, precision: str, width: float = 0.5, depth: float = 0.5, seq_len: int = 128):
    from edgebert.export.pipeline import ExportConfig, export
    from edgebert.model.spec import SubnetSpec

    out = tmp_path / precision
    cfg = ExportConfig(
        out=str(out),
        model=str(model_dir) if model_dir else None,
        spec=SubnetSpec(width, depth),
        formats=("tflite",),
        precision=precision,
        seq_len=seq_len,
    )
    return out, export(cfg, progress=False)


@pytest.mark.slow
@needs_mediapipe
def test_minilm_encoder_parity_on_50_rotten_tomatoes(tmp_path):
    from edgebert.model.bert import load_model
    from edgebert.model.tokenizer import load_tokenizer

    out, manifest = _export(tmp_path, None, "fp32")
    answer = run_mediapipe(out / "model.tflite", "embedding", ["metadata check"], metadata=True)
    meta = json.loads(answer["metadata"]["json"])
    assert meta["subgraph_metadata"][0]["input_process_units"][0]["options_type"] == "BertTokenizerOptions"
    assert answer["metadata"]["packed_files"] == ["vocab.txt"]
    r = mediapipe_parity(
        load_model(out / "subnet"), load_tokenizer(out), out / "model.tflite", "fp32", 128, _rotten_tomatoes(50)
    )
    assert r["loads"] and r["agrees"] and r["min_cosine"] >= 0.999, r
    # With the accented reviews kept, only they fall below the gate.
    texts = _rotten_tomatoes(50, accents=True)
    figures = mediapipe_parity(
        load_model(out / "subnet"),
        load_tokenizer(out),
        out / "model.tflite",
        "fp32",
        128,
        [t for t in texts if _has_accents(t)],
    )
    assert figures["loads"] and figures["min_cosine"] < 0.999


@pytest.mark.slow
@needs_mediapipe
def test_classifier_same_decisions_on_50_rotten_tomatoes(tmp_path):
    from conftest import make_tiny_model, save_tiny_model_dir

    from edgebert.model.bert import load_model
    from edgebert.model.tokenizer import load_tokenizer

    model_dir = save_tiny_model_dir(
        tmp_path / "cls", make_tiny_model(task="classification", num_labels=2, labels=("rotten", "fresh"))
    )
    out, _ = _export(tmp_path, model_dir, "fp32", width=1.0, depth=1.0, seq_len=64)
    # the tiny vocabulary makes most words [UNK]: the point is MediaPipe's own tokenizer + head + labels
    r = mediapipe_parity(
        load_model(out / "subnet"), load_tokenizer(out), out / "model.tflite", "fp32", 64, _rotten_tomatoes(50)
    )
    assert r["loads"] and r["agrees"] and r["argmax_agreement"] == 1.0 and r["min_cosine"] >= 0.999, r


@pytest.mark.slow
@needs_mediapipe
def test_int8_and_fp16_load_and_agree(tmp_path):
    """ai-edge-quantizer keeps weights after the flatbuffer, a layout MediaPipe's bundled TFLite cannot read
    ("Input tensor 68 to op 1 (EMBEDDING_LOOKUP) is not produced"); edgebert moves them inside when it
    writes the metadata, and then both load."""
    from edgebert.model.bert import load_model
    from edgebert.model.tokenizer import load_tokenizer

    for precision, gate in (("int8", 0.98), ("fp16", 0.999)):
        out, _ = _export(tmp_path, None, precision)
        r = mediapipe_parity(
            load_model(out / "subnet"), load_tokenizer(out), out / "model.tflite", precision, 128, _rotten_tomatoes(50)
        )
        assert r["loads"] and r["agrees"] and r["min_cosine"] >= gate, (precision, r)
