"""The estimated profiles' stated latency error never drops below the leave-one-out error of their class.

benchmarks/profile_error.py predicts each published figure the phone/board estimates are scaled from
with the constant re-derived from the others; a profile claiming less error than that median would be
claiming more than the figures support.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("profile_error", ROOT / "benchmarks" / "profile_error.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


pe = _load_script()
STATS = pe.class_stats(pe.leave_one_out(pe.load_figures()))


def _entries(name: str) -> list[dict]:
    doc = yaml.safe_load((ROOT / "device_profiles" / f"{name}.yaml").read_text())
    return doc["latency_model"]["entries"]


def test_every_estimated_profile_has_a_class_with_figures():
    shipped = {p.stem for p in (ROOT / "device_profiles").glob("*.yaml")} - {"host"}
    assert shipped == set(pe.CLASSES)
    assert set(pe.CLASSES.values()) <= set(STATS)


@pytest.mark.parametrize("name", sorted(pe.CLASSES))
def test_stated_error_at_least_leave_one_out_median(name):
    floor = STATS[pe.CLASSES[name]]["median"]
    for e in _entries(name):
        key = (e["format"], e["precision"], e["threads"])
        assert e["expected_error"] >= floor, f"{name} {key}: states ±{e['expected_error']:.0%} < LOO median {floor:.0%}"
        assert e.get("error_p90", 2 * e["expected_error"]) >= e["expected_error"], f"{name} {key}"


def test_leave_one_out_reproduces_the_profiles_constant():
    # The profiles' 3.24 GMAC/s per core-GHz comes from the Pixel 4 and Pixel 3a (single-threaded) figures.
    rates = {f.id: f.rate for f in pe.load_figures()}
    assert rates["pixel4-bert-base"] == pytest.approx(3.24, abs=0.02)
    assert rates["pixel3a-mobilenetv1-1t"] == pytest.approx(3.23, abs=0.02)


def test_each_figure_is_held_out_of_its_own_prediction():
    for row in pe.leave_one_out(pe.load_figures()):
        assert row.figure.id not in row.from_ids and row.from_ids


def test_report_names_the_command_and_every_figure():
    figures = pe.load_figures()
    text = pe.report(pe.leave_one_out(figures))
    assert pe.COMMAND in text
    assert all(f.id in text for f in figures)
    assert "phones:" in text and "boards:" in text
