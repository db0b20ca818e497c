"""benchmarks/search_bench.py runs end to end on a tiny random BERT and prints its table and target verdicts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_search_bench_tiny_runs(tiny_model_dir):
    argv = [sys.executable, str(ROOT / "benchmarks" / "search_bench.py"), "--model", str(tiny_model_dir)]
    argv += [
        "--devices",
        "raspberry-pi-4",
        "--budgets",
        "3",
        "--sample",
        "16",
        "--population",
        "8",
        "--generations",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, check=True).stdout
    assert "raspberry-pi-4: tflite/fp32" in out and "predictor Spearman" in out
    assert "never below the grid: yes" in out
