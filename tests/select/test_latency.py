"""The latency model: NNLS recovers known coefficients; predictions carry source and error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgebert.model.bert import BertConfig
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.select.costs import costs
from edgebert.select.latency import LatencyEntry, LatencyModel, Measurement, MemoryEntry, fit, fit_memory, nnls

CFG = BertConfig(vocab_size=1000, hidden_size=128, heads=(4,) * 6, ffn=(512,) * 6, head_dim=32)
TRUE = dict(linear_gmacs_per_s=40.0, attention_gmacs_per_s=10.0, per_layer_ms=0.3, fixed_ms=1.5)


def _true_ms(c, rate=1.0):
    return (
        TRUE["fixed_ms"]
        + TRUE["per_layer_ms"] * c.layers
        + rate * (c.linear_macs / TRUE["linear_gmacs_per_s"] + c.attention_macs / TRUE["attention_gmacs_per_s"]) / 1e6
    )


def _synthetic(noise=0.0, threads=1, rate=1.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for w in WIDTHS:
        for d in DEPTHS:
            for s in (32, 64, 128):
                c = costs(CFG, s, SubnetSpec(w, d))
                out.append(
                    Measurement(
                        c,
                        "onnx",
                        "fp32",
                        threads,
                        _true_ms(c, rate) * (1 + noise * rng.standard_normal()),
                        label=SubnetSpec(w, d).key,
                    )
                )
    return out


def test_nnls_matches_least_squares_when_unconstrained_and_clips_otherwise():
    rng = np.random.default_rng(1)
    a = rng.random((20, 3))
    x = np.array([1.0, 2.0, 0.5])
    assert np.allclose(nnls(a, a @ x), x, atol=1e-8)
    b = a @ np.array([1.0, -2.0, 0.5])
    sol = nnls(a, b)
    assert (sol >= 0).all() and sol[1] == 0.0


def test_fit_recovers_known_coefficients():
    model = fit(_synthetic(), device="test", today="2026-01-01")
    (e,) = model.entries
    for k, v in TRUE.items():
        assert getattr(e, k) == pytest.approx(v, rel=1e-6), k
    assert e.expected_error < 1e-9 and e.provenance["n"] == 36
    assert e.provenance["date"] == "2026-01-01"


def test_fit_with_noise_reports_its_error_and_predicts_held_out_points():
    ms = _synthetic(noise=0.03)
    train = [m for m in ms if m.label not in ("w0.75-d0.75", "w0.5-d1")]
    held = [m for m in ms if m.label in ("w0.75-d0.75", "w0.5-d1")]
    model = fit(train)
    (e,) = model.entries
    assert 0.005 < e.expected_error < 0.06 and e.error_p90 >= e.expected_error
    rel = [abs(model.predict_latency(m.costs, "onnx", "fp32", 1).value - m.p50_ms) / m.p50_ms for m in held]
    assert np.median(rel) < 0.08


def test_prediction_carries_source_and_error():
    model = fit(_synthetic(noise=0.02), device="host", today="2026-01-01")
    c = costs(CFG, 128)
    p = model.predict_latency(c, "onnx", "fp32", 1)
    assert p.unit == "ms" and p.value == pytest.approx(_true_ms(c), rel=0.1)
    assert "fitted on 36 measurements on host, 2026-01-01" in p.source and p.source.startswith("predicted:")
    assert p.expected_error > 0 and p.upper > p.value
    d = p.to_dict()
    assert d["kind"] == "predicted" and d["value"] == p.value and d["source"] == p.source
    assert model.predict_latency(c, "tflite", "fp32", 1) is None  # no coefficients: no guess


def test_thread_scaling_from_two_fitted_thread_counts():
    ms = _synthetic(threads=1) + _synthetic(threads=2, rate=1 / 1.8)
    model = fit(ms)
    assert model.parallel_efficiency == pytest.approx(0.8, abs=0.02)
    c = costs(CFG, 128)
    exact = model.predict_latency(c, "onnx", "fp32", 2)
    scaled = model.predict_latency(c, "onnx", "fp32", 4)
    assert scaled.value < exact.value and "scaled to 4" in scaled.source
    assert scaled.expected_error > exact.expected_error


def test_infinite_rate_means_no_cost():
    e = LatencyEntry("onnx", "fp32", 1, 10.0, math.inf, 0.0, 0.0, 0.1, 0.2)
    c = costs(CFG, 64)
    assert e.predict_ms(c) == pytest.approx(c.linear_macs / 10.0 / 1e6)


def _memory_measurements(true, seqs):
    ms = []
    for w in WIDTHS:
        for s in seqs:
            for p in ("fp32", "int8"):
                c = costs(CFG, s, SubnetSpec(w, 1.0))
                ms.append(Measurement(c, true.format, p, 1, 1.0, peak_mb=true.predict_mb(c, p)))
    return ms


def test_memory_fit_and_prediction():
    true = MemoryEntry("onnx", "", 1.5, 0.5, 2.0, 12.0, 0.0, 0.0)
    fitted = fit_memory(_memory_measurements(true, (32, 256)), source="test")
    assert [m.precision for m in fitted] == ["fp32", "int8"]
    for m in fitted:
        got = (m.weight_factor, m.embedding_factor, m.activation_factor, m.overhead_mb)
        assert got == pytest.approx((1.5, 0.5, 2.0, 12.0), rel=1e-6)
    model = LatencyModel(memory=fitted, source="x")
    pred = model.predict_memory(costs(CFG, 64), "onnx", "int8")
    assert pred.unit == "MB" and pred.value > 12.0 and "memory model" in pred.source
    assert model.predict_memory(costs(CFG, 64), "tflite", "int8") is None


def test_memory_fit_at_one_sequence_length_uses_the_activation_prior():
    true = MemoryEntry("tflite", "", 2.0, 0.1, 1.5, 3.0, 0.0, 0.0)
    m, _ = fit_memory(_memory_measurements(true, (128,)), source="test")
    assert m.activation_factor == 1.5 and "fixed" in m.provenance["method"]
    assert (m.weight_factor, m.embedding_factor, m.overhead_mb) == pytest.approx((2.0, 0.1, 3.0), rel=1e-6)


def test_merge_replaces_only_the_calibrated_keys():
    a = LatencyModel(
        entries=(
            LatencyEntry("onnx", "fp32", 1, 10, 5, 0, 0, 0.1, 0.2),
            LatencyEntry("tflite", "fp32", 1, 10, 5, 0, 0, 0.1, 0.2),
        ),
        source="shipped",
    )
    b = LatencyModel(entries=(LatencyEntry("tflite", "fp32", 1, 20, 5, 0, 0, 0.05, 0.1),), source="calibrated")
    m = a.merged(b, "calibrated: x.yaml")
    assert {e.key: e.linear_gmacs_per_s for e in m.entries} == {("onnx", "fp32", 1): 10, ("tflite", "fp32", 1): 20}
