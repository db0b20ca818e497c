"""Every sequence-length bucket of an artifact is listed: export's summary and the device report.md."""

from __future__ import annotations

from edgebert.commands.export import export_summary, format_export_summary
from edgebert.export import report


def _measured(p50: float) -> dict:
    return {"p50_ms": p50, "where": "local", "runs": 5, "device": "test"}


def _bucket(signature, n, cos, p50, predicted) -> dict:
    return {
        "signature": signature,
        "seq_len": n,
        "parity": {"min_cosine": cos},
        "latency": {"predicted": {"value": predicted, "source": "test"}, "measured": [_measured(p50)]},
    }


def _manifest() -> dict:
    artifact = {
        "file": "model.tflite",
        "format": "tflite",
        "precision": "fp32",
        "size_bytes": 1_000_000,
        "sha256": "0" * 64,
        "parity": {"max_abs_diff": 1e-7, "min_cosine": 0.99999, "argmax_agreement": None, "passed": True},
        "latency": {"predicted": {"value": 3.0, "source": "test"}, "measured": [_measured(2.9)]},
        "notes": [],
        "buckets": [_bucket("seq_32", 32, 0.99998, 0.95, 1.1), _bucket("seq_128", 128, 0.99997, 2.9, 3.0)],
    }
    chosen = {"spec": "w0.5-d0.5", "format": "tflite", "precision": "fp32", "predicted_latency_ms": 3.0}
    return {
        "subnet": {"spec": {"width": 0.5, "depth": 0.5}, "parameters": 1e6, "full_parameters": 2e6},
        "device": {"name": "pixel6"},
        "budget": {"latency_ms": 40, "memory_mb": 100, "threads": 1, "seq_len": 128},
        "selection": {
            "chosen": {**chosen, "predicted_memory_mb": 10.0, "quality": 0.9},
            "candidates": [],
            "why": "test",
            "latency_source": "test",
            "quality_source": "test",
        },
        "artifacts": [artifact],
    }


def test_summary_lists_every_bucket_with_its_signature_and_figures():
    s = export_summary(_manifest(), "out/x")
    assert s["artifacts"][0]["buckets"] == [
        {"signature": "seq_32", "seq_len": 32, "min_cosine": 0.99998, "measured_p50": 0.95, "predicted_p50": 1.1},
        {"signature": "seq_128", "seq_len": 128, "min_cosine": 0.99997, "measured_p50": 2.9, "predicted_p50": 3.0},
    ]
    text = format_export_summary(s)
    assert "bucket seq_32 (32 tokens): cosine 0.99998, p50 0.95 ms measured, 1.10 ms predicted" in text
    assert "bucket seq_128 (128 tokens)" in text


def test_report_has_a_bucket_table(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "plot_pareto", lambda manifest, path: False)
    text = report.write_report(_manifest(), tmp_path).read_text()
    assert "## Sequence-length buckets" in text and "the budget applies to 128 tokens" in text
    where = "local: this machine (test), not the pixel6, 5 runs"
    assert f"| model.tflite | seq_32 | 32 | 0.99998 | 1.10 | 0.95 ({where}) |" in text
    assert f"| model.tflite | seq_128 | 128 | 0.99997 | 3.00 | 2.90 ({where}) |" in text


def test_no_buckets_no_table(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "plot_pareto", lambda manifest, path: False)
    m = _manifest()
    del m["artifacts"][0]["buckets"]
    assert "Sequence-length buckets" not in report.write_report(m, tmp_path).read_text()
    assert export_summary(m, "out/x")["artifacts"][0]["buckets"] == []
