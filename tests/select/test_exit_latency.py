"""Early-exit latency: per-segment costs from the latency model, composed with the exit histogram
(expected, p90, worst case), and the export's per-segment measurement recorded as measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import tiny_config

from edgebert.model.spec import SubnetSpec
from edgebert.select.costs import costs, segment_costs
from edgebert.select.exit_latency import ExitLatency, exit_probabilities, predict_exit_latency
from edgebert.select.latency import LatencyEntry, LatencyModel

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))


def _config():
    return tiny_config(task="classification", num_labels=2, labels=("neg", "pos"), heads=(3, 3, 3), exits=True)


def _model(fixed=1.0, per_layer=0.5, gmacs=0.01):
    entry = LatencyEntry("onnx", "fp32", 1, gmacs, gmacs, per_layer, fixed, 0.1, 0.2, {"source": "test fit"})
    return LatencyModel(entries=(entry,), source="test fit")


def test_segments_add_up_to_the_model_apart_from_heads_and_calls():
    c = _config()
    segs = segment_costs(c, 16)
    full = costs(c, 16)
    assert len(segs) == 3 and all(s.layers == 1 for s in segs)
    # the layers' MACs are the model's; every segment carries one exit head (pooler + classifier)
    assert sum(s.qkv_macs + s.ffn_macs + s.attention_macs for s in segs) == (
        full.qkv_macs + full.ffn_macs + full.attention_macs
    )
    assert all(s.head_macs == full.head_macs for s in segs)
    assert (
        segs[0].embedding_params == full.embedding_params and segs[1].embedding_params == segs[2].embedding_params == 0
    )
    # a depth sub-network has as many segments as kept layers
    assert len(segment_costs(c, 16, SubnetSpec(1.0, 2 / 3))) == 2


def test_expected_p90_and_worst_from_the_histogram():
    lat = ExitLatency((2.0, 1.0, 1.0), exit_probabilities([5, 4, 1]), "predicted: x", "dev", policy_ms=0.0)
    assert lat.latencies_ms == (2.0, 3.0, 4.0)
    assert lat.expected_ms == pytest.approx(0.5 * 2 + 0.4 * 3 + 0.1 * 4)
    assert lat.p90_ms == 3.0  # P(exit <= 2) = 0.9
    assert lat.worst_ms == 4.0
    with_policy = ExitLatency((2.0, 1.0, 1.0), (0.0, 0.0, 1.0), "measured: y", "dev", policy_ms=0.1)
    assert with_policy.worst_ms == pytest.approx(4.3) and with_policy.p90_ms == with_policy.worst_ms
    assert with_policy.to_dict()["kind"] == "measured" and lat.to_dict()["kind"] == "predicted"


def test_prediction_per_segment_pays_a_call_per_segment():
    m = _model()
    c = _config()
    lat = predict_exit_latency(m, c, None, 16, "onnx", "fp32", 1, [0, 0, 10], "dev")
    plain = m.predict_latency(costs(c, 16), "onnx", "fp32", 1).value
    # running all three segments = the plain model + two more fixed costs + two more heads, + the policy
    heads = 2 * costs(c, 16).head_macs / 0.01 * 1e-6
    assert lat.worst_ms == pytest.approx(plain + 2 * 1.0 + heads + 3 * lat.policy_ms)
    assert lat.source.startswith("predicted") and lat.error_p90 == 0.2
    assert lat.bound("p90") == pytest.approx(lat.p90_ms * 1.2)
    early = predict_exit_latency(m, c, None, 16, "onnx", "fp32", 1, [10, 0, 0], "dev")
    assert early.expected_ms == early.p90_ms < lat.expected_ms
    assert predict_exit_latency(m, c, None, 16, "tflite", "fp32", 1, [1, 1, 1], "dev") is None


def test_export_times_every_segment_locally_and_records_it(tmp_path):
    from test_segments import _exit_model_dir

    from edgebert.cli import main

    model_dir = _exit_model_dir(tmp_path / "m")
    out = tmp_path / "o"
    args = ["export", "--model", str(model_dir), "--formats", "onnx,torchscript", "--seq-len", "16", "--runs", "3"]
    args += ["--cooldown", "0.01"]  # idled before every segment's run, and recorded with its figure
    assert main(args + ["--early-exit", "patience=1", "--out", str(out)]) == 0
    ee = json.loads((out / "manifest.json").read_text())["early_exit"]
    onnx = ee["latency"]["onnx"]
    assert onnx["predicted"] is None  # no --device: nothing predicts
    (m,) = onnx["measured"]
    assert m["kind"] == "measured" and m["where"] == "local" and len(m["segments"]) == 2
    assert [s["artifact"] for s in m["segments"]] == ["segment_1.onnx", "segment_2.onnx"]
    assert all(s["kind"] == "measured" and s["runs"] >= 3 and s["cooldown_s"] == 0.01 for s in m["segments"])
    assert m["segments_ms"] == pytest.approx([s["p50_ms"] for s in m["segments"]], abs=1e-3)
    assert m["expected_ms"] <= m["worst_ms"] and "unlabelled" in m["histogram_from"]
    ts = ee["latency"]["torchscript"]  # TorchScript segments too: the bench script feeds their hidden state
    assert [s["artifact"] for s in ts["measured"][0]["segments"]] == ["segment_1.pt", "segment_2.pt"]
