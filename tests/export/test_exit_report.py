"""report.md and pareto.png mark early-exit candidates and say which policy was chosen, with its figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgebert.export.report import write_report

sys.path.insert(0, str(Path(__file__).parent))


def _cand(spec, ms, quality, fits, ee=None):
    return {
        "spec": spec,
        "width": 1.0,
        "depth": 1.0,
        "format": "onnx",
        "precision": "fp32",
        "predicted_latency_ms": ms,
        "predicted_latency_p90_bound_ms": ms * 1.2,
        "predicted_memory_mb": 50.0,
        "quality": quality,
        "quality_source": "test",
        "fits": fits,
        "why": "fits" if fits else "latency > budget",
        "early_exit": ee,
    }


def test_report_marks_the_early_exit_candidates(tmp_path):
    lat = {"expected_ms": 6.5, "p90_ms": 8.0, "worst_ms": 30.0, "histogram_from": "rotten dev, n=100"}
    ee = {"policy": "patience=2", "latency": lat, "histogram": [50, 40, 10]}
    chosen = _cand("w1-d1", 8.0, 0.89, True, ee)
    manifest = {
        "device": {"name": "pixel6"},
        "budget": {"latency_ms": 10.0, "memory_mb": 500.0, "threads": 4, "seq_len": 128},
        "selection": {
            "chosen": chosen,
            "why": "best",
            "candidates": [_cand("w1-d1", 25.0, 0.9, False), chosen, _cand("w0.5-d1", 9.0, 0.85, True)],
            "quality_source": "test",
            "latency_source": "test",
        },
        "artifacts": [],
    }
    text = write_report(manifest, tmp_path).read_text()
    assert "Early exit: patience=2: expected 6.50, p90 8.00, worst 30.00 ms (exits taken on rotten dev" in text
    assert "| w1-d1 | onnx | fp32 | patience=2: expected 6.50" in text and "| w0.5-d1 | onnx | fp32 | - |" in text


def test_device_export_picks_an_exit_policy_and_writes_its_segments(tmp_path):
    """A model whose exit 1 is already sure: under the default --budget-on p90 the selector takes an exit
    policy (same quality, faster p90), exports segments with predicted per-segment latency, and says so."""
    import json

    from test_segments_quantized import _model_dir

    from edgebert.cli import main

    out = tmp_path / "o"
    args = ["export", "--model", str(_model_dir(tmp_path / "m")), "--device", "host", "--budget", "1000ms"]
    # 16 threads: more than this machine's cores, so the export's own local share differs from the device's
    args += ["--threads", "16", "--no-calibrate", "--formats", "onnx", "--seq-len", "16", "--no-measure"]
    args += ["--out", str(out)]
    assert main(args) == 0
    m = json.loads((out / "manifest.json").read_text())
    chosen = m["selection"]["chosen"]["early_exit"]
    assert chosen is not None and chosen["histogram"][0] > 0
    assert any(c["early_exit"] is None for c in m["selection"]["candidates"])  # plain candidates stay
    ee = m["early_exit"]
    assert ee["policy"]["text"] == chosen["policy"] and (out / "segment_1.onnx").is_file()
    pred = ee["latency"]["onnx"]["predicted"]
    assert pred["kind"] == "predicted" and len(pred["segments_ms"]) == ee["layers"]
    assert pred["p90_ms"] <= pred["worst_ms"] and "unlabelled" in pred["histogram_from"]
    # predicted for the device's threads, as the selection judged it (not this machine's share of them)
    assert pred["segments_ms"] == pytest.approx(chosen["latency"]["segments_ms"])
    assert f"Early exit: {chosen['policy']}" in (out / "report.md").read_text()
    assert f"early exit {chosen['policy']}: expected" in m["selection"]["why"]
    # --budget-on worst: every layer must fit. The segments' extra calls make the policy's worst case slower
    # than the plain model, so a budget between the two takes the plain model.
    picked = m["selection"]["chosen"]
    plain = next(
        c
        for c in m["selection"]["candidates"]
        if c["early_exit"] is None
        and (c["spec"], c["format"], c["precision"]) == tuple(picked[k] for k in ("spec", "format", "precision"))
    )
    lat = chosen["latency"]
    worst_bound = lat["worst_ms"] * (1 + lat["error_p90"])
    assert plain["predicted_latency_p90_bound_ms"] < worst_bound
    budget = (plain["predicted_latency_p90_bound_ms"] + worst_bound) / 2
    args[args.index("1000ms")] = f"{budget:.6f}ms"
    assert main(args[:-1] + [str(tmp_path / "w"), "--budget-on", "worst"]) == 0
    worst = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert worst["selection"]["chosen"]["early_exit"] is None and worst.get("early_exit") is None
