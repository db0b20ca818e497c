"""The selector reads the per-precision scores `edgebert train` writes (issue 16 item 4): every int8/fp16
candidate with a recorded figure gets it as measured, nothing is converted for them, and an int8 candidate
whose measured quality is poor loses to fp32."""

from __future__ import annotations

import pytest

from edgebert.model.loaded import load
from edgebert.model.spec import SubnetSpec
from edgebert.select.budget import Budget
from edgebert.select.choose import choose, measured_quality
from edgebert.select.latency import Prediction
from edgebert.select.profiles import load_profile
from edgebert.select.quality import quality_for, write_table
from edgebert.select.quantized import QuantizedQuality
from edgebert.select.selector import Candidate, select


def row(score, **precisions):
    base = {"metric": "accuracy", "data": "dev.csv", "n": 200, "measured_at": "2026-11-30T00:00:00+00:00"}
    rows = {
        what.replace("_", "/"): {**base, "score": s, "format": what.split("_")[0], "recipe": what.split("_")[1]}
        for what, s in precisions.items()
    }
    return {**base, "score": score, **({"precisions": rows} if rows else {})}


def cand(key, ms, quality, precision):
    return Candidate(
        spec=SubnetSpec.from_key(key),
        format="onnx",
        precision=precision,
        seq_len=128,
        threads=1,
        latency=Prediction(ms, "ms", "test", 0.0, 0.0),
        memory=Prediction(10.0, "MB", "test", 0.0, 0.0),
        quality=quality,
        quality_source="table",
    )


@pytest.fixture
def no_converting(monkeypatch):
    monkeypatch.setattr("edgebert.select.quantized.measure_recipe", lambda *a, **k: pytest.fail("converted"))


def test_an_int8_candidate_with_poor_measured_quality_loses_to_fp32(tiny_classifier_dir, no_converting):
    write_table(
        tiny_classifier_dir,
        {"w1-d1": row(0.90, onnx_int8=0.60), "w0.5-d1": row(0.80, onnx_int8=0.79)},
    )
    loaded = load(str(tiny_classifier_dir))
    fp32, _ = quality_for(loaded, progress=False)
    cands = [
        cand("w1-d1", 40, 0.90, "fp32"),  # too slow
        cand("w1-d1", 20, 0.90, "int8"),  # its fp32 bound would win; its measured 0.60 does not
        cand("w0.5-d1", 15, 0.80, "fp32"),
        cand("w0.5-d1", 10, 0.80, "int8"),
    ]
    out = measured_quality(cands, 30.0, None, QuantizedQuality(loaded, fp32))
    by = {(c.spec.key, c.precision): c for c in out}
    assert by["w1-d1", "int8"].quality == 0.60 and by["w0.5-d1", "int8"].quality == 0.79
    assert all(by[k, "int8"].quality_source.startswith("measured for onnx int8 (int8): accuracy") for k in ("w1-d1",))
    chosen = select(out, 30.0).chosen
    assert (chosen.spec.key, chosen.precision) == ("w0.5-d1", "fp32")


def test_recorded_figures_cover_every_candidate_fitting_or_not(tiny_classifier_dir, no_converting):
    """Against the host profile's real predictions: every int8 and fp16 candidate of the grid, whether it fits
    the budget or not, carries the dev-set figure (100% measured), and the selection uses them."""
    keys = [SubnetSpec(w, d).key for w in (0.5, 1.0) for d in (0.5, 0.75, 1.0)]
    write_table(tiny_classifier_dir, {k: row(0.8, onnx_int8=0.7, onnx_fp16=0.8) for k in keys})
    loaded = load(str(tiny_classifier_dir))
    fp32, _ = quality_for(loaded, progress=False)
    profile = load_profile("host", host_calibration=False)
    selection = choose(
        loaded.full.config,
        profile,
        Budget(latency_ms=profile.default_budget_ms, memory_mb=profile.model_memory_mb),
        fp32,
        ("onnx",),
        None,
        16,
        1,
        QuantizedQuality(loaded, fp32),
    )
    quantized = [v.candidate for v in selection.verdicts if v.candidate.precision != "fp32" and v.candidate.quality]
    assert {c.spec.key for c in quantized} == set(keys)
    assert {c.precision for c in quantized} == {"int8", "fp16"}
    assert all(c.quality_source.startswith(f"measured for onnx {c.precision}") for c in quantized)
    assert all(c.quality == (0.7 if c.precision == "int8" else 0.8) for c in quantized)
    assert selection.chosen.precision != "int8"  # 0.7 measured never beats 0.8
