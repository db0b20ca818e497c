"""Early-exit export on a tiny model with exits: segments in every format, each exit verified, the manifest
section valid, and `edgebert predict` running every folder (early exit or not) through edgebert.runtime."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model, save_tiny_model_dir

from edgebert.cli import main
from edgebert.export.manifest import sha256_file, validate
from edgebert.model.exits import exit_logits, with_exits
from edgebert.model.tokenizer import load_tokenizer
from edgebert.runtime import Predictor
from edgebert.runtime.policy import Confidence, Entropy

TEXTS = ["the movie was great", "a boring and slow story with a terrible ending", "fun"]
FORMATS = ("onnx", "tflite", "torchscript")


def _exit_model_dir(path, layers=2):
    base = make_tiny_model(
        task="classification", num_labels=2, labels=("neg", "pos"), heads=(3,) * layers, ffn=(70,) * layers
    )
    model = with_exits(base, "mean")  # what `edgebert train --exits` makes by default
    with torch.no_grad():  # exits that differ from the final head, so a wrong wiring shows
        for p in model.exits.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return save_tiny_model_dir(path, model.eval())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ee")
    model_dir = _exit_model_dir(tmp / "model")
    out = tmp / "out"
    args = ["export", "--model", str(model_dir), "--formats", ",".join(FORMATS), "--seq-len", "24"]
    code = main(args + ["--no-measure", "--early-exit", "patience=1", "--out", str(out), "--json"])
    assert code == 0
    return model_dir, out, json.loads((out / "manifest.json").read_text())


def test_manifest_section_is_valid_and_every_exit_passed(exported):
    _, out, m = exported
    validate(m)
    ee = m["early_exit"]
    assert ee["policy"] == {"kind": "patience", "value": 1, "text": "patience=1"}
    assert [s["name"] for s in ee["segments"]] == ["segment_1", "segment_2"]
    assert [t["name"] for t in ee["segments"][0]["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [t["name"] for t in ee["segments"][1]["inputs"]] == ["hidden", "attention_mask"]
    assert [t["name"] for t in ee["segments"][0]["outputs"]] == ["hidden_out", "logits"]
    assert ee["static_segments"][0]["inputs"][0]["shape"] == [1, 24]
    for fmt in FORMATS:
        for f in ee["files"][fmt]:
            assert sha256_file(out / f["file"]) == f["sha256"]
        per_exit = ee["parity"][fmt]["per_exit"]
        assert len(per_exit) == 2 and all(e["max_abs_diff"] <= 1e-4 and e["argmax_agreement"] == 1 for e in per_exit)
    dev = ee["dev"]  # no train_config.json: the calibration texts, unlabelled
    assert sum(dev["histogram"]) == dev["n"] > 0 and dev["accuracy"] is None
    # the plain artifacts are still there and verified, as without --early-exit
    assert {a["format"] for a in m["artifacts"]} == set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_segments_match_pytorch_exit_logits(exported, fmt):
    """Run to layer k in the format's runtime == the PyTorch model's exit-k logits (the parity property)."""
    model_dir, out, _ = exported
    from edgebert.model.bert import load_model

    model = load_model(out / "subnet")
    predictor = Predictor(out, fmt)
    tok = load_tokenizer(model_dir)
    for text in TEXTS:
        feeds = predictor.feeds(text)
        got = list(predictor.exits(feeds))
        with torch.no_grad():
            ref = exit_logits(
                model, *(torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask", "token_type_ids"))
            )
        assert len(got) == len(ref) == 2
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r.numpy(), atol=1e-4)
    assert tok is not None


def test_segment_files_carry_the_model_card(exported):
    """As the plain artifacts: ONNX metadata_props per segment, TFLite metadata per signature (issue 13)."""
    import onnx

    from edgebert.converters.tflite_metadata import packed_file, read_metadata

    _, out, m = exported
    files = m["early_exit"]["files"]
    for k, f in enumerate(files["onnx"], start=1):
        props = {p.key: p.value for p in onnx.load(str(out / f["file"])).metadata_props}
        assert props == f["metadata"]["props"] and props["edgebert.segment"] == f"{k}/2"
        assert json.loads(props["edgebert.inputs"]) == (
            ["input_ids", "attention_mask", "token_type_ids"] if k == 1 else ["hidden", "attention_mask"]
        )
        assert (
            json.loads(props["edgebert.labels"]) == ["neg", "pos"] and props["edgebert.tokenizer"] == "bert_wordpiece"
        )
    (tfl,) = files["tflite"]
    meta = read_metadata(out / tfl["file"])
    assert meta["subgraphs"] == ["segment_1", "segment_2"] and tfl["metadata"]["subgraphs"] == meta["subgraphs"]
    assert [t["name"] for t in meta["inputs"]] == ["ids", "mask", "segment_ids"]  # MediaPipe's names, segment 1
    assert [t["name"] for t in meta["outputs"]] == ["hidden_out", "logits"]
    assert meta["input_process_units"] == [{"type": "BertTokenizer", "vocab_files": ["vocab.txt"]}]
    assert packed_file(out / tfl["file"], "vocab.txt") == packed_file(out / "model.tflite", "vocab.txt")
    assert packed_file(out / tfl["file"], "labels.txt").decode().split() == ["neg", "pos"]
    assert "torchscript" in files and all("metadata" not in f for f in files["torchscript"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_predict_cli_json_on_every_format(exported, fmt, capsys):
    _, out, _ = exported
    capsys.readouterr()
    assert main(["predict", str(out), *TEXTS, "--format", fmt, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(TEXTS)
    for r in rows:
        assert set(r) == {"label", "scores", "exit_layer", "ms"}
        assert r["label"] in ("neg", "pos") and 1 <= r["exit_layer"] <= 2 and r["ms"] > 0
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-4)


def test_confidence_zero_exits_at_layer_one_and_entropy_zero_equals_the_plain_export(exported):
    _, out, _ = exported
    for fmt in FORMATS:
        early = Predictor(out, fmt, policy=Confidence(0.0))
        assert [early.predict(t).exit_layer for t in TEXTS] == [1, 1, 1]
    full = Predictor(out, "onnx", policy=Entropy(0.0))
    rows = [full.predict(t) for t in TEXTS]
    assert [r.exit_layer for r in rows] == [2, 2, 2]
    # the plain artifact of the same folder (no segments): read through a manifest without early_exit
    plain_folder = out.parent / "plain-view"
    plain_folder.mkdir(exist_ok=True)
    m = json.loads((out / "manifest.json").read_text())
    m["early_exit"] = None
    for f in ["model.onnx", "tokenizer.json", "vocab.txt"]:
        (plain_folder / f).write_bytes((out / f).read_bytes())
    (plain_folder / "manifest.json").write_text(json.dumps(m))
    plain = Predictor(plain_folder, "onnx")
    for r, t in zip(rows, TEXTS):
        p = plain.predict(t)
        assert p.exit_layer == 2 and p.label == r.label
        for k in r.scores:
            assert r.scores[k] == pytest.approx(p.scores[k], abs=1e-5)


def test_predict_on_a_plain_embedding_export(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "plain"
    assert (
        main(
            [
                "export",
                "--model",
                str(tiny_model_dir),
                "--formats",
                "torchscript",
                "--seq-len",
                "16",
                "--no-measure",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["predict", str(out), "fun", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert set(row) == {"embedding", "exit_layer", "ms"} and len(row["embedding"]) == 48 and row["exit_layer"] == 3
    assert main(["predict", str(out), "fun", "--early-exit", "patience=2"]) == 2  # no exits to take
    assert main(["predict", str(out), "fun", "--format", "onnx"]) == 2  # not in the folder


@pytest.mark.parametrize("policy", ["patience=0", "entropy=-1", "confidence=1.5", "foo=1"])
def test_bad_policies_exit_2(policy, tmp_path, capsys):
    assert main(["export", "--early-exit", policy, "--out", str(tmp_path / "x")]) == 2
    assert "--early-exit" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_early_exit_on_a_model_without_exits_exits_2(tiny_classifier_dir, tmp_path, capsys):
    code = main(
        [
            "export",
            "--model",
            str(tiny_classifier_dir),
            "--formats",
            "torchscript",
            "--early-exit",
            "patience=2",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2 and "no exit heads" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_parity_gate_refuses_wrong_segments(tmp_path, monkeypatch, capsys):
    """A segment that computes something else than PyTorch's exit is not published: exit 4, no folder."""
    import edgebert.export.segments as seg

    real = seg.build_segments

    def broken(model):
        segments, names = real(model)
        segments[0] = copy.deepcopy(segments[0])  # segments share the model's modules: change only the file
        with torch.no_grad():
            segments[0].exit.classifier.bias.add_(1.0)  # the file's exit 1 now differs from the model's
        return segments, names

    monkeypatch.setattr(seg, "build_segments", broken)
    model_dir = _exit_model_dir(tmp_path / "m")
    out = tmp_path / "o"
    code = main(
        [
            "export",
            "--model",
            str(model_dir),
            "--formats",
            "torchscript",
            "--seq-len",
            "16",
            "--no-measure",
            "--early-exit",
            "confidence=0.9",
            "--out",
            str(out),
        ]
    )
    assert code == 4 and "exit 1" in capsys.readouterr().err
    assert not out.exists()


