"""Early-exit segments timed on a target: one benchmark run per segment file (ONNX: segment_K.onnx) or
per signature (TFLite: segments.tflite's segment_K), with the bench script's synthetic inputs (a segment's
hidden-state input is random floats of its manifest shape; its values do not change the time)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgebert.runners import BenchConfig, BenchResult, RunnerOptions, Target, run_bench

__all__ = ["segment_runs", "bench_segments", "unsupported"]


def segment_runs(early_exit: dict, fmt: str) -> list[tuple[str, str | None]]:
    """(file, signature) to time for each segment, in order."""
    files = early_exit["files"][fmt]
    if len(files) == 1 and len(early_exit["segments"]) > 1:  # TFLite: one file, a signature per segment
        return [(files[0]["file"], seg["name"]) for seg in early_exit["segments"]]
    return [(f["file"], None) for f in files]


def unsupported(target: Target, fmt: str, options: RunnerOptions) -> str | None:
    """Why this target cannot time this format's segments (None: it can)."""
    if fmt == "torchscript":
        return "TorchScript segments are not timed: the bench script feeds token inputs only, not a hidden state"
    if target.kind == "adb" and fmt == "tflite":
        return "adb times subgraph 0 of a .tflite only (benchmark_model's signature choice is not wired yet)"
    if target.kind == "adb" and fmt == "onnx" and not options.onnx_perf_test:
        return "timing .onnx segments over adb needs --onnx-perf-test PATH (onnxruntime_perf_test for the phone)"
    return None


def bench_segments(
    target: Target, folder: Path, early_exit: dict, fmt: str, config: BenchConfig, options: RunnerOptions | None = None
) -> list[BenchResult]:
    """Each segment of `fmt` timed on `target`, in order; raises the runner's RunnerError on failure."""
    return [
        run_bench(target, Path(folder) / file, replace(config, signature=signature), options)
        for file, signature in segment_runs(early_exit, fmt)
    ]
