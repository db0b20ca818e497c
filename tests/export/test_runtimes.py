"""`export --runtime`: only formats that runtime loads; unknown names and impossible requests exit 2."""

from __future__ import annotations

import pytest

from edgebert.cli import main
from edgebert.errors import UsageError
from edgebert.export.runtimes import APP_RUNTIMES, formats_for
from edgebert.registry import CONVERTERS


def test_every_runtime_loads_a_known_format():
    assert {f for r in APP_RUNTIMES.values() for f in r.formats} == set(CONVERTERS.names())


def test_mediapipe_means_tflite():
    assert formats_for("mediapipe", None) == ("tflite",)
    assert formats_for("mediapipe", ("tflite",), "int8") == ("tflite",)
    with pytest.raises(UsageError, match="mediapipe cannot load onnx"):
        formats_for("mediapipe", ("onnx", "tflite"))
    with pytest.raises(UsageError, match="unknown runtime 'coreml'"):
        formats_for("coreml", None)


def test_cli_unknown_runtime_exits_2(capsys):
    assert main(["export", "--width", "0.5", "--runtime", "coreml", "--out", "never"]) == 2
    err = capsys.readouterr().err
    assert "coreml" in err and "mediapipe" in err


def test_cli_runtime_that_cannot_load_the_format_exits_2(capsys, tmp_path):
    assert main(["export", "--runtime", "mediapipe", "--formats", "onnx", "--out", str(tmp_path / "x")]) == 2
    assert "mediapipe cannot load onnx" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
