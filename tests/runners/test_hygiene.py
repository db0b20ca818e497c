"""Benchmark hygiene (issue 12 item 6): the median's confidence interval, drift, thermal state,
--sustained, on the bench script (local) and on the adb stand-in."""

from __future__ import annotations

import json
import math
import random

import pytest

from edgebert.errors import UsageError
from edgebert.runners import BenchConfig, RunnerOptions, run_bench
from edgebert.runners.bench_script import drift_pct, median_ci95, read_thermal
from edgebert.runners.parse import parse_thermalservice

from .conftest import SEQ


def _coverage(n: int, k: int) -> float:
    """P(x(k) <= true median <= x(n+1-k)) = 1 - 2 P(B <= k-1), B ~ Binomial(n, 1/2)."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n


@pytest.mark.parametrize("n,k", [(6, 1), (10, 2), (20, 6), (50, 18), (100, 40)])
def test_median_ci_is_the_order_statistic_interval(n, k):
    """k from the binomial tables (e.g. n=50: the 18th and 33rd values; n=100: 40th and 61st)."""
    assert median_ci95(list(range(1, n + 1))) == [k, n + 1 - k]
    assert _coverage(n, k) >= 0.95 > _coverage(n, k + 1)


def test_median_ci_contains_the_median_and_needs_six_runs():
    rng = random.Random(0)
    for n in (6, 7, 31, 500, 2001, 5000):  # 2001+: the normal approximation
        x = [rng.lognormvariate(0, 0.3) for _ in range(n)]
        lo, hi = median_ci95(x)
        med = sorted(x)[n // 2] if n % 2 else sum(sorted(x)[n // 2 - 1 : n // 2 + 1]) / 2
        assert lo <= med <= hi and lo >= min(x) and hi <= max(x)
    assert median_ci95([1.0, 2.0, 3.0, 4.0, 5.0]) is None  # [min, max] covers only 93.75 %


def test_drift_on_a_known_series():
    # first third median 10, last third median 12: 20 % slower at the end
    assert drift_pct([10, 9, 11, 50, 50, 50, 12, 13, 11]) == pytest.approx(20.0)
    assert drift_pct([5.0] * 30) == 0.0
    assert drift_pct([1.0, 2.0]) is None


def test_thermal_from_a_fake_sysfs(tmp_path):
    for zone, kind, temp in (("thermal_zone0", "cpu-thermal", "48312"), ("thermal_zone1", "cpu-thermal", "51000")):
        (tmp_path / zone).mkdir()
        (tmp_path / zone / "type").write_text(kind + "\n")
        (tmp_path / zone / "temp").write_text(temp + "\n")
    (tmp_path / "thermal_zone2").mkdir()  # a sensor that refuses the read: left out, not guessed
    (tmp_path / "thermal_zone2" / "type").write_text("battery\n")
    (tmp_path / "cooling_device0").mkdir()
    t = read_thermal(str(tmp_path))
    assert t == {
        "source": str(tmp_path),
        "max_c": 51.0,
        "zones": {"cpu-thermal": 48.312, "cpu-thermal (thermal_zone1)": 51.0},
    }


def test_thermal_absent_is_none(tmp_path):
    assert read_thermal(str(tmp_path / "missing")) is None
    assert read_thermal(str(tmp_path)) is None


def test_parse_thermalservice_prefers_the_hal_readings():
    text = (
        "IsStatusOverride: false\nThermal Status: 2\nCached temperatures:\n"
        "\tTemperature{mValue=99.0, mType=0, mName=BIG, mStatus=3}\nHAL Ready: true\nHAL connection:\n"
        "\tThermalHAL 2.0 connected: yes\nCurrent temperatures from HAL:\n"
        "\tTemperature{mValue=44.8, mType=0, mName=BIG, mStatus=0}\n"
        "\tTemperature{mValue=28.000002, mType=2, mName=battery, mStatus=0}\n"
        "Current cooling devices from HAL:\n\tCoolingDevice{mValue=0, mType=2, mName=battery}\n"
    )
    t = parse_thermalservice(text)
    assert t == {
        "source": "dumpsys thermalservice",
        "status": 2,
        "max_c": 44.8,
        "zones": {"BIG": 44.8, "battery": 28.000002},
    }
    assert parse_thermalservice("Can't find service: thermalservice\n") is None


def test_sustained_must_fit_in_the_timeout():
    with pytest.raises(UsageError, match="--timeout"):
        BenchConfig(sustained_s=100, timeout_s=60)
    with pytest.raises(UsageError):
        BenchConfig(sustained_s=-1)


def test_local_records_ci_spread_drift_and_sustained(tflite_artifact):
    r = run_bench("local", tflite_artifact, BenchConfig(runs=5, warmup=2, seq_len=SEQ, sustained_s=0.5))
    assert r.sustained_s == 0.5 and r.timed_s >= 0.5 and r.runs > 5  # at least 0.5 s, at least 5 runs
    lo, hi = r.p50_ci95_ms
    assert r.min_ms <= lo <= r.p50_ms <= hi <= r.max_ms and r.p90_ms >= r.p50_ms
    assert r.iqr_ms >= 0 and r.drift_pct is not None and r.warmup == 2
    for t in (r.thermal_before, r.thermal_after):  # what this machine exposes, or null
        assert t is None or (t["zones"] and t["max_c"] == max(t["zones"].values()))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["kind"] == "measured" and d["p50_ci95_ms"] == [lo, hi]


@pytest.fixture
def adb_options(doubles) -> RunnerOptions:
    return RunnerOptions(adb_path=str(doubles / "adb"), benchmark_binary=str(doubles / "benchmark_model"))


def test_adb_thermal_before_and_after(fake_phone, adb_options, tflite_artifact):
    r = run_bench("adb://", tflite_artifact, BenchConfig(threads=1, runs=5, warmup=1, timeout_s=120), adb_options)
    before, after = r.thermal_before, r.thermal_after
    assert before["source"] == "dumpsys thermalservice" and before["status"] == 0
    assert before["zones"]["BIG"] == 41.5 and after["zones"]["BIG"] == 42.5  # the stand-in warms per call
    assert after["max_c"] > before["max_c"]
    # benchmark_model prints no per-run times: nothing is made up for them
    assert r.p50_ci95_ms is None and r.drift_pct is None and r.iqr_ms is None and r.p90_ms is None


def test_adb_without_thermal_service_records_null(fake_phone, adb_options, tflite_artifact, monkeypatch):
    monkeypatch.setenv("EDGEBERT_FAKE_ADB_THERMAL", "none")
    r = run_bench("adb://", tflite_artifact, BenchConfig(threads=1, runs=3, warmup=1, timeout_s=120), adb_options)
    assert r.thermal_before is None and r.thermal_after is None


def test_adb_sustained_is_benchmark_models_min_secs(fake_phone, adb_options, tflite_artifact):
    config = BenchConfig(threads=1, runs=3, warmup=1, timeout_s=120, sustained_s=0.6)
    r = run_bench("adb://", tflite_artifact, config, adb_options)
    calls = [json.loads(x) for x in (fake_phone.parent / "adb.log").read_text().splitlines()]
    tool = next(c for c in calls if "benchmark_model" in " ".join(c) and "--graph" in " ".join(c))
    assert "--min_secs=0.6" in " ".join(tool) and r.sustained_s == 0.6 and r.timed_s >= 0.6
