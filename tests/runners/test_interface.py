"""Targets, configs, the result type and the registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgebert.errors import RunnerError, UsageError
from edgebert.registry import RUNNERS
from edgebert.runners import (
    AuthError,
    BenchConfig,
    BenchmarkCrashed,
    BenchResult,
    BenchTimeout,
    BinaryMissing,
    DeviceOffline,
    DeviceUnauthorized,
    RunnerOptions,
    Target,
    TargetUnreachable,
    parse_target,
)


@pytest.mark.parametrize(
    "text,target",
    [
        ("local", Target("local")),
        ("ssh://pi@raspberrypi.local", Target("ssh", host="raspberrypi.local", user="pi")),
        ("ssh://raspberrypi.local:2222", Target("ssh", host="raspberrypi.local", port=2222)),
        ("ssh://pi@10.0.0.7:22/", Target("ssh", host="10.0.0.7", user="pi", port=22)),
        ("ssh://root@[::1]:2200", Target("ssh", host="::1", user="root", port=2200)),
        ("adb://", Target("adb")),
        ("adb://R58M123ABC", Target("adb", serial="R58M123ABC")),
        ("adb://192.168.1.20:5555", Target("adb", serial="192.168.1.20:5555")),
    ],
)
def test_parse_target(text, target):
    assert parse_target(text) == target
    assert parse_target(target.uri) == target  # the URI round-trips


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Local",
        "ssh://",
        "ssh://pi@",
        "ssh://host:0",
        "ssh://host:99999",
        "ssh://-oProxyCommand=x",
        "ssh://pi@host/path",
        "ssh://a b",
        "adb://-s",
        "adb://a;b",
        "http://host",
        "pi@raspberrypi",
    ],
)
def test_bad_targets_are_usage_errors_that_show_the_forms(text):
    with pytest.raises(UsageError) as e:
        parse_target(text)
    assert "ssh://[user@]host[:port]" in str(e.value) and "adb://[serial]" in str(e.value)
    assert e.value.exit_code == 2


def test_configs_check_their_values():
    with pytest.raises(UsageError, match="--threads"):
        BenchConfig(threads=0)
    with pytest.raises(UsageError, match="--runs"):
        BenchConfig(runs=0)
    with pytest.raises(UsageError, match="hex CPU mask"):
        RunnerOptions(taskset_mask="f0; reboot")
    assert RunnerOptions(taskset_mask="0xf0", expected_models=["Pixel 6"]).expected_models == ("Pixel 6",)


def test_errors_are_runner_errors_with_exit_code_5():
    for cls in (
        TargetUnreachable,
        AuthError,
        DeviceOffline,
        DeviceUnauthorized,
        BinaryMissing,
        BenchmarkCrashed,
        BenchTimeout,
    ):
        assert issubclass(cls, RunnerError) and cls("x").exit_code == 5


def test_result_dict_is_labelled_measured():
    r = BenchResult(
        p50_ms=2.0,
        mean_ms=2.1,
        runs=50,
        warmup=5,
        threads=2,
        where="local",
        device="x",
        runtime="rt",
        runtime_version="1",
        tool="edgebert bench script",
        artifact="model.onnx",
        wall_s=3.0,
        timed_s=0.5,
        warnings=("w",),
    )
    d = r.to_dict()
    assert d["kind"] == "measured" and d["where"] == "local" and d["warnings"] == ["w"]
    assert r.overhead_s == pytest.approx(2.5)
    assert d["timestamp"].endswith("+00:00")


def test_registry_lists_the_three_runners_and_import_stays_light():
    assert RUNNERS.names() == ["adb", "local", "ssh"]
    code = (
        "import sys, edgebert.runners; from edgebert.registry import RUNNERS; RUNNERS.names(); "
        "heavy = [m for m in ('onnxruntime', 'ai_edge_litert', 'onnx', 'numpy.random') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
