"""Early-exit segments timed on a target: one benchmark run per segment file (ONNX: segment_K.onnx,
TorchScript: segment_K.pt) or per signature (TFLite: segments.tflite's segment_K), with the bench script's
synthetic inputs (a segment's hidden-state input is random floats of its shape; its values do not change the
time). --cooldown idles before every segment's run: within an export or `bench`, the target has always just
run something (the plain artifacts, the previous segment)."""

from __future__ import annotations

import time
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
    if target.kind == "adb" and fmt == "torchscript":
        return "adb has no on-device benchmark for TorchScript (.pt); time the segments locally or over ssh"
    if target.kind == "adb" and fmt == "onnx" and not options.onnx_perf_test:
        return "timing .onnx segments over adb needs --onnx-perf-test PATH (onnxruntime_perf_test for the phone)"
    return None


def bench_segments(
    target: Target,
    folder: Path,
    early_exit: dict,
    fmt: str,
    config: BenchConfig,
    options: RunnerOptions | None = None,
    cooldown_s: float = 0.0,
) -> list[BenchResult]:
    """Each segment of `fmt` timed on `target`, in order, `cooldown_s` idle before each (recorded in its
    result when asked for); raises the runner's RunnerError on failure."""
    results = []
    for file, signature in segment_runs(early_exit, fmt):
        time.sleep(cooldown_s)
        result = run_bench(target, Path(folder) / file, replace(config, signature=signature), options)
        results.append(replace(result, cooldown_s=cooldown_s) if cooldown_s else result)
    return results
