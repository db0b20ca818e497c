"""Early-exit segments timed on targets: `edgebert bench FOLDER` timing an early-exit folder's segments
(TorchScript ones too: their hidden-state input is described in the file; --cooldown before every segment),
and adb running benchmark_model once per signature with --signature_to_run_for (tests/doubles)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import DOUBLES, make_tiny_model, save_tiny_model_dir

from edgebert.cli import main
from edgebert.model.exits import with_exits
from edgebert.runners import BenchConfig, BenchmarkCrashed, RunnerOptions, run_bench

SEQ = 16


def _exit_model_dir(path):
    model = with_exits(
        make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"), heads=(3, 3), ffn=(70, 70))
    )
    with torch.no_grad():
        for p in model.exits.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return save_tiny_model_dir(path, model.eval())


def _export(model_dir, out, formats, *extra):
    args = ["export", "--model", str(model_dir), "--formats", formats, "--seq-len", str(SEQ)]
    assert main(args + ["--early-exit", "patience=1", "--out", str(out), *extra]) == 0
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    """TorchScript segments, not timed at export (tests/select/test_exit_latency.py times them there)."""
    tmp = tmp_path_factory.mktemp("seg-timing")
    out = tmp / "out"
    return out, _export(_exit_model_dir(tmp / "m"), out, "torchscript", "--no-measure")


def test_bench_folder_times_the_segments_too(timed, capsys):
    out, _ = timed
    assert main(["bench", str(out), "--runs", "3", "--warmup", "1", "--cooldown", "0.01", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [s["format"] for s in r["segments"]] == ["torchscript"] and len(r["segments"][0]["segments_ms"]) == 2
    (got,) = json.loads((out / "manifest.json").read_text())["early_exit"]["latency"]["torchscript"]["measured"]
    assert got["segments_ms"] == r["segments"][0]["segments_ms"] and got["where"] == "local"
    assert [s["artifact"] for s in got["segments"]] == ["segment_1.pt", "segment_2.pt"]
    assert all(s["kind"] == "measured" and s["runs"] >= 3 and s["cooldown_s"] == 0.01 for s in got["segments"])
    assert 0 < got["expected_ms"] <= got["worst_ms"] == pytest.approx(sum(got["segments_ms"]) + 2 * 0.03, abs=1e-3)
    # a segment file changed since export is refused before anything is timed
    (out / "segment_2.pt").write_bytes((out / "segment_2.pt").read_bytes() + b"\0")
    assert main(["bench", str(out), "--runs", "3"]) == 2
    assert "segment_2.pt" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tflite_segments(tmp_path_factory):
    pytest.importorskip("litert_torch")
    tmp = tmp_path_factory.mktemp("seg-adb")
    out = tmp / "out"
    _export(_exit_model_dir(tmp / "m"), out, "tflite", "--no-measure")
    return out


def test_adb_runs_benchmark_model_once_per_signature(tflite_segments, fake_phone, capsys):
    flags = ["--adb", str(DOUBLES / "adb"), "--benchmark-binary", str(DOUBLES / "benchmark_model")]
    code = main(["bench", str(tflite_segments), "--target", "adb://", "--runs", "3", "--warmup", "1", *flags])
    assert code == 0, capsys.readouterr().err
    calls = [json.loads(line) for line in (fake_phone.parent / "adb.log").read_text().splitlines()]
    runs = [c[3] for c in calls if c[2:3] == ["shell"] and "--graph=" in c[3]]
    assert "--signature_to_run_for" not in runs[0]  # the plain model.tflite: its one signature is the default
    assert [r.split("--signature_to_run_for=")[1].split()[0] for r in runs[1:]] == ["segment_1", "segment_2"]
    assert "segment_2_hidden" in runs[2] and "segment_2_hidden," not in runs[2].split("value_range=")[1]
    m = json.loads((tflite_segments / "manifest.json").read_text())["early_exit"]["latency"]["tflite"]
    assert m["measured"][-1]["where"] == "adb://FAKE0123456789" and len(m["measured"][-1]["segments_ms"]) == 2


def test_benchmark_model_refuses_a_multi_signature_file_without_a_signature(tflite_segments, fake_phone):
    """As the real tool: several signatures and no --signature_to_run_for is an error naming the keys."""
    options = RunnerOptions(adb_path=str(DOUBLES / "adb"), benchmark_binary=str(DOUBLES / "benchmark_model"))
    with pytest.raises(BenchmarkCrashed) as e:
        run_bench("adb://", tflite_segments / "segments.tflite", BenchConfig(runs=3, warmup=1), options)
    assert "signature_to_run_for" in str(e.value)
