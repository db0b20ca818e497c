"""`--device host` on a machine the shipped fit was not made on: a quick calibration, cached per machine.

The runner is replaced by a machine whose speed is known (the shipped fit with compute 2x slower and
overhead 1.5x), so the test can check that the calibration recovers it; conversion is real."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from conftest import tiny_config

import edgebert.calibrate.quick as quick
from edgebert.cli import main
from edgebert.model.spec import SubnetSpec
from edgebert.select.costs import costs
from edgebert.select.profiles import host_calibration_path, load_profile

ELSEWHERE = ("Intel(R) Xeon(R) Test CPU", 16)  # not the machine host.yaml was fitted on
COMPUTE, OVERHEAD = 2.0, 1.5


def _true_ms(prior, c, fmt, precision, threads) -> float:
    compute, overhead = quick._parts(prior, c, fmt, precision, threads)
    return COMPUTE * compute + OVERHEAD * overhead


@pytest.fixture
def other_machine(monkeypatch, tmp_path):
    """This machine pretends to be another CPU; the runner answers with that CPU's known speed."""
    import edgebert.select.profiles as profiles

    monkeypatch.setattr(profiles, "host_machine", lambda: ELSEWHERE)
    monkeypatch.setattr(quick, "host_machine", lambda: ELSEWHERE)
    monkeypatch.setenv("EDGEBERT_CONFIG_DIR", str(tmp_path / "cfg"))
    prior = load_profile("host", host_calibration=False).latency_model
    calls = []

    def fake_time(run, seq_len, vocab_size, window_s):
        path, threads = run
        spec = SubnetSpec(*map(float, re.search(r"-w([\d.]+)-d([\d.]+)-", path.name).groups()))
        fmt = {".onnx": "onnx", ".tflite": "tflite", ".pt": "torchscript"}[path.suffix]
        precision = path.stem.rsplit("-", 1)[1]
        calls.append((spec.key, fmt, precision, seq_len))
        c = costs(tiny_config(), seq_len, spec)
        truth = _true_ms(prior, c, fmt, precision, threads)
        # a busy machine: every round 30% slow but one, whose median is the machine's own speed
        return [truth * (1.0 if calls.count(calls[-1]) == 2 else 1.3)] * 5

    class FastOnnx:  # the file's name is all the stand-in runner reads; real conversion is tested elsewhere
        suffix, dynamic_shapes = ".onnx", True

        def convert(self, model, cfg, path):
            path.write_bytes(b"stand-in")

    class FastTflite(FastOnnx):
        suffix, dynamic_shapes = ".tflite", False

    monkeypatch.setattr(quick, "_open", lambda conv, path, threads: (path, threads))
    monkeypatch.setattr(quick, "_time_ms", fake_time)
    monkeypatch.setattr(quick, "CONVERTERS", SimpleNamespace(get={"onnx": FastOnnx, "tflite": FastTflite}.get))
    monkeypatch.setattr(quick, "QUICK_BUDGET_S", 600.0)
    return SimpleNamespace(prior=prior, calls=calls)


def test_fit_is_matched_by_cpu_model_and_core_count_each(monkeypatch):
    import edgebert.select.profiles as profiles

    assert profiles._fitted_on({"machine": "AMD EPYC (avx2, fma), 2 cores"}) == ("AMD EPYC", 2)
    assert profiles._fitted_on({"cpu_model": "AMD EPYC", "cores": 2, "machine": "x"}) == ("AMD EPYC", 2)
    shipped = load_profile("host", host_calibration=False).latency_model.entries[0]
    for machine, widened in ((("AMD EPYC", 2), False), (("AMD EPYC", 16), True), (("Intel Xeon", 2), True)):
        monkeypatch.setattr(profiles, "host_machine", lambda m=machine: m)
        p = load_profile("host")
        e = p.latency_model.entry(shipped.format, shipped.precision, shipped.threads)[0]
        assert (e.expected_error >= 0.5) is widened, machine
        assert bool(p.calibration_wanted) is widened, machine


