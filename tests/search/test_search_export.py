"""`edgebert export --search` (issue 17 part 4): the best searched point is exported, verified, measured."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import edgebert.search.pick as pick
from edgebert.cli import main
from edgebert.export.manifest import validate
from edgebert.search.evolution import EvolutionConfig


def test_export_search_writes_a_per_layer_subnet(tiny_model_dir, tmp_path, capsys, monkeypatch):
    real = pick.search_model  # the real search, with a small population to keep the test fast
    small = EvolutionConfig(population=10, generations=4)
    monkeypatch.setattr(pick, "search_model", lambda *a, **k: real(*a, **{**k, "cfg": small, "n_sample": 16}))
    out = tmp_path / "searched"
    # TorchScript converts in a fraction of a second where ONNX's exporter takes ~8 s; host as shipped (no calibration).
    argv = ["export", "--model", str(tiny_model_dir), "--device", "host", "--no-calibrate", "--budget", "15ms"]
    argv += ["--search", "--seq-len", "32", "--formats", "torchscript", "--runs", "5", "--out", str(out), "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    m = json.loads((out / "manifest.json").read_text())
    validate(m)
    sel = m["selection"]
    assert sel["method"] == "search" and "proxy" in sel["quality_source"]  # no quality table: it says so
    assert sel["chosen"]["quality_source"].startswith("measured proxy")
    assert sel["chosen"]["predicted_latency_p90_bound_ms"] <= 15.0
    assert sel["search"]["predictor"]["n_held_out"] >= 3
    assert m["subnet"]["spec"] == summary["spec"] and sel["chosen"]["spec"].startswith("w")
    grid = sel["search"]["budget"]["grid"]
    assert grid is None or sel["chosen"]["quality"] >= grid["quality"]
    (art,) = m["artifacts"]
    assert art["parity"]["passed"] and art["latency"]["predicted"]["kind"] == "predicted"
    assert art["latency"]["measured"] and art["latency"]["measured"][0]["runs"] == 5
    assert (out / "report.md").exists()


def test_search_needs_a_device(tiny_model_dir, tmp_path, capsys):
    assert main(["export", "--model", str(tiny_model_dir), "--search", "--out", str(tmp_path / "x")]) == 2
    assert "--search needs --device" in capsys.readouterr().err


class _Searched(Exception):
    pass


def test_search_keeps_to_the_app_runtimes_precisions(tiny_model_dir, monkeypatch):
    """--runtime (or the profile's runtime:) filters the searched precision as it filters the grid's candidates."""
    from edgebert.deploy import DeviceExport, device_export
    from edgebert.export.runtimes import APP_RUNTIMES, AppRuntime
    from edgebert.select.budget import Budget
    from edgebert.select.profiles import load_profile

    monkeypatch.setitem(APP_RUNTIMES, "int8-only", AppRuntime("int8-only", ("onnx",), precisions=("int8",)))
    seen = []

    def spy(loaded, efficiency_of, limits, **kw):
        seen.append(efficiency_of(loaded.full.config))
        raise _Searched

    monkeypatch.setattr(pick, "search_model", spy)
    profile = load_profile("raspberry-pi-4")
    req = DeviceExport(profile, Budget.resolve(profile, "15ms"), model=str(tiny_model_dir), search=True, measure=False)
    for runtime, precision in (("int8-only", "int8"), (None, "fp32")):
        with pytest.raises(_Searched):
            device_export(replace(req, app_runtime=runtime), progress=False)
        assert (seen[-1].format, seen[-1].precision) == ("onnx" if runtime else seen[-1].format, precision)
