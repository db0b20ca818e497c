"""`edgebert export --search` (issue 17 part 4): the best searched point is exported, verified, measured."""

from __future__ import annotations

import json

import edgebert.search.pick as pick
from edgebert.cli import main
from edgebert.export.manifest import validate
from edgebert.search.evolution import EvolutionConfig


def test_export_search_writes_a_per_layer_subnet(tiny_model_dir, tmp_path, capsys, monkeypatch):
    real = pick.search_model  # the real search, with a small population to keep the test fast
    small = EvolutionConfig(population=10, generations=4)
    monkeypatch.setattr(pick, "search_model", lambda *a, **k: real(*a, **{**k, "cfg": small, "n_sample": 16}))
    out = tmp_path / "searched"
    argv = ["export", "--model", str(tiny_model_dir), "--device", "raspberry-pi-4", "--budget", "15ms", "--search"]
    argv += ["--seq-len", "32", "--formats", "onnx", "--runs", "5", "--out", str(out), "--json"]
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
