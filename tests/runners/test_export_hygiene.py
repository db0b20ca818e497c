"""--cooldown and --sustained when export (and build) measure: checked before any work, applied on
every target, recorded with each figure in the manifest (issue 12 items 2 and 6)."""

from __future__ import annotations

import json

import pytest

from edgebert.bench import MeasureSettings, target_measurer
from edgebert.cli import main
from edgebert.errors import UsageError
from edgebert.runners import BenchResult, RunnerOptions, parse_target

from .conftest import SEQ


@pytest.mark.parametrize(
    "kw,text",
    [
        ({"runs": 0}, "--runs must be a whole number >= 1, got 0"),
        ({"timeout_s": 0}, "--timeout must be a number of seconds > 0"),
        ({"cooldown_s": -1}, "--cooldown must be a number of seconds >= 0, got -1"),
        ({"cooldown_s": True}, "--cooldown"),
        ({"sustained_s": -0.5}, "--sustained must be a number of seconds >= 0"),
        ({"sustained_s": 100, "timeout_s": 60}, "--sustained 100 s does not fit in --timeout 60 s"),
    ],
)
def test_bad_settings_are_usage_errors(kw, text):
    with pytest.raises(UsageError, match=text):
        MeasureSettings(**kw)


def _entry(fmt: str) -> dict:
    return {"format": fmt, "seq_len": SEQ, "latency": {"measured": []}, "memory": {"measured": []}}


def _fake_bench(calls):
    def run_bench(target, path, config, options):
        calls.append(config)
        return BenchResult(
            1.0, 1.0, config.runs, config.warmup, config.threads, target.uri, "here", "rt", "1", "t", "a"
        )

    return run_bench


def test_cooldown_rests_before_every_measurement_on_a_target_but_its_first(tmp_path, monkeypatch):
    pt_artifact = tmp_path / "model.pt"  # never read: the runner is a stand-in
    slept, calls = [], []
    monkeypatch.setattr("edgebert.bench.time.sleep", slept.append)
    monkeypatch.setattr("edgebert.bench.run_bench", _fake_bench(calls))
    settings = MeasureSettings(runs=3, timeout_s=30, cooldown_s=5, sustained_s=2)
    targets = [parse_target("local"), parse_target("ssh://pi@board")]
    measure = target_measurer(targets, 1, SEQ, RunnerOptions(), settings)
    entries = [_entry("torchscript"), _entry("torchscript")]
    for e in entries:
        measure(e, pt_artifact)
    rested = [[x["cooldown_s"] for x in e["latency"]["measured"]] for e in entries]
    assert rested == [[0.0, 0.0], [5, 5]] and slept == [0.0, 0.0, 5, 5]  # each target's first follows nothing
    assert {(c.runs, c.timeout_s, c.sustained_s) for c in calls} == {(3, 30, 2)}
    # Without --cooldown nothing rests and nothing claims to have: cooldown_s stays null.
    plain = target_measurer(targets[:1], 1, SEQ, RunnerOptions(), MeasureSettings(runs=3))
    entry = _entry("torchscript")
    plain(entry, pt_artifact)
    plain(entry, pt_artifact)
    assert [x["cooldown_s"] for x in entry["latency"]["measured"]] == [None, None] and len(slept) == 4


def test_a_format_the_target_cannot_run_is_skipped_before_any_rest(tmp_path, monkeypatch):
    pt_artifact = tmp_path / "model.pt"
    slept = []
    monkeypatch.setattr("edgebert.bench.time.sleep", slept.append)
    measure = target_measurer([parse_target("adb://X")], 1, SEQ, RunnerOptions(), MeasureSettings(cooldown_s=5))
    entry = _entry("torchscript")
    measure(entry, pt_artifact)
    measure(entry, pt_artifact)
    assert slept == [] and len(entry["latency"]["skipped"]) == 2


def test_export_records_cooldown_and_sustained(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["export", "--model", str(tiny_model_dir), "--width", "0.5", "--formats", "torchscript"]
    args += ["--seq-len", str(SEQ), "--runs", "3", "--cooldown", "0.01", "--sustained", "0.2", "--out", str(out)]
    assert main(args) == 0
    [x] = json.loads((out / "manifest.json").read_text())["artifacts"][0]["latency"]["measured"]
    assert x["where"] == "local" and x["cooldown_s"] == 0.0  # the only measurement here rests before none
    assert x["sustained_s"] == 0.2 and x["timed_s"] >= 0.2 and x["drift_pct"] is not None


@pytest.mark.parametrize(
    "flags,text",
    [
        (["--sustained", "100", "--timeout", "60"], "--sustained 100 s does not fit in --timeout 60 s"),
        (["--cooldown", "-1"], "--cooldown must be a number of seconds >= 0"),
        (["--runs", "0"], "--runs must be a whole number >= 1"),
    ],
)
def test_export_refuses_bad_settings_before_any_work(tiny_model_dir, tmp_path, capsys, flags, text):
    out = tmp_path / "o"
    args = ["export", "--model", str(tiny_model_dir), "--formats", "torchscript", "--out", str(out), *flags]
    assert main(args) == 2
    assert text in capsys.readouterr().err and not out.exists()
