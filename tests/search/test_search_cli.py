"""`edgebert search` (issue 17 part 3) on tiny models: rows per budget, sources, bad budgets."""

from __future__ import annotations

import json

import pytest
from conftest import sentiment_csv

from edgebert.cli import main

# raspberry-pi-4 at 32 tokens predicts the tiny model's grid at 7-15 ms (p90 bounds) and its smallest
# per-layer configurations near 3 ms: budgets on both sides of the grid's fastest point.
FAST = ["--device", "raspberry-pi-4", "--seq-len", "32", "--sample", "16", "--population", "8", "--generations", "3"]


def _search(capsys, model_dir, *extra) -> dict:
    assert main(["search", "--model", str(model_dir), *FAST, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_one_row_per_budget_with_sources(tiny_model_dir, capsys):
    r = _search(capsys, tiny_model_dir, "--budgets", "20ms,3ms,8ms")
    assert [x["budget_ms"] for x in r["rows"]] == [3.0, 8.0, 20.0]
    assert "proxy" in r["quality_estimate"]  # no quality table, no --data: it says it uses the proxy
    assert r["predictor"]["n_held_out"] >= 3 and -1 <= r["predictor"]["held_out_spearman"] <= 1
    for x in r["rows"]:
        assert x["fits"] and x["predicted_latency_p90_bound_ms"] <= x["budget_ms"]
        assert x["quality_source"].startswith("measured proxy")
        assert x["latency_source"].startswith("predicted")
        assert x["grid_quality"] is None or x["quality"] >= x["grid_quality"]
    low = r["rows"][0]
    assert low["grid_quality"] is None and "no grid point" in low["grid_quality_source"]  # below the grid's reach
    assert r["rows"][-1]["quality"] >= low["quality"]
    assert r["front"] and all(p["latency"]["kind"] == "predicted" for p in r["front"])


def test_classifier_with_data_measures_dev_accuracy(tiny_classifier_dir, tmp_path, capsys):
    data = sentiment_csv(tmp_path / "dev.csv", n=40)
    r = _search(capsys, tiny_classifier_dir, "--budgets", "20ms", "--data", str(data))
    row = r["rows"][0]
    assert row["quality_source"].startswith("measured: accuracy on") and "n=40" in row["quality_source"]
    assert row["grid_quality_source"].startswith("measured: accuracy")


@pytest.mark.parametrize("budgets, says", [("10ms,fast", "'fast'"), (" , ", "names no budget"), ("-5ms", "greater")])
def test_bad_budgets_exit_2(tiny_model_dir, capsys, budgets, says):
    assert main(["search", "--model", str(tiny_model_dir), "--device", "host", "--budgets", budgets]) == 2
    assert says in capsys.readouterr().err


def test_nothing_fits_is_a_row(tiny_model_dir, capsys):
    r = _search(capsys, tiny_model_dir, "--budgets", "0.01ms,20ms")
    assert not r["rows"][0]["fits"] and "nothing fits" in r["rows"][0]["why"] and r["rows"][1]["fits"]


def test_no_budget_fitting_is_exit_3(tiny_model_dir, capsys):
    assert main(["search", "--model", str(tiny_model_dir), *FAST, "--budgets", "0.01ms"]) == 3
    assert "nothing fits 0.01 ms" in capsys.readouterr().err


def test_a_quality_table_without_data_says_the_proxy_is_used(tiny_model_dir, capsys):
    (tiny_model_dir / "quality.json").write_text('{"w1-d1": {"score": 0.9, "metric": "accuracy"}}')
    r = _search(capsys, tiny_model_dir, "--budgets", "20ms")
    assert "covers only the uniform grid" in r["quality_estimate"] and "--data" in r["quality_estimate"]
    assert r["rows"][0]["quality_source"].startswith("measured proxy")
