"""benchmarks/search.py runs end to end on a tiny random BERT and prints its table and target verdicts."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_search_bench_tiny_runs(tiny_model_dir, capsys, monkeypatch):
    # In this process (a subprocess would spend seconds importing torch again); the script adds to sys.path.
    monkeypatch.setattr(sys, "path", list(sys.path))
    argv = ["search.py", "--model", str(tiny_model_dir), "--devices", "raspberry-pi-4", "--budgets", "3"]
    argv += ["--sample", "16", "--population", "8", "--generations", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(ROOT / "benchmarks" / "search.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "raspberry-pi-4: tflite/fp32" in out and "predictor Spearman" in out
    assert "never below the grid: yes" in out
