"""measure: time an artifact on a target and record it in its manifest entry, labelled `measured`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["local_measurer", "measured_entry", "record", "bench_folder", "runner_options"]


def measured_entry(result: dict) -> dict:
    """Manifest form of one measurement: always kind=measured, with where and how many runs."""
    return {"kind": "measured", **result}


def record(entry: dict, result: dict) -> None:
    """Add one runner result to an artifact's manifest entry (latency, and memory when measured)."""
    entry["latency"]["measured"].append(measured_entry(result))
    if result.get("peak_rss_mb") is not None:
        entry["memory"]["measured"].append({"kind": "measured", "peak_rss_mb": result["peak_rss_mb"],
                                            "where": result["where"], "runs": result["runs"],
                                            "what": "peak RSS of the whole measuring process"})


def local_measurer(threads: int, seq_len: int, runs: int = 50, warmup: int = 5):
    """A callback for export(): time each artifact on this machine in a fresh subprocess."""
    from .runners import measure_local

    def measure(entry: dict, path: Path) -> None:
        record(entry, measure_local(Path(path), threads=threads, seq_len=seq_len, runs=runs, warmup=warmup))

    return measure


def runner_options(args, device: dict | None):
    """RunnerOptions from CLI flags, with the device profile's big-core mask and model names as defaults."""
    from .runners import RunnerOptions

    device = device or {}
    return RunnerOptions(adb_path=args.adb_path, benchmark_binary=args.benchmark_binary,
                         onnx_perf_test=args.onnx_perf_test, remote_python=args.remote_python,
                         ssh_identity=args.identity, ssh_config=args.ssh_config,
                         taskset_mask=args.taskset or device.get("big_core_mask"),
                         expected_models=tuple(device.get("device_models") or ()))


def _unsupported(target_kind: str, fmt: str, args) -> str | None:
    """Why this target cannot measure this format (None: it can)."""
    if target_kind == "adb" and fmt == "torchscript":
        return "adb measures .tflite (benchmark_model) and .onnx (onnxruntime_perf_test); TorchScript has no on-device CLI benchmark"
    if target_kind == "adb" and fmt == "onnx" and not args.onnx_perf_test:
        return "measuring .onnx over adb needs --onnx-perf-test PATH (onnxruntime_perf_test built for the phone)"
    return None


def bench_folder(args, progress: bool = True) -> dict:
    """Measure an export folder's artifacts on args.target; record them in its manifest only if all succeed."""
    from .errors import UsageError
    from .manifest import read_manifest, write_manifest
    from .runners import BenchConfig, parse_target, run_bench

    folder = Path(args.folder)
    manifest = read_manifest(folder)
    target = parse_target(args.target)
    arts = [a for a in manifest["artifacts"] if args.formats is None or a["format"] in args.formats]
    if not arts:
        raise UsageError(f"{folder} has no artifacts of format {','.join(args.formats or [])}")
    options = runner_options(args, manifest.get("device"))
    threads = args.threads or (manifest.get("budget") or {}).get("threads") or 1
    plan, skipped = [], []
    for a in arts:
        why = _unsupported(target.kind, a["format"], args)
        (skipped if why else plan).append((a, why))
    if not plan:
        raise UsageError("nothing to measure on " + target.uri + ": " + "; ".join(w for _, w in skipped))
    from tqdm import tqdm

    results = []
    for a, _ in tqdm(plan, desc=f"bench on {target.uri}", unit="artifact", disable=not progress, leave=False):
        config = BenchConfig(threads=threads, runs=args.runs, warmup=args.warmup, seq_len=a["seq_len"],
                             timeout_s=args.timeout)
        r = run_bench(target, folder / a["file"], config, options).to_dict()
        results.append((a, r))
    # Only now, with every measurement in hand, touch the manifest (atomically).
    for a, r in results:
        record(a, r)
    write_manifest(folder, manifest)
    return {"folder": str(folder), "target": target.uri,
            "results": [{"file": a["file"], "format": a["format"], "precision": a["precision"], **r} for a, r in results],
            "skipped": [{"file": a["file"], "why": w} for a, w in skipped]}
