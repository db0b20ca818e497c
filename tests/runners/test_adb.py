"""`adb://`: against tests/doubles/adb (a folder as the phone) and tests/doubles/benchmark_model
(really runs the pushed .tflite with ai-edge-litert, prints the real tool's format)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from edgebert.errors import UsageError
from edgebert.runners import (
    AmbiguousDevice,
    BenchConfig,
    BenchmarkCrashed,
    BenchTimeout,
    BinaryMissing,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    RunnerOptions,
    UnsupportedArtifact,
    run_bench,
)
from edgebert.select.profiles import load_profile

from .conftest import SEQ, processes_mentioning

QUICK = BenchConfig(threads=2, runs=10, warmup=2, timeout_s=120)


@pytest.fixture
def phone(fake_phone):
    """The fake device's folder; each test starts with an attached, authorized Pixel 6."""
    return fake_phone


@pytest.fixture
def options(doubles) -> RunnerOptions:
    return RunnerOptions(adb_path=str(doubles / "adb"), benchmark_binary=str(doubles / "benchmark_model"))


def adb_calls(phone) -> list[list[str]]:
    return [json.loads(line) for line in (phone.parent / "adb.log").read_text().splitlines()]


def left_on_phone(phone) -> list[str]:
    d = phone / "data/local/tmp/edgebert"
    return sorted(os.listdir(d)) if d.is_dir() else []


def test_measures_on_the_phone_and_cleans_up(phone, options, tflite_artifact):
    import dataclasses

    opts = dataclasses.replace(options, taskset_mask="f0", expected_models=("Pixel 6",))
    r = run_bench("adb://", tflite_artifact, QUICK, opts)
    assert r.where == "adb://FAKE0123456789" and r.device == "Pixel 6" and r.tool == "benchmark_model"
    assert r.threads == 2 and r.runs >= 10 and r.warmup >= 2 and r.seq_len == SEQ  # the tool's echoed flags
    assert 0 < r.min_ms <= r.p50_ms <= r.p95_ms <= r.max_ms and r.init_ms > 0 and r.memory_delta_mb is not None
    assert r.device_info["abi"] == "arm64-v8a" and r.device_info["cores"] == 8
    assert r.device_info["max_freq_khz"] == [1803000] * 4 + [2253000] * 2 + [2802000] * 2
    assert r.warnings == () and r.runtime_version.startswith("benchmark_model sha256:")
    run = [c for c in adb_calls(phone) if c[2:3] == ["shell"] and "--graph=" in c[3]][0][3]
    assert run.startswith("taskset f0 /data/local/tmp/edgebert/")
    for flag in (
        "--num_threads=2",
        "--warmup_runs=2",
        "--num_runs=10",
        "--use_xnnpack=true",
        "--input_layer_value_range=",
    ):
        assert flag in run
    assert left_on_phone(phone) == []


def test_the_stand_in_rejects_what_toybox_on_a_phone_rejects(phone, doubles):
    adb = [str(doubles / "adb"), "-s", "FAKE0123456789", "shell"]
    bad = subprocess.run([*adb, "taskset 0xf0 true"], capture_output=True, text=True)
    assert bad.returncode == 1 and "bad mask '0xf0'" in bad.stderr
    assert subprocess.run([*adb, "taskset f0 true"]).returncode == 0
    assert subprocess.run([*adb, "cat --version"], capture_output=True, text=True).stdout.startswith("toybox")


@pytest.mark.parametrize("device,mask", [("pixel6", "f0"), ("pixel8", "1f0"), ("galaxy-s23", "f8")])
def test_profile_masks_reach_toybox_as_bare_hex(phone, options, tflite_artifact, device, mask):
    profile = load_profile(device)
    assert profile.big_core_mask == "0x" + mask  # the profiles keep 0x; the runner strips it
    opts = options.with_device_defaults(profile.big_core_mask, profile.device_models)
    assert run_bench("adb://", tflite_artifact, BenchConfig(runs=1, warmup=1), opts).p50_ms > 0
    run = [c for c in adb_calls(phone) if c[2:3] == ["shell"] and "--graph=" in c[3]][0][3]
    assert run.startswith(f"taskset {mask} /data/local/tmp/edgebert/")


def test_uses_a_benchmark_model_already_on_the_device(phone, options, tflite_artifact, doubles):
    import dataclasses

    run_bench("adb://", tflite_artifact, BenchConfig(runs=1, warmup=1), options)  # creates the device folder
    shutil.copy(doubles / "benchmark_model", phone / "data/local/tmp/benchmark_model")
    (phone.parent / "adb.log").unlink()
    r = run_bench("adb://FAKE0123456789", tflite_artifact, QUICK, dataclasses.replace(options, benchmark_binary=None))
    assert r.runtime_version.startswith("unknown") and r.p50_ms > 0
    pushed = [c[-1] for c in adb_calls(phone) if c[2:3] == ["push"]]
    assert len(pushed) == 1 and pushed[0].endswith("/model.tflite")


def test_no_benchmark_model_says_where_to_get_one(phone, options, tflite_artifact):
    import dataclasses

    with pytest.raises(BinaryMissing) as e:
        run_bench("adb://", tflite_artifact, QUICK, dataclasses.replace(options, benchmark_binary=None))
    assert "android_aarch64_benchmark_model" in str(e.value) and "--benchmark-binary" in str(e.value)
    assert left_on_phone(phone) == []