def test_quick_calibration_recovers_the_machine_and_is_cached(tiny_model_dir, other_machine):
    profile = load_profile("host")
    assert ("onnx", "fp32", 1) in profile.calibration_wanted
    said = []
    got, done = quick.calibrate_host(
        profile,
        formats=("onnx",),
        quantize="fp32",
        model=str(tiny_model_dir),
        seq_len=32,
        progress=False,
        say=said.append,
    )
    assert said and "calibrating this one" in said[0]
    assert done["calibrated"] == ["onnx/fp32"] and done["not_calibrated"] == []
    assert done["held_out_n"] == 1 and done["held_out_median_error"] < 0.01  # the quietest round counts
    assert done["load_noise"] == pytest.approx(0.3)  # a typical round was 30% above the quietest
    assert host_calibration_path(*ELSEWHERE).is_file() and done["file"] == str(host_calibration_path(*ELSEWHERE))
    # the probe at two lengths (dynamic shapes), the held-out sub-network at one; timed again in rounds
    assert list(dict.fromkeys(other_machine.calls)) == [
        ("w0.5-d0.5", "onnx", "fp32", 32),
        ("w0.5-d0.5", "onnx", "fp32", 16),
        ("w1-d0.5", "onnx", "fp32", 32),
    ]
    assert all(other_machine.calls.count(c) >= 3 for c in set(other_machine.calls))
    # a sub-network it never measured is predicted as the machine runs it, with the calibration's error
    c = costs(tiny_config(), 32, SubnetSpec(0.75, 1.0))
    pred = got.latency_model.predict_latency(c, "onnx", "fp32", 1)
    truth = _true_ms(other_machine.prior, c, "onnx", "fp32", 1)
    assert abs(pred.value - truth) / truth < 0.01
    # stated error: the load noise (0.3), which is larger than the held-out error (0) and the floor
    assert pred.expected_error == pytest.approx(0.3) and "quick calibration" in pred.source
    assert ("onnx", "fp32", 1) not in got.calibration_wanted and ("onnx", "int8", 1) in got.calibration_wanted
    # the next load finds the cache; nothing is measured again
    n_calls = len(other_machine.calls)
    again, none = quick.calibrate_host(load_profile("host"), formats=("onnx",), quantize="fp32", progress=False)
    assert none is None and len(other_machine.calls) == n_calls
    assert again.latency_model.entry("onnx", "fp32", 1)[0].expected_error == pytest.approx(0.3)
    # --no-calibrate: neither measured nor read
    assert load_profile("host", host_calibration=False).latency_model.entry("onnx", "fp32", 1)[0].expected_error >= 0.5


def test_the_time_budget_leaves_pairs_uncalibrated_and_says_so(tiny_model_dir, other_machine, monkeypatch):
    profile = load_profile("host")
    req = quick.QuickRequest(
        profile=profile,
        pairs=(("onnx", "fp32"), ("onnx", "int8")),
        model=str(tiny_model_dir),
        seq_len=32,
        budget_s=0.0,
    )
    done = quick.quick_calibrate(req, progress=False)
    assert done["calibrated"] == ["onnx/fp32"] and done["not_calibrated"] == ["onnx/int8"]
    assert done["held_out_median_error"] is None  # nothing held out: the entry states the shipped fit's error
    assert load_profile("host").calibration_wanted == tuple(
        k for k in profile.calibration_wanted if k != ("onnx", "fp32", 1)
    )


def test_export_device_host_calibrates_once_and_no_calibrate_keeps_the_guess(
    tiny_model_dir, other_machine, tmp_path, capsys
):
    base = [
        "export",
        "--model",
        str(tiny_model_dir),
        "--device",
        "host",
        "--budget",
        "10s",
        "--formats",
        "onnx",
        "--quantize",
        "fp32",
        "--seq-len",
        "32",
        "--no-measure",
    ]
    assert main([*base, "--no-calibrate", "--out", str(tmp_path / "guess")]) == 0
    err = capsys.readouterr().err
    assert "calibrating" not in err and not other_machine.calls
    guess = json.loads((tmp_path / "guess" / "manifest.json").read_text())
    assert guess["artifacts"][0]["latency"]["predicted"]["expected_error"] >= 0.5

    assert main([*base, "--out", str(tmp_path / "first")]) == 0
    out = capsys.readouterr()
    assert "calibrating this one" in out.err and "host calibrated in" in out.out
    assert len(set(other_machine.calls)) == 3  # probe at two lengths, held out at one (each in several rounds)
    first = json.loads((tmp_path / "first" / "manifest.json").read_text())
    predicted = first["artifacts"][0]["latency"]["predicted"]
    assert predicted["expected_error"] < 0.5 and "quick calibration" in predicted["source"]
    assert any("quick calibration" in note for note in first["device"]["provenance"])


def test_calibrate_quick_refuses_a_phone():
    assert main(["calibrate", "--device", "pixel6", "--quick"]) == 2
