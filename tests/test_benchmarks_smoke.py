"""benchmarks/export_bench.py runs end to end on a tiny random BERT and prints its table and target verdicts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # about 30-60 s: four ONNX conversions
def test_export_bench_tiny_runs():
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "export_bench.py"),
        "--tiny",
        "--quick",
        "--formats",
        "onnx,torchscript",
        "--specs",
        "w1-d1,w0.5-d0.5",
        "--threads",
        "1",
        "--rounds",
        "1",
        "--no-export",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Traceback" not in proc.stderr
    assert re.search(r"fp32 matmul peak .*: [\d.]+ GFLOP/s per core", out)
    # One table row per (sub-network, format, precision): onnx fp32 + int8 and torchscript fp32, two sub-networks.
    rows = [
        line for line in out.splitlines() if re.match(r"w[\d.]+-d[\d.]+\s+(onnx|torchscript)\s+(fp32|int8)\s", line)
    ]
    assert len(rows) == 6, out
    assert all("x" in r.split()[-1] for r in rows if r.split()[0] == "w0.5-d0.5")  # speed-up over the full model
    verdicts = re.findall(r"^\s+\[(MET|MISSED|n/a)\s*\]", out, re.M)
    assert len(verdicts) == 6, out
    assert "MET" == verdicts[0]  # fp32 parity holds on any model
