"""Per-device and per-entry runner settings in edgebert.toml (issue 12): parsed once, checked with the
file and key path, part of the cache key, and used when an entry is measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import make_tiny_model, save_tiny_model_dir

from edgebert.bench import MeasureSettings
from edgebert.build.cache import cache_inputs, cache_key
from edgebert.build.config import BuildConfigError, load_build_config
from edgebert.cli import main


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgebert.toml"
    path.write_text(text)
    return path


LAYERED = """
[runner]
benchmark_binary = "tools/benchmark_model"
cooldown = 5
[matrix.pixel6]
latency = ["40ms", "20ms"]
target = "adb://R58M"
[matrix.pixel6.runner]
adb = "platform-tools/adb"
sustained = 30
[[entry]]
device = "raspberry-pi-5"
target = "ssh://pi@raspberrypi.local"
runner = {runs = 7, timeout = 60, remote_python = "/opt/venv/bin/python"}
[[entry]]
device = "raspberry-pi-4"
"""


def test_entry_runner_tables_layer_over_runner_key_by_key(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "benchmark_model").write_text("")
    cfg = load_build_config(config(tmp_path, LAYERED))
    by = {e.folder: e for e in cfg.entries}
    binary = str((tmp_path / "tools" / "benchmark_model").resolve())  # a file beside the config: that file
    for folder in ("pixel6-40ms", "pixel6-20ms"):
        e = by[folder]
        assert (e.options.adb_path, e.options.benchmark_binary) == ("platform-tools/adb", binary)  # not a file here
        assert e.measuring == MeasureSettings(runs=50, timeout_s=300.0, cooldown_s=5, sustained_s=30)
    pi5 = next(e for e in cfg.entries if e.profile_name == "raspberry-pi-5")
    assert (pi5.options.remote_python, pi5.options.benchmark_binary, pi5.options.adb_path) == (
        "/opt/venv/bin/python",
        binary,
        None,
    )
    assert pi5.measuring == MeasureSettings(runs=7, timeout_s=60, cooldown_s=5, sustained_s=0.0)
    pi4 = next(e for e in cfg.entries if e.profile_name == "raspberry-pi-4")
    assert pi4.options == cfg.runner_options and pi4.measuring == MeasureSettings(cooldown_s=5)


@pytest.mark.parametrize(
    "text,where",
    [
        ('[matrix.pixel6]\n[matrix.pixel6.runner]\ncooldown = -1\n', "[matrix.pixel6.runner] cooldown: expected a number of seconds >= 0, got -1"),
        ('[matrix.pixel6]\n[matrix.pixel6.runner]\nsustained = "long"\n', "[matrix.pixel6.runner] sustained: expected"),
        ('[matrix.pixel6]\nrunner = "fast"\n', "[matrix.pixel6.runner]: expected a table"),
        ('[[entry]]\ndevice = "pixel6"\nrunner = {runs = 0}\n', "[[entry]] #1 runner runs: expected a positive integer, got 0"),
        ('[[entry]]\ndevice = "pixel6"\nrunner = {runs = 2.5}\n', "[[entry]] #1 runner runs: expected a positive integer"),
        ('[[entry]]\ndevice = "pixel6"\nrunner = {timeout = 0}\n', "[[entry]] #1 runner timeout: expected a number of seconds > 0"),
        ('[[entry]]\ndevice = "pixel6"\nrunner = {timeout = nan}\n', "[[entry]] #1 runner timeout"),
        ('[[entry]]\ndevice = "pixel6"\nrunner = {adb_path = "adb"}\n', "[[entry]] #1 runner: unknown key 'adb_path'; allowed: adb,"),
        ('[[entry]]\ndevice = "pixel6"\nrunner = {taskset = "f0; reboot"}\n', "[[entry]] #1 runner: taskset mask"),
        ('[runner]\nsustained = 280\n[matrix.pixel6]\n', "[runner] sustained/timeout: --sustained 280 s does not fit"),
        ('[runner]\ntimeout = 10\n[matrix.pixel6.runner]\nsustained = 9\n', "[matrix.pixel6.runner] sustained/timeout"),
        ('runs = 5\n[runner]\nruns = 6\n[matrix.pixel6]\n', "runs: given both at the top level and in [runner]"),
        ('runs = 0\n[matrix.pixel6]\n', "runs: expected a positive integer, got 0"),
    ],
)  # fmt: skip
def test_runner_mistakes_name_the_file_and_the_key_path(tmp_path, text, where):
    path = config(tmp_path, text)
    with pytest.raises(BuildConfigError) as err:
        load_build_config(path)
    assert str(err.value).startswith(f"{path}: ") and where in str(err.value)


def test_top_level_runs_is_still_the_runs(tmp_path):
    cfg = load_build_config(config(tmp_path, "runs = 9\n[matrix.pixel6]\n"))
    assert cfg.runs == 9 and cfg.entries[0].measuring.runs == 9


def _key(tmp_path: Path, text: str, sub: str) -> str:
    folder = tmp_path / sub
    folder.mkdir(exist_ok=True)
    cfg = load_build_config(config(folder, text))
    return cache_key(cache_inputs(cfg, cfg.entries[0], "m" * 64, {"torch": "2.13.0"}))


def test_runner_settings_are_part_of_the_cache_key_when_something_is_measured(tmp_path):
    target = '[matrix.pixel6]\ntarget = "adb://R58M"\n'
    base = _key(tmp_path, target, "a")
    assert _key(tmp_path, target, "b") == base  # same settings elsewhere on disk: same key
    changed = [
        target + "[matrix.pixel6.runner]\ncooldown = 10\n",
        target + "[matrix.pixel6.runner]\nsustained = 30\n",
        target + "[runner]\nruns = 20\n",
        target + "[runner]\ntimeout = 100\n",
        target + '[runner]\nbenchmark_binary = "/data/local/tmp/benchmark_model"\n',
        target + '[runner]\ntaskset = "c0"\n',
    ]
    keys = {_key(tmp_path, text, f"c{i}") for i, text in enumerate(changed)}
    assert len(keys) == len(changed) and base not in keys
    # A local tool file counts by its content: a rebuilt benchmark_model measures again.
    folder = tmp_path / "tool"
    folder.mkdir()
    (folder / "benchmark_model").write_text("v1")
    text = target + '[runner]\nbenchmark_binary = "benchmark_model"\n'
    first = _key(tmp_path, text, "tool")
    (folder / "benchmark_model").write_text("v2")
    assert _key(tmp_path, text, "tool") != first
    # Nothing measured (no target, measure = false): how targets would be reached changes nothing.
    quiet = '[matrix.pixel6]\nlatency = "40ms"\n'
    assert _key(tmp_path, quiet, "q1") == _key(tmp_path, quiet + "[runner]\ncooldown = 10\nruns = 3\n", "q2")
    # Measured only here (measure = true): the bench settings count, the ways to reach a target do not.
    local = "measure = true\n" + quiet
    assert _key(tmp_path, local, "l1") != _key(tmp_path, local + "[runner]\nsustained = 1\n", "l2")
    assert _key(tmp_path, local, "l1") == _key(tmp_path, local + '[runner]\nadb = "adb-33"\n', "l3")


def _board(folder: Path) -> Path:
    """A profile the tiny model fits: TorchScript at fp32 (the quickest to convert), one thread, on this machine."""
    prov = {"source": "test coefficients", "date": "2026-01-01"}
    entry = dict(threads=1, linear_gmacs_per_s=10, attention_gmacs_per_s=5, per_layer_ms=0.1, fixed_ms=1)
    formats = ("torchscript",)
    doc = {
        "name": "board",
        "description": "a test board",
        "detect": True,
        "model_memory_mb": 100,
        "default_threads": 1,
        "formats": list(formats),
        "runtime": "torch",
        "reach": "local",
        "default_budget_ms": 20,
        "latency_model": {
            "kind": "linear-v1",
            "source": "test coefficients",
            "entries": [
                {"format": f, "precision": "fp32", **entry, "expected_error": 0.1, "provenance": prov} for f in formats
            ],
            "memory": [
                {
                    "format": f,
                    "weight_factor": 1.0,
                    "activation_factor": 2.0,
                    "overhead_mb": 1,
                    "expected_error": 0.1,
                    "provenance": prov,
                }
                for f in formats
            ],
        },
    }
    path = folder / "board.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_entry_runner_settings_measure_and_are_recorded(tmp_path, capsys):
    """An entry's cooldown/sustained/runs reach every measurement and its manifest; changing one rebuilds."""
    save_tiny_model_dir(tmp_path / "tiny", make_tiny_model())
    _board(tmp_path)
    head = 'model = "tiny"\nseq_len = 16\nquantize = "fp32"\n'
    entry = '[[entry]]\ndevice = "board.yaml"\nlatency = "40ms"\ntarget = "local"\nfolder = "b"\n'
    runner = "[entry.runner]\nruns = 4\ncooldown = 0.01\nsustained = 0.2\n"
    cfg = config(tmp_path, head + entry + runner)
    assert main(["build", str(cfg)]) == 0
    m = json.loads((tmp_path / "dist" / "b" / "manifest.json").read_text())
    [x] = m["artifacts"][0]["latency"]["measured"]
    # The only measurement on its target follows whatever ran before edgebert (tests/runners test the idle).
    assert x["where"] == "local" and x["cooldown_s"] == 0.0
    assert x["sustained_s"] == 0.2 and x["timed_s"] >= 0.2 and x["runs"] >= 4 and x["drift_pct"] is not None
    assert m["build"]["inputs"]["measure"]["settings"] == {
        "runs": 4,
        "timeout_s": 300.0,
        "cooldown_s": 0.01,
        "sustained_s": 0.2,
    }
    capsys.readouterr()
    assert main(["build", str(cfg)]) == 0
    assert "b: cached" in capsys.readouterr().err
    cfg.write_text(head + entry + runner.replace("cooldown = 0.01", "cooldown = 0.02"))
    assert main(["build", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert "b: built" in err and "inputs changed: measure" in err
