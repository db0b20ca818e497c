"""Sequence-length buckets (issue 13 item 5): one .tflite with a signature per length, each verified at its
own length; dynamic formats verified at every length; the reference runtime picks the smallest bucket."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_model, save_tiny_model_dir

from edgebert.export.manifest import validate
from edgebert.export.pipeline import ExportConfig, export
from edgebert.model.spec import SubnetSpec
from edgebert.runtime.predictor import Predictor

BUCKETS = (16, 32)
SHORT = "fun"  # [CLS] fun [SEP]: 3 tokens
LONG = " ".join(["the movie was great and the actors are charming"] * 3)  # > 16 tokens


@pytest.fixture(scope="module")
def bucketed(tmp_path_factory):
    pytest.importorskip("litert_torch")
    root = tmp_path_factory.mktemp("buckets")
    out = root / "b"
    cfg = ExportConfig(
        out=str(out),
        model=str(save_tiny_model_dir(root / "tiny", make_tiny_model())),
        spec=SubnetSpec(0.5, 1.0),
        formats=("tflite", "onnx"),
        **ExportConfig.lengths_fields(BUCKETS),
    )
    return out, export(cfg, progress=False)


def test_one_tflite_file_with_a_signature_per_length_each_verified(bucketed):
    out, m = bucketed
    validate(m)
    assert json.loads((out / "manifest.json").read_text()) == m
    tfl = next(a for a in m["artifacts"] if a["format"] == "tflite")
    assert tfl["seq_len"] == 32 and [b["seq_len"] for b in tfl["buckets"]] == [16, 32]
    assert [b["signature"] for b in tfl["buckets"]] == ["seq_16", "seq_32"]
    for b in tfl["buckets"]:
        assert b["parity"]["passed"] and b["parity"]["max_abs_diff"] <= 1e-4
        assert max(b["parity"]["seq_lens"]) == b["seq_len"]  # the longest text is cut at the bucket's own length
        assert {i["shape"][1] for i in b["inputs"]} == {b["seq_len"]}
    assert tfl["parity"]["n_inputs"] == sum(b["parity"]["n_inputs"] for b in tfl["buckets"])

    from ai_edge_litert.interpreter import Interpreter

    from edgebert.converters.tflite_metadata import read_metadata

    assert set(Interpreter(model_path=str(out / tfl["file"])).get_signature_list()) == {"seq_16", "seq_32"}
    meta = read_metadata(out / tfl["file"])
    # Largest first: subgraph 0 is what interpreters that ignore signatures run; every subgraph carries the tokenizer.
    assert meta["subgraphs"] == ["seq_32", "seq_16"] and "vocab.txt" in meta["packed_files"]
    assert tfl["metadata"]["subgraphs"] == ["seq_32", "seq_16"]


def test_dynamic_formats_keep_one_graph_verified_at_every_length(bucketed):
    _, m = bucketed
    onnx = next(a for a in m["artifacts"] if a["format"] == "onnx")
    assert onnx["dynamic_shapes"] and [(b["signature"], b["seq_len"]) for b in onnx["buckets"]] == [
        (None, 16),
        (None, 32),
    ]
    assert all(b["parity"]["passed"] for b in onnx["buckets"])


def test_predict_runs_each_text_in_the_smallest_bucket_that_fits(bucketed):
    out, _ = bucketed
    tfl, ref = Predictor(out, "tflite"), Predictor(out, "onnx")
    assert tfl.buckets == [16, 32] and tfl.bucket_for(3) == 16 and tfl.bucket_for(17) == 32 and tfl.bucket_for(99) == 32
    short, long = tfl.predict(SHORT), tfl.predict(LONG)
    assert (short.bucket, long.bucket) == (16, 32)
    assert short.to_dict()["bucket"] == 16 and ref.predict(SHORT).bucket is None
    for text, got in ((SHORT, short), (LONG, long)):
        np.testing.assert_allclose(got.embedding, ref.predict(text).embedding, atol=1e-4)


@pytest.mark.parametrize("bad", ["0,64", "64,32,64", "64,32", "abc", "32,,64", "32,x"])
def test_bad_seq_len_lists_exit_2(bad):
    from edgebert.cli import cli

    r = CliRunner().invoke(cli, ["export", "--seq-len", bad, "--formats", "onnx", "--no-measure"])
    assert r.exit_code == 2, r.output
    assert "--seq-len" in r.output


def test_a_single_length_is_still_one_int():
    from edgebert.artifact import parse_seq_lens

    assert parse_seq_lens("128") == (128,) and parse_seq_lens(" 32, 64 ,128") == (32, 64, 128)
    assert ExportConfig.lengths_fields((128,)) == {"seq_len": 128, "buckets": ()}
    assert ExportConfig.lengths_fields(64) == {"seq_len": 64, "buckets": ()}
