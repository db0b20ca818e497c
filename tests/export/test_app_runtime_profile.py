"""Older runtimes as --runtime names, and a device profile's `runtime:` that keeps the selector to what it loads."""

from __future__ import annotations

import dataclasses

import pytest

from edgebert import deploy
from edgebert.cli import main
from edgebert.errors import ProfileError, UsageError
from edgebert.export.runtimes import APP_RUNTIMES, formats_for, profile_runtime
from edgebert.select.budget import Budget
from edgebert.select.choose import allowed
from edgebert.select.profiles import load_profile


def test_older_releases_say_what_they_cannot_load():
    assert formats_for("ai-edge-litert==1.4.0", None, "int8") == ("tflite",)
    assert formats_for("onnxruntime==1.18.0", None) == ("onnx",)
    with pytest.raises(UsageError, match=r"onnxruntime==1.15.0 loads no artifact .*IR version 10"):
        formats_for("onnxruntime==1.15.0", None)
    with pytest.raises(UsageError, match=r"no int8 recipe .*computes something else.*use fp32, fp16"):
        formats_for("tflite-runtime==2.14.0", None, "int8")


def test_mediapipe_takes_one_sequence_length(capsys, tmp_path):
    assert formats_for("ai-edge-litert==1.4.0", None, None, (32, 128)) == ("tflite",)  # runs every signature
    with pytest.raises(UsageError, match="single subgraph"):
        formats_for("mediapipe", None, None, (32, 128))
    args = ["export", "--width", "0.5", "--runtime", "mediapipe", "--seq-len", "32,128", "--out", str(tmp_path / "x")]
    assert main(args) == 2
    assert "cannot load sequence-length buckets" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_cli_runtime_that_loads_nothing_exits_2(capsys, tmp_path):
    assert main(["export", "--runtime", "onnxruntime==1.15.0", "--out", str(tmp_path / "x")]) == 2
    assert "IR version 10" in capsys.readouterr().err and not (tmp_path / "x").exists()


def _pixel6(runtime: str):
    return dataclasses.replace(load_profile("pixel6"), runtime=runtime)


def test_profile_runtime_is_a_name_or_words():
    assert profile_runtime(_pixel6("mediapipe")) == "mediapipe"
    assert profile_runtime(_pixel6("LiteRT with the XNNPACK delegate, CPU")) is None
    assert profile_runtime(load_profile("pixel6")) is None  # the shipped profiles describe theirs in words
    with pytest.raises(ProfileError, match=r"runtime 'mediapip' is not a runtime edgebert checks.*mediapipe"):
        profile_runtime(_pixel6("mediapip"))


def test_selector_keeps_to_the_precisions_the_runtime_loads():
    formats, precisions = allowed(_pixel6("x"), ("tflite",), None, APP_RUNTIMES["tflite-runtime==2.14.0"].precisions)
    assert formats == ("tflite",) and set(precisions["tflite"]) == {"fp32", "fp16"}


class _Chose(Exception):
    pass


@pytest.mark.parametrize(
    ("runtime", "flag", "formats", "loadable"),
    [
        ("tflite-runtime==2.14.0", None, ("tflite",), ("fp32", "fp16")),
        ("LiteRT in words", "onnxruntime==1.18.0", ("onnx",), ("fp32", "fp16", "int8")),  # --runtime wins
        ("mediapipe", None, ("tflite",), ("fp32", "fp16", "int8")),
    ],
)
def test_device_export_filters_candidates_by_the_profile_runtime(
    monkeypatch, tmp_path, runtime, flag, formats, loadable
):
    seen = {}

    def choose(config, profile, budget, quality, formats, *args, loadable=None, **kw):
        seen.update(formats=formats, loadable=loadable)
        raise _Chose

    monkeypatch.setattr(deploy, "quality_for", lambda loaded, progress: ({}, "test"))
    monkeypatch.setattr(deploy, "QuantizedQuality", lambda *a: None)
    monkeypatch.setattr(deploy, "choose", choose)
    monkeypatch.setattr(deploy, "load", lambda model: None)
    profile = _pixel6(runtime)
    req = deploy.DeviceExport(profile=profile, budget=Budget.resolve(profile, "40ms", None), app_runtime=flag)
    # A model folder with no compressed variants in it (select/variants.py looks there).
    loaded = type("L", (), {"full": type("F", (), {"config": None}), "model_dir": tmp_path})()
    with pytest.raises(_Chose):
        deploy.device_export(req, progress=False, loaded=loaded)
    assert seen == {"formats": formats, "loadable": loadable}


def test_a_profile_runtime_that_loads_nothing_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(deploy, "load", lambda model: pytest.fail("must stop before loading the model"))
    profile = _pixel6("onnxruntime==1.15.0")
    req = deploy.DeviceExport(profile=profile, budget=Budget.resolve(profile, "40ms", None))
    with pytest.raises(UsageError, match="loads no artifact"):
        deploy.device_export(req, progress=False)
