"""Quantized candidates get measured quality (issue 16 item 4): no constant penalty, figures cached."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgebert.model.loaded import load
from edgebert.model.spec import SubnetSpec
from edgebert.select import proxy, quantized
from edgebert.select.choose import measured_quality
from edgebert.select.latency import Prediction
from edgebert.select.selector import Candidate, select

ROOT = Path(__file__).resolve().parents[2]


def test_no_constant_precision_penalty_is_left():
    for path in [*ROOT.joinpath("edgebert").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")]:
        text = path.read_text()
        assert not re.search(r"precision_penalty|PRECISION_PENALTY", text, re.I), path


def cand(key, ms, quality, precision="int8", fmt="onnx"):
    return Candidate(
        spec=SubnetSpec.from_key(key),
        format=fmt,
        precision=precision,
        seq_len=128,
        threads=1,
        latency=Prediction(ms, "ms", "test", 0.0, 0.0),
        memory=Prediction(10.0, "MB", "test", 0.0, 0.0),
        quality=quality,
        quality_source=("upper bound, not measured for int8: table" if precision != "fp32" else "table"),
    )


class Fake:
    """choose.QuantizedQuality: `recorded` from a dict {(key, fmt, precision): quality}, `measure` on demand."""

    def __init__(self, measure, recorded=None):
        self.measure, self.rows = measure, recorded or {}

    def recorded(self, spec, fmt, precision):
        q = self.rows.get((spec.key, fmt, precision))
        return None if q is None else (q, f"measured for {fmt} {precision}: on the dev set (quality.json)")

    def __call__(self, spec, fmt, precision):
        return self.measure(spec, fmt, precision)


def test_sub_networks_with_different_measured_int8_cosines_get_different_quality():
    cands = [
        cand("w1-d1", 40, 1.0, "fp32"),  # does not fit 30 ms
        cand("w1-d1", 20, 1.0),
        cand("w0.75-d1", 15, 0.95),
        cand("w0.5-d1", 10, 0.90),
        cand("w0.5-d1", 28, 0.90, "fp32"),
        cand("w1-d1", 35, 1.0, fmt="tflite"),  # does not fit: derived from the onnx int8 drops
    ]
    measured = {"w1-d1": 0.93, "w0.75-d1": 0.94}
    asked = []

    def fake(spec, fmt, precision):
        asked.append(spec.key)
        return measured[spec.key], f"measured for {precision}: fake"

    out = measured_quality(cands, 30.0, None, Fake(fake))
    assert asked == ["w1-d1", "w0.75-d1"]  # w0.5-d1 int8 (bound 0.90) cannot beat 0.94: not converted
    by = {(c.spec.key, c.format, c.precision): c for c in out}
    assert by["w1-d1", "onnx", "int8"].quality == 0.93 and by["w0.75-d1", "onnx", "int8"].quality == 0.94
    small = by["w0.5-d1", "onnx", "int8"]
    assert small.quality == pytest.approx(0.90 - 0.07) and small.quality_source.startswith("derived for int8")
    assert "below 0.9400" in small.quality_source
    far = by["w1-d1", "tflite", "int8"]
    assert "does not fit" in far.quality_source and "onnx int8" not in far.quality_source
    assert far.quality == pytest.approx(1.0 - 0.07)
    chosen = select(out, 30.0).chosen
    assert (chosen.spec.key, chosen.precision) == ("w0.75-d1", "int8") and "measured" in chosen.quality_source


def test_nothing_measured_keeps_the_bound_and_says_so():
    out = measured_quality([cand("w1-d1", 50, 1.0)], 30.0, None, Fake(lambda *a: pytest.fail("nothing fits")))
    assert out[0].quality == 1.0 and out[0].quality_source.startswith("not measured for int8 (it does not fit")


def test_the_cache_holds_per_precision_figures(tiny_model_dir, monkeypatch):
    loaded = load(str(tiny_model_dir))
    fp32, _ = proxy.proxy_table(loaded, progress=False)
    q = quantized.QuantizedQuality(loaded, fp32)
    score, source = q(SubnetSpec(0.5, 1.0), "onnx", "int8")
    assert "proxy measured for int8" in source and "measured now" in source and "onnxruntime" in source
    assert 0.5 < score < 1.0 and score != fp32["w0.5-d1"][0]
    cached = q._read()["onnx/int8/w0.5-d1"]
    assert cached["score"] == score and cached["n"] == len(proxy.proxy_texts()) and 0.5 < cached["fp32"] <= 1.0
    # A second run reads it back without converting anything.
    monkeypatch.setattr(quantized, "measure_recipe", lambda *a, **k: pytest.fail("converted again"))
    again = quantized.QuantizedQuality(loaded, fp32)
    assert again(SubnetSpec(0.5, 1.0), "onnx", "int8") == (score, source.replace("measured now", again_where(again)))
    # The key covers PROXY_VERSION: another version is another file.
    monkeypatch.setattr(proxy, "PROXY_VERSION", proxy.PROXY_VERSION + 1)
    assert quantized.QuantizedQuality(loaded, fp32).path != q.path


def again_where(q) -> str:
    return f"read from the cache (measured {q._read()['onnx/int8/w0.5-d1']['measured_at']})"


def test_a_quality_table_with_per_precision_rows_is_used_as_measured(tiny_model_dir):
    from edgebert.select.quality import write_table

    row = {"score": 0.8, "metric": "accuracy", "data": "dev", "n": 10}
    write_table(
        tiny_model_dir, {"w1-d1": {**row, "precisions": {"onnx/int8": {**row, "score": 0.7, "recipe": "int8"}}}}
    )
    loaded = load(str(tiny_model_dir))
    q = quantized.QuantizedQuality(loaded, {"w1-d1": (0.8, "table")})
    score, source = q(SubnetSpec(1.0, 1.0), "onnx", "int8")
    assert score == 0.7 and source.startswith("measured for onnx int8 (int8): accuracy")
