"""Selector: picks the known best on a hand-made table, ties go to the faster, impossible -> BudgetError."""

from __future__ import annotations

import pytest
from conftest import make_tiny_model, tiny_config, tiny_vocab

from edgebert.errors import BudgetError
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.select.latency import LatencyEntry, LatencyModel, MemoryEntry, Prediction
from edgebert.select.profiles import Cpu, CpuCluster, DeviceProfile
from edgebert.select.proxy import proxy_quality
from edgebert.select.selector import Candidate, enumerate_candidates, select


def cand(key, ms, quality, mb=10.0, fmt="onnx", precision="fp32", err=0.0):
    return Candidate(
        spec=SubnetSpec.from_key(key),
        format=fmt,
        precision=precision,
        seq_len=128,
        threads=1,
        latency=Prediction(ms, "ms", "test table", err, err),
        memory=Prediction(mb, "MB", "test table", err, err),
        quality=quality,
        quality_source="hand-made",
    )


TABLE = [
    cand("w1-d1", 50.0, 0.95),
    cand("w0.75-d1", 38.0, 0.93),
    cand("w1-d0.75", 39.0, 0.92),
    cand("w0.5-d1", 26.0, 0.90),
    cand("w0.25-d0.5", 7.0, 0.70),
]


def test_picks_the_best_quality_that_fits():
    assert select(TABLE, budget_ms=40).chosen.spec.key == "w0.75-d1"
    assert select(TABLE, budget_ms=60).chosen.spec.key == "w1-d1"
    assert select(TABLE, budget_ms=30).chosen.spec.key == "w0.5-d1"
    sel = select(TABLE, budget_ms=40)
    assert len(sel.verdicts) == len(TABLE)
    why = {v.candidate.spec.key: v for v in sel.verdicts}
    assert not why["w1-d1"].fits and "budget 40 ms" in why["w1-d1"].reason
    assert why["w0.5-d1"].fits
    assert sel.to_dict()["chosen"]["key"] == "w0.75-d1"


def test_ties_go_to_the_faster():
    table = [
        cand("w1-d1", 20.0, 0.9, fmt="onnx"),
        cand("w1-d1", 12.0, 0.9, fmt="tflite"),
        cand("w1-d1", 15.0, 0.9, fmt="torchscript"),
    ]
    assert select(table, budget_ms=40).chosen.format == "tflite"


def test_margin_judges_by_the_p90_bound():
    table = [cand("w1-d1", 38.0, 0.95, err=0.2), cand("w0.5-d1", 20.0, 0.9, err=0.2)]
    assert select(table, budget_ms=40).chosen.spec.key == "w0.5-d1"  # 38 × 1.2 > 40
    assert select(table, budget_ms=40, margin=False).chosen.spec.key == "w1-d1"


def test_memory_limit_excludes_candidates():
    table = [
        cand("w1-d1", 10.0, 0.95, mb=120.0),
        cand("w1-d1", 8.0, 0.95, mb=40.0, precision="int8"),
        cand("w0.5-d1", 5.0, 0.9, mb=30.0),
    ]
    sel = select(table, budget_ms=40, memory_mb=100)
    assert sel.chosen.precision == "int8"
    sel = select(table, budget_ms=40, memory_mb=35)
    assert sel.chosen.spec.key == "w0.5-d1"
    big = next(v for v in sel.verdicts if v.candidate.memory.value == 120.0)
    assert not big.fits and "limit 35 MB" in big.reason


def test_impossible_budget_names_the_fastest_candidate():
    with pytest.raises(BudgetError) as info:
        select(TABLE, budget_ms=5)
    msg = str(info.value)
    assert info.value.exit_code == 3
    assert "w0.25-d0.5" in msg and "7 ms" in msg and "10 MB" in msg
    assert "--budget of at least 7" in msg
    assert len(info.value.verdicts) == len(TABLE)


def test_impossible_memory_says_what_to_relax():
    with pytest.raises(BudgetError, match="--memory of at least 10 MB"):
        select(TABLE, budget_ms=100, memory_mb=5)


def test_candidates_without_quality_or_coefficients_are_kept_but_never_chosen():
    table = TABLE + [
        Candidate(SubnetSpec(0.5, 0.5), "onnx", "fp32", 128, 1, None, None, 0.99, "x"),
        Candidate(
            SubnetSpec(0.5, 0.75),
            "onnx",
            "fp32",
            128,
            1,
            Prediction(1.0, "ms", "t", 0, 0),
            None,
            None,
            "no quality figure",
        ),
    ]
    sel = select(table, budget_ms=40)
    assert sel.chosen.spec.key == "w0.75-d1"
    reasons = [v.reason for v in sel.verdicts if not v.fits]
    assert any("no latency coefficients" in r for r in reasons)
    assert any("no quality figure" in r for r in reasons)


