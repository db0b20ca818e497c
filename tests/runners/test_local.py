"""`local`: real artifacts timed by the bench script in a fresh process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgebert.errors import UsageError
from edgebert.runners import (
    BenchConfig,
    BenchmarkCrashed,
    BenchTimeout,
    RunnerOptions,
    measure_local,
    measure_many,
    run_bench,
)
from edgebert.runners.results import BENCH_SCRIPT

from .conftest import SEQ, processes_mentioning

FAST = BenchConfig(threads=1, runs=20, warmup=2, seq_len=SEQ, timeout_s=120)


def check_sane(r, artifact: Path, runtime: str):
    assert r.tool == "edgebert bench script" and r.where == "local" and r.artifact == artifact.name
    assert r.runtime == runtime and r.runtime_version not in ("", "unknown")
    assert r.runs == 20 and r.warmup == 2 and r.threads == 1 and r.seq_len == SEQ
    assert 0 < r.min_ms <= r.p50_ms <= r.p90_ms <= r.p95_ms <= r.max_ms
    assert r.mean_ms > 0 and r.std_ms >= 0 and r.init_ms > 0 and r.first_inference_ms > 0
    assert 10 < r.peak_rss_mb < 2000 and r.device and r.device_info["cpus"] >= 1
    assert r.wall_s > r.timed_s > 0


def test_tflite(tflite_artifact):
    check_sane(run_bench("local", tflite_artifact, FAST), tflite_artifact, "ai-edge-litert")


def test_onnx_with_external_weights(onnx_artifact, tmp_path, monkeypatch):
    assert (onnx_artifact.parent / "model.onnx.data").is_file()
    monkeypatch.chdir(tmp_path)  # the weights must be found beside the model, not in the caller's cwd
    check_sane(run_bench("local", onnx_artifact, FAST), onnx_artifact, "onnxruntime")


def test_torchscript(pt_artifact):
    check_sane(run_bench("local", pt_artifact, FAST), pt_artifact, "torch")


def test_peak_rss_is_the_child_not_this_process(tflite_artifact):
    """Linux keeps ru_maxrss across fork+exec; the script must not report this (torch-laden) process's peak."""
    import resource

    ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r = run_bench("local", tflite_artifact, FAST)
    assert r.peak_rss_mb < ours


def test_measure_local_is_manifest_ready(tflite_artifact):
    d = measure_local(tflite_artifact, threads=1, seq_len=SEQ, runs=10, warmup=1)
    assert d["kind"] == "measured" and d["where"] == "local" and d["runs"] == 10 and d["p50_ms"] > 0
    json.dumps(d)


def test_measure_many_and_model_warning(tflite_artifact, onnx_artifact):
    results = measure_many(
        "local",
        [tflite_artifact, onnx_artifact],
        threads=1,
        runs=5,
        warmup=1,
        seq_len=SEQ,
        options=RunnerOptions(expected_models=("Raspberry Pi 4 Model B",)),
    )
    assert [r.artifact for r in results] == ["model.tflite", "model.onnx"]
    assert all("Raspberry Pi 4 Model B" in r.warnings[0] for r in results)


def test_corrupt_artifact_is_a_crash_with_the_runtime_message(corrupt_tflite):
    with pytest.raises(BenchmarkCrashed) as e:
        run_bench("local", corrupt_tflite, FAST)
    assert "could not load" in str(e.value) and "corrupt.tflite" in str(e.value)


def test_missing_or_unknown_artifact_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        run_bench("local", tmp_path / "nope.tflite")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(UsageError, match="expected one of"):
        run_bench("local", tmp_path / "model.bin")


def test_timeout_is_bounded(tflite_artifact):
    start = time.monotonic()
    with pytest.raises(BenchTimeout, match="raise --timeout"):
        run_bench("local", tflite_artifact, BenchConfig(runs=10**9, seq_len=SEQ, timeout_s=4))
    assert time.monotonic() - start < 10


def test_ctrl_c_stops_the_child_and_propagates(tflite_artifact, tmp_path):
    artifact = tmp_path / "interrupt-me.tflite"  # a name to find the child by
    artifact.write_bytes(tflite_artifact.read_bytes())
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_bench("local", artifact, BenchConfig(runs=10**9, seq_len=SEQ, timeout_s=60))
    finally:
        timer.cancel()
    time.sleep(0.2)
    assert processes_mentioning(str(artifact)) == []


def test_script_names_the_pip_line_when_the_runtime_is_missing(tflite_artifact):
    # -S: no site-packages, so neither numpy nor ai-edge-litert can be imported.
    p = subprocess.run([sys.executable, "-S", str(BENCH_SCRIPT), str(tflite_artifact)], capture_output=True, text=True)
    assert p.returncode == 42
    payload = json.loads(p.stdout)
    assert payload["error"] == "missing_runtime"
    assert payload["pip"] == "pip install numpy ai-edge-litert==2.3.0"
