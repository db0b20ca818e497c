"""Early-exit segments with sequence-length buckets (issue 14 with issue 13's buckets): the TFLite file gets
every segment at each bucket's length (segment_K_seq_N beside segment_K), each verified at its own length;
the reference runtime runs a text in the smallest bucket that holds it; ONNX segments stay dynamic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_segments import _exit_model_dir

from edgebert.cli import main
from edgebert.export.manifest import validate
from edgebert.model.bert import load_model
from edgebert.model.exits import exit_logits
from edgebert.model.tokenizer import INPUT_NAMES
from edgebert.runtime import Predictor

SHORT = "fun"  # [CLS] fun [SEP]: 3 tokens
LONG = " ".join(["the movie was great and the actors are charming"] * 3)  # > 8 tokens


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("litert_torch")
    tmp = tmp_path_factory.mktemp("eeb")
    out = tmp / "out"
    args = ["export", "--model", str(_exit_model_dir(tmp / "model")), "--formats", "tflite,onnx", "--seq-len", "8,24"]
    assert main(args + ["--no-measure", "--early-exit", "entropy=0", "--out", str(out), "--json"]) == 0
    return out, json.loads((out / "manifest.json").read_text())


def test_a_signature_per_segment_per_bucket_each_verified_at_its_length(exported):
    out, m = exported
    validate(m)
    ee = m["early_exit"]
    assert ee["seq_len"] == 24 and [s["name"] for s in ee["segments"]] == ["segment_1", "segment_2"]
    assert ee["buckets"] == [
        {"seq_len": 8, "signatures": ["segment_1_seq_8", "segment_2_seq_8"]},
        {"seq_len": 24, "signatures": ["segment_1", "segment_2"]},
    ]
    parity = ee["parity"]["tflite"]
    assert parity["passed"] and set(parity["buckets"]) == {"8", "24"}
    for n, b in parity["buckets"].items():
        assert b["seq_len"] == int(n) and b["passed"] and len(b["per_exit"]) == 2
        assert all(e["max_abs_diff"] <= 1e-4 for e in b["per_exit"])
    assert "buckets" not in ee["parity"]["onnx"]  # dynamic: one graph serves every length

    from ai_edge_litert.interpreter import Interpreter

    from edgebert.converters.tflite_metadata import read_metadata

    (tfl,) = ee["files"]["tflite"]
    names = {"segment_1", "segment_2", "segment_1_seq_8", "segment_2_seq_8"}
    assert set(Interpreter(model_path=str(out / tfl["file"])).get_signature_list()) == names
    meta = read_metadata(out / tfl["file"])
    assert meta["subgraphs"][:2] == ["segment_1", "segment_2"] and set(meta["subgraphs"]) == names


@pytest.mark.parametrize(("text", "bucket"), [(SHORT, 8), (LONG, 24)])
def test_each_text_runs_in_the_smallest_bucket_and_matches_pytorch(exported, text, bucket):
    out, _ = exported
    predictor = Predictor(out, "tflite")
    assert predictor.buckets == [8, 24]
    feeds = predictor.feeds(text)
    assert feeds["input_ids"].shape == (1, bucket)
    with torch.no_grad():
        ref = exit_logits(load_model(out / "subnet"), *(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
    for got, want in zip(predictor.exits(feeds), ref):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4)
    p = predictor.predict(text)
    assert p.bucket == bucket and p.exit_layer == 2  # entropy=0 never exits early
    onnx = Predictor(out, "onnx").predict(text)  # dynamic segments, the text at its own length
    assert onnx.bucket is None and onnx.label == p.label


def test_predict_json_names_the_bucket(exported, capsys):
    out, _ = exported
    capsys.readouterr()
    assert main(["predict", str(out), SHORT, LONG, "--format", "tflite", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["bucket"] for r in rows] == [8, 24] and all(r["exit_layer"] == 2 for r in rows)