def _profile(formats=("tflite", "onnx")):
    entries = tuple(
        LatencyEntry(f, p, 2, rate, 5.0, 0.05, 0.2, 0.05, 0.1, {"source": "test"})
        for f, rate in (("onnx", 20.0), ("tflite", 25.0))
        for p in ("fp32", "int8")
    )
    memory = tuple(MemoryEntry(f, "", 1.0, 1.0, 1.0, 5.0, 0.1, 0.2, {"source": "test"}) for f in ("onnx", "tflite"))
    return DeviceProfile(
        name="test",
        description="test",
        cpu=Cpu((CpuCluster(2, "x", 2.0),)),
        ram_mb=1000,
        model_memory_mb=100,
        default_threads=2,
        formats=formats,
        runtime="r",
        reach="local",
        default_budget_ms=10,
        latency_model=LatencyModel(entries=entries, memory=memory, source="test model"),
    )


def test_enumerate_the_grid_with_predictions_and_quality():
    cfg = tiny_config(heads=(4, 4, 4, 4), ffn=(64,) * 4, hidden_size=64)
    quality = {SubnetSpec(w, d).key: (w * d, "table") for w in WIDTHS for d in DEPTHS}
    cands = enumerate_candidates(
        cfg,
        _profile(),
        ["onnx", "tflite", "torchscript"],
        ["fp32", "int8"],
        32,
        quality,
    )
    assert len(cands) == len(WIDTHS) * len(DEPTHS) * 3 * 2
    assert [c.format for c in cands[:6]] == ["tflite", "tflite", "onnx", "onnx", "torchscript", "torchscript"]
    ts = [c for c in cands if c.format == "torchscript"]
    assert all(c.latency is None for c in ts)  # the profile has no coefficients for it
    full = next(c for c in cands if c.spec.key == "w1-d1" and c.format == "tflite" and c.precision == "int8")
    # Before choose.measured_quality, an int8 candidate carries its fp32 figure as an upper bound, and says so.
    assert full.quality == pytest.approx(1.0) and full.quality_source == "upper bound, not measured for int8: table"
    assert full.latency.value > 0 and full.memory.value > 5 and full.threads == 2
    small = next(c for c in cands if c.spec.key == "w0.25-d0.5" and c.format == "tflite" and c.precision == "int8")
    assert small.latency.value < full.latency.value
    chosen = select(cands, budget_ms=full.latency.upper + 1e-6, memory_mb=1000).chosen
    assert chosen.spec.key == "w1-d1"


def test_proxy_quality_is_one_for_the_full_model_and_labelled(sentences, tmp_path):
    from tokenizers.implementations import BertWordPieceTokenizer

    model = make_tiny_model()
    (tmp_path / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    tok = BertWordPieceTokenizer(str(tmp_path / "vocab.txt"), lowercase=True)
    specs = [SubnetSpec(1.0, 1.0), SubnetSpec(0.5, 1.0), SubnetSpec(0.25, 0.5)]
    q = proxy_quality(model, tok, sentences, specs)
    assert q["w1-d1"][0] == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 <= s <= 1.0 for s, _ in q.values())
    assert q["w0.5-d1"][1] == f"proxy: mean cosine to full model on {len(sentences)} calibration texts"


def test_proxy_w1_d1_is_measured_on_the_slice_so_a_broken_slicer_shows(sentences, tmp_path, monkeypatch):
    """The full model's proxy of 1.0 is a comparison that can fail: a slicer that loses a layer lowers it."""
    from tokenizers.implementations import BertWordPieceTokenizer

    from edgebert.select import proxy

    model = make_tiny_model()
    (tmp_path / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    tok = BertWordPieceTokenizer(str(tmp_path / "vocab.txt"), lowercase=True)
    real = proxy.slice_model

    def loses_a_layer(m, spec):
        sub = real(m, spec)
        sub.layers = sub.layers[:-1]
        return sub

    monkeypatch.setattr(proxy, "slice_model", loses_a_layer)
    assert proxy_quality(model, tok, sentences, [SubnetSpec(1.0, 1.0)])["w1-d1"][0] < 0.999
