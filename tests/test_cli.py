"""The command line: exit codes, clear errors without tracebacks, --json output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgebert.cli import main


def run_cli(*args, cwd=None):
    """Run the real console entry point in a subprocess (as a user would)."""
    return subprocess.run(
        [sys.executable, "-m", "edgebert.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def test_help_documents_exit_codes():
    r = run_cli("--help")
    assert r.returncode == 0
    for code in ("0", "2", "3", "4", "5", "130"):
        assert f"\n  {code} " in r.stdout
    r = run_cli("export", "--help")
    assert "exit codes" in r.stdout and "onnx,tflite,torchscript" in r.stdout


def test_export_json(tiny_model_dir, tmp_path):
    out = tmp_path / "o"
    r = run_cli(
        "export",
        "--model",
        tiny_model_dir,
        "--width",
        "0.5",
        "--depth",
        "1.0",
        "--formats",
        "onnx,torchscript",
        "--seq-len",
        "16",
        "--out",
        out,
        "--json",
        "--runs",
        "3",
    )
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert [a["format"] for a in s["artifacts"]] == ["onnx", "torchscript"]
    for a in s["artifacts"]:
        assert a["latency_ms"]["measured_p50"] > 0
        assert a["latency_ms"]["measured_where"]
    assert (out / "manifest.json").exists()


@pytest.mark.parametrize(
    "args, text",
    [
        (["--formats", "onnx,coreml"], "coreml"),
        (["--width", "0"], "width"),
        (["--width", "1.5"], "width"),
        (["--depth", "0.1"], "depth"),
        (["--seq-len", "3"], "--seq-len"),
        (["--quantize", "int4"], "int4"),
    ],
)
def test_usage_errors_exit_2_without_traceback(tiny_model_dir, tmp_path, args, text):
    seq = [] if "--seq-len" in args else ["--seq-len", "16"]
    r = run_cli("export", "--model", tiny_model_dir, "--out", tmp_path / "o", *seq, *args)
    assert r.returncode == 2, r.stderr
    assert text in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_not_a_bert_checkpoint(tmp_path):
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    r = run_cli("export", "--model", tmp_path / "gpt", "--out", tmp_path / "o")
    assert r.returncode == 2 and "'gpt2'" in r.stderr and "Traceback" not in r.stderr


def test_corrupt_weights(tiny_model_dir, tmp_path):
    w = tiny_model_dir / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    r = run_cli("export", "--model", tiny_model_dir, "--out", tmp_path / "o")
    assert r.returncode == 2 and "corrupt or truncated" in r.stderr and "Traceback" not in r.stderr


def test_missing_extra_message(tiny_model_dir, tmp_path, monkeypatch, capsys):
    # None in sys.modules makes `import X` fail exactly as if X were not installed.
    for mod in ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"):
        monkeypatch.setitem(sys.modules, mod, None)
    code = main(
        [
            "export",
            "--model",
            str(tiny_model_dir),
            "--formats",
            "tflite",
            "--out",
            str(tmp_path / "o"),
            "--seq-len",
            "16",
            "--no-measure",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'edgebert[tflite]'" in err
    assert not (tmp_path / "o").exists()


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "export" in capsys.readouterr().out


def test_every_command_documents_its_exit_codes():
    """Through click's own test runner: each command's --help ends with the exit-code table."""
    from click.testing import CliRunner

    from edgebert.cli import cli

    runner = CliRunner()
    for command in cli.commands:
        r = runner.invoke(cli, [command, "--help"])
        assert r.exit_code == 0, (command, r.output)
        assert "exit codes:" in r.output and "130" in r.output and "143" in r.output, command


def test_python_m_edgebert_train_is_the_train_command():
    r = subprocess.run([sys.executable, "-m", "edgebert.train", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--checkpoint-every" in r.stdout and "exit codes" in r.stdout
