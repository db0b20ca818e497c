"""ssh:// with --benchmark-binary records the board's temperatures before and after the run, read from
Linux /sys/class/thermal by the same remote shell (benchmark_model itself reads none)."""

from __future__ import annotations

import dataclasses
import subprocess

from edgebert.runners import BenchConfig, run_bench, ssh
from edgebert.runners.bench_script import read_thermal


def fake_zones(root, zones: dict[str, tuple[str | None, str | None]]):
    """thermal_zoneN/{temp,type} as a Linux kernel shows them; None leaves the file out."""
    for name, (temp, kind) in zones.items():
        d = root / name
        d.mkdir(parents=True)
        if temp is not None:
            (d / "temp").write_text(temp + "\n")
        if kind is not None:
            (d / "type").write_text(kind + "\n")
    return root


ZONES = {
    "thermal_zone0": ("45500", "cpu-thermal"),
    "thermal_zone1": ("51000", "cpu-thermal"),  # the same type twice: the second is named by its zone too
    "thermal_zone2": ("30000", None),  # no type: named by its zone
    "thermal_zone3": (None, "gpu-thermal"),  # temp unreadable (a sleeping sensor): left out
    "thermal_zone4": ("", "battery"),  # empty read: left out
}


def test_the_remote_shell_reads_the_zones_as_the_bench_script_does(tmp_path, monkeypatch):
    root = fake_zones(tmp_path / "thermal", ZONES)
    monkeypatch.setattr(ssh, "THERMAL_ROOT", str(root))
    work = tmp_path / "work"
    work.mkdir()
    line = ssh._in_dir(str(work), ["sh", "-c", "echo INFO: timings; exit 3"], thermal=True)
    proc = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and not work.exists()  # the benchmark's status kept; the trap removed the dir
    rest, thermal = ssh._split_thermal(proc)
    assert rest.stdout == "INFO: timings\n"  # the zone lines never reach the benchmark_model parser
    expected = {"source": str(root), "max_c": 51.0, "zones": read_thermal(str(root))["zones"]}
    assert thermal == {"thermal_before": expected, "thermal_after": expected}
    assert expected["zones"] == {"cpu-thermal": 45.5, "cpu-thermal (thermal_zone1)": 51.0, "thermal_zone2": 30.0}


def test_a_board_without_thermal_zones_records_none(tmp_path, monkeypatch):
    monkeypatch.setattr(ssh, "THERMAL_ROOT", str(tmp_path / "absent"))
    line = ssh._in_dir(str(tmp_path), ["true"], thermal=True)
    rest, thermal = ssh._split_thermal(subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=60))
    assert rest.returncode == 0 and thermal == {"thermal_before": None, "thermal_after": None}


def test_benchmark_model_over_ssh_records_the_temperatures(
    sshd, ssh_options, tflite_artifact, python_wrapper, remote_tmp, tmp_path, monkeypatch
):
    root = fake_zones(tmp_path / "thermal", {"thermal_zone0": ("48250", "cpu-thermal")})
    monkeypatch.setattr(ssh, "THERMAL_ROOT", str(root))  # the "board" is this machine: its sshd runs the shell
    options = dataclasses.replace(ssh_options, benchmark_binary=str(python_wrapper("benchmark_model")))
    r = run_bench(sshd.uri, tflite_artifact, BenchConfig(threads=1, runs=3, warmup=1), options)
    zone = {"source": str(root), "max_c": 48.25, "zones": {"cpu-thermal": 48.25}}
    assert r.tool == "benchmark_model" and r.p50_ms > 0
    assert r.thermal_before == zone and r.thermal_after == zone
    assert "@edgebert-thermal" not in r.raw_tail
    d = r.to_dict()
    assert d["thermal_before"]["max_c"] == 48.25


def test_the_python_bench_script_reads_its_own(tmp_path):
    """Without --benchmark-binary the bench script reads the zones itself: no shell loop is added."""
    assert "thermal_zone" not in ssh._in_dir(str(tmp_path), ["python3", "bench_script.py"])
