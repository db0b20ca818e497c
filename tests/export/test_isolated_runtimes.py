"""Older runtimes in their own venvs (.ci/run builds them): how they are found, what a refusal says, and the
reduced ORT Mobile package's kernel check. tests/export/test_compat.py runs them on an export."""

from __future__ import annotations

import re
from pathlib import Path

from edgebert.export.compat import _isolated
from edgebert.export.isolated import ISOLATED, NOT_INSTALLED, explain
from edgebert.export.ort_mobile import missing_kernels, parse_operator_config

CI = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_ci_builds_every_isolated_runtime_under_the_variable_edgebert_reads():
    listed = re.search(r"^isolated=\((.*)\)$", CI.read_text(), re.M).group(1).split()
    assert listed == list(ISOLATED)
    assert ISOLATED["ai-edge-litert==1.4.0"].env_var == "EDGEBERT_AI_EDGE_LITERT_1_4_0_PYTHON"
    assert ISOLATED["onnxruntime==1.15.0"].env_var == "EDGEBERT_ONNXRUNTIME_1_15_0_PYTHON"


def test_a_refusal_says_which_op_version_or_ir_version():
    tfl = "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'. An older version might be supported."
    assert explain(tfl, "tflite-runtime==2.14.0") == {
        "op": "FULLY_CONNECTED",
        "op_version": 12,
        "why": "op FULLY_CONNECTED version 12 is newer than tflite-runtime==2.14.0",
    }
    ort = "Load model failed: ... Unsupported model IR version: 10, max supported IR version: 9"
    assert explain(ort, "onnxruntime==1.15.0")["why"] == (
        "the file is ONNX IR version 10; onnxruntime==1.15.0 reads IR versions up to 9"
    )
    assert explain("Could not find an implementation for Gelu(20) node", "x")["op_version"] == 20
    assert explain("something else", "x") == {} and explain(None, "x") == {}


def test_reduced_package_kernels_by_op_and_highest_opset():
    package = parse_operator_config(
        "# comment\n!globally_allowed_types;float,int8_t\nai.onnx;12,13,14,15;Add,MatMul\ncom.microsoft;1;Gelu\n"
    )
    assert package["types"] == ["float", "int8_t"]
    required = parse_operator_config(
        "ai.onnx;14;Add\nai.onnx;13;MatMul\nai.onnx;20;Gelu\ncom.microsoft;1;Gelu,Attention"
    )
    # Add-14 and MatMul-13 are unchanged up to opset 15: in the package; Gelu-20 is newer than 15.
    assert missing_kernels(required, package) == ["ai.onnx:20:Gelu", "com.microsoft:1:Attention"]


def _artifact(fmt: str) -> dict:
    return {"file": f"model.{fmt}", "format": fmt, "precision": "fp32", "seq_len": 32}


def test_without_its_venv_a_runtime_says_not_installed_and_a_broken_one_says_so(monkeypatch, tmp_path):
    rt = ISOLATED["tflite-runtime==2.14.0"]
    monkeypatch.delenv(rt.env_var, raising=False)
    row = _isolated(tmp_path, _artifact("tflite"), rt.name, None, None)
    assert row["status"] == NOT_INSTALLED and row["loads"] is None and rt.env_var in row["setup"]
    monkeypatch.setenv(rt.env_var, str(tmp_path / "no-python"))
    row = _isolated(tmp_path, _artifact("tflite"), rt.name, None, None)
    assert row["status"].startswith("not checked") and rt.env_var in row["error"]


def test_an_interpreter_that_dies_is_an_environment_failure(monkeypatch, tmp_path):
    rt = ISOLATED["onnxruntime==1.18.0"]
    monkeypatch.setenv(rt.env_var, "/bin/false")  # starts, answers nothing, exits 1
    row = _isolated(tmp_path, _artifact("onnx"), rt.name, None, None)
    assert row["status"] == f"not checked: the {rt.name} environment failed" and "exit 1" in row["error"]