def test_device_model_mismatch_is_a_warning(phone, options, tflite_artifact):
    import dataclasses

    r = run_bench(
        "adb://",
        tflite_artifact,
        BenchConfig(runs=1, warmup=1),
        dataclasses.replace(options, expected_models=("Pixel 7", "Pixel 7 Pro")),
    )
    assert len(r.warnings) == 1 and "'Pixel 6'" in r.warnings[0] and "Pixel 7" in r.warnings[0]


@pytest.mark.parametrize(
    "state,error,words",
    [
        ("none", DeviceNotFound, "no Android device is attached"),
        ("unauthorized", DeviceUnauthorized, "Allow USB debugging"),
        ("offline", DeviceOffline, "offline"),
        ("two", AmbiguousDevice, "adb://SERIAL"),
    ],
)
def test_device_states_are_named_errors(phone, options, tflite_artifact, monkeypatch, state, error, words):
    monkeypatch.setenv("EDGEBERT_FAKE_ADB_STATE", state)
    with pytest.raises(error, match=words) as e:
        run_bench("adb://", tflite_artifact, QUICK, options)
    assert e.value.exit_code == 5


def test_serial_picks_one_of_several_and_unknown_serial_is_not_found(phone, options, tflite_artifact, monkeypatch):
    monkeypatch.setenv("EDGEBERT_FAKE_ADB_STATE", "two")
    assert run_bench("adb://FAKE0123456789", tflite_artifact, BenchConfig(runs=1, warmup=1), options).p50_ms > 0
    with pytest.raises(DeviceNotFound, match="R58M000000"):
        run_bench("adb://R58M000000", tflite_artifact, QUICK, options)


def test_crash_shows_the_tools_last_lines_and_cleans_up(phone, options, corrupt_tflite):
    with pytest.raises(BenchmarkCrashed) as e:
        run_bench("adb://", corrupt_tflite, QUICK, options)
    assert "The model is not a valid Flatbuffer buffer" in str(e.value) and "Benchmarking failed." in str(e.value)
    assert "exit 1" in str(e.value)
    assert left_on_phone(phone) == []


def test_timeout_stops_the_tool_on_the_phone(phone, options, tflite_artifact):
    start = time.monotonic()
    with pytest.raises(BenchTimeout):
        run_bench("adb://", tflite_artifact, BenchConfig(runs=10**9, timeout_s=8), options)
    assert time.monotonic() - start < 8 + 10
    time.sleep(0.5)
    assert left_on_phone(phone) == [] and processes_mentioning(str(phone)) == []


def test_injection_through_names_is_impossible(phone, options, tflite_artifact, tmp_path, weird_name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artifact = tmp_path / (weird_name + ".tflite")
    shutil.copy(tflite_artifact, artifact)
    assert run_bench("adb://", artifact, BenchConfig(runs=1, warmup=1), options).artifact == artifact.name
    for d in (tmp_path, phone, phone / "data/local/tmp"):
        assert not [p for p in os.listdir(d) if p.startswith("PWNED")]
    with pytest.raises(UsageError):
        RunnerOptions(taskset_mask="f0 ; reboot")


def test_unsupported_formats_say_what_to_do(phone, options, pt_artifact, onnx_artifact):
    with pytest.raises(UnsupportedArtifact, match="TorchScript"):
        run_bench("adb://", pt_artifact, QUICK, options)
    with pytest.raises(UnsupportedArtifact, match="--onnx-perf-test"):
        run_bench("adb://", onnx_artifact, QUICK, options)


def test_onnx_with_onnxruntime_perf_test(phone, options, onnx_artifact, doubles):
    import dataclasses

    opts = dataclasses.replace(options, onnx_perf_test=str(doubles / "onnxruntime_perf_test"))
    r = run_bench("adb://", onnx_artifact, BenchConfig(threads=1, runs=20, seq_len=SEQ), opts)
    assert r.tool == "onnxruntime_perf_test" and r.runs == 20 and r.p50_ms > 0 and r.p90_ms >= r.p50_ms
    pushed = [c[-1].rsplit("/", 1)[-1] for c in adb_calls(phone) if c[2:3] == ["push"]]
    assert "model.onnx" in pushed and "model.onnx.data" in pushed  # external weights under their own name
    run = [c[3] for c in adb_calls(phone) if c[2:3] == ["shell"] and "onnxruntime_perf_test -e cpu" in c[3]][0]
    assert f":{SEQ}" in run and "-r 20 -x 1" in run
    assert left_on_phone(phone) == []


def test_missing_adb(tflite_artifact):
    with pytest.raises(BinaryMissing, match="platform-tools"):
        run_bench("adb://", tflite_artifact, QUICK, RunnerOptions(adb_path="/nonexistent/adb"))


def test_ctrl_c_cleans_the_phone_and_propagates(phone, options, tflite_artifact):
    import signal
    import threading

    timer = threading.Timer(4.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_bench("adb://", tflite_artifact, BenchConfig(runs=10**9, timeout_s=60), options)
    finally:
        timer.cancel()
    assert left_on_phone(phone) == []
    assert any(c[2:3] == ["shell"] and c[3].startswith("pkill -f") for c in adb_calls(phone))