def _auto_args(model_dir, out, *extra):
    base = ["export", "--model", str(model_dir), "--formats", "torchscript", "--seq-len", "16", "--no-measure"]
    return base + ["--early-exit", "auto", "--out", str(out), *extra]


def test_early_exit_auto_chooses_on_dev_data_and_records_why(tmp_path, capsys):
    from conftest import sentiment_csv

    model_dir = _exit_model_dir(tmp_path / "m")
    data = sentiment_csv(tmp_path / "dev.csv", n=48)
    out = tmp_path / "o"
    assert main(_auto_args(model_dir, out, "--data", str(data), "--max-quality-drop", "1")) == 0
    ee = json.loads((out / "manifest.json").read_text())["early_exit"]
    auto = ee["auto"]
    assert auto["chosen"] == ee["policy"]["text"] and auto["n"] == 48 and auto["max_quality_drop_points"] == 1
    tried = {t["policy"]: t for t in auto["tried"]}
    won = tried[auto["chosen"]]
    assert won["within_limit"] and won["quality_drop"] <= 0.01 and "fewest" in auto["why"]
    # nothing within the limit runs fewer layers, and the histogram comes from the same --data texts
    assert all(t["mean_exit_layer"] >= won["mean_exit_layer"] for t in tried.values() if t["within_limit"])
    assert ee["dev"]["n"] == 48 and ee["dev"]["histogram"] == won["histogram"]
    assert "--early-exit auto chose" in capsys.readouterr().out


def test_early_exit_auto_needs_dev_data_and_exit_heads(tmp_path, tiny_classifier_dir, capsys):
    from conftest import sentiment_csv

    assert main(_auto_args(_exit_model_dir(tmp_path / "m"), tmp_path / "o")) == 2
    assert "--data" in capsys.readouterr().err and not (tmp_path / "o").exists()
    data = str(sentiment_csv(tmp_path / "dev.csv", n=16))
    assert main(_auto_args(tiny_classifier_dir, tmp_path / "o", "--data", data)) == 2
    assert "no exit heads" in capsys.readouterr().err and not (tmp_path / "o").exists()
