"""Pieces the runners share: checking an artifact, the bench script's command line, and turning
tool output into a BenchResult (or into the named error that explains a failure)."""

from __future__ import annotations

from pathlib import Path

from edgebert.errors import UsageError
from edgebert.runners.bench_script import input_role
from edgebert.runners.interface import (
    ARTIFACT_SUFFIXES,
    BenchConfig,
    BenchmarkCrashed,
    BenchResult,
    BenchTimeout,
    RuntimeMissing,
    tail,
)
from edgebert.runners.parse import OutputFormatError, parse_benchmark_model, parse_perf_test, parse_script_output

__all__ = [
    "BENCH_SCRIPT",
    "check_artifact",
    "companion_files",
    "script_args",
    "result_from_script",
    "result_from_benchmark_model",
    "result_from_perf_test",
    "benchmark_model_input_flags",
    "benchmark_model_run_flags",
    "model_warning",
]

BENCH_SCRIPT = Path(__file__).with_name("bench_script.py")
# Exit codes of bench_script.py (kept in step with its constants); any other failure is a crash.
_EXIT_MISSING_RUNTIME, _EXIT_TIMEOUT = 42, 44


def check_artifact(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"artifact {path} does not exist (give a .tflite, .onnx, .pt or .pte file from an export folder)"
        )
    if path.suffix.lower() not in ARTIFACT_SUFFIXES:
        raise UsageError(f"cannot measure {path.name}: expected one of {', '.join(ARTIFACT_SUFFIXES)}")
    return path.resolve()


def companion_files(path: Path) -> list[Path]:
    """Files an artifact needs beside it: an ONNX model's external weights, under the names it records."""
    if path.suffix.lower() != ".onnx":
        return []
    import onnx  # a core dependency; only read the graph, not the weights

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                names.add(entry.value)
    found = []
    for name in sorted(names):
        p = path.parent / name
        if Path(name).name != name:  # runners copy companions flat, beside the model
            raise UsageError(
                f"{path.name} keeps its weights in {name!r}, not beside it; re-export it with the "
                f"weights file in the same folder"
            )
        if not p.is_file():
            raise UsageError(f"{path.name} keeps its weights in {name!r}, which is missing beside it")
        found.append(p)
    return found


def script_args(artifact_name: str, config: BenchConfig, time_left_s: float) -> list[str]:
    return [
        artifact_name,
        "--threads",
        str(config.threads),
        "--warmup",
        str(config.warmup),
        "--runs",
        str(config.runs),
        "--seq-len",
        str(config.seq_len),
        "--vocab-size",
        str(config.vocab_size),
        *(["--sustained", f"{config.sustained_s:g}"] if config.sustained_s else []),
        *(["--signature", config.signature] if config.signature else []),
        # the script stops itself before we would kill it, so it can still say why
        "--timeout",
        f"{max(0.5, time_left_s * 0.9 - 1.0):.1f}",
    ]


def result_from_script(proc, *, where: str, artifact: str, wall_s: float, runs_on: str) -> BenchResult:
    """BenchResult from a finished bench-script process, or the named error its output explains."""
    raw = (proc.stdout or "") + (proc.stderr or "")
    try:
        payload = parse_script_output(proc.stdout)
    except OutputFormatError:
        raise BenchmarkCrashed(
            f"the bench script died on {runs_on} (exit {proc.returncode}) without a result. Last lines:\n{tail(raw)}"
        ) from None
    if not payload.get("ok"):
        kind, msg = payload.get("error"), payload.get("message", "")
        if proc.returncode == _EXIT_MISSING_RUNTIME or kind == "missing_runtime":
            raise RuntimeMissing(f"{runs_on}: {msg}")
        if proc.returncode == _EXIT_TIMEOUT or kind == "timeout":
            raise BenchTimeout(f"the benchmark on {runs_on} {msg}; raise --timeout if the target is just slow")
        raise BenchmarkCrashed(f"the benchmark failed on {runs_on}: {msg}\nLast lines:\n{tail(raw)}")
    keys = (
        "p50_ms",
        "p90_ms",
        "p95_ms",
        "mean_ms",
        "std_ms",
        "min_ms",
        "max_ms",
        "runs",
        "warmup",
        "threads",
        "seq_len",
        "init_ms",
        "first_inference_ms",
        "peak_rss_mb",
        "timed_s",
        "device",
        "device_info",
        "runtime",
        "runtime_version",
        "iqr_ms",
        "drift_pct",
        "sustained_s",
        "thermal_before",
        "thermal_after",
    )
    ci = payload.get("p50_ci95_ms")
    return BenchResult(
        p50_ci95_ms=tuple(ci) if ci else None,
        where=where,
        tool="edgebert bench script",
        artifact=artifact,
        wall_s=wall_s,
        raw_tail=tail(raw, 5),
        notes=("peak_rss_mb is the whole measuring process (Python + runtime + model)",),
        **{k: payload.get(k) for k in keys},
    )


def result_from_benchmark_model(
    proc,
    *,
    where: str,
    artifact: str,
    device: str,
    device_info: dict,
    runtime_version: str,
    wall_s: float,
    runs_on: str,
    warnings: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
    seq_len: int | None = None,
) -> BenchResult:
    raw = (proc.stdout or "") + (proc.stderr or "")
    try:
        b = parse_benchmark_model(raw)
    except OutputFormatError:
        b = None
    if proc.returncode != 0 or b is None:
        # Older adb versions always exit 0, hence the second test: no timings line means no result.
        raise BenchmarkCrashed(
            f"benchmark_model failed on {runs_on} (exit {proc.returncode}). Last lines:\n{tail(raw)}"
        )
    timed, warm = b["timed"] or {}, b["warmup"] or {}
    notes = list(notes)
    if "median" in timed:
        p50 = timed["median"] / 1e3
    else:
        p50 = b["avg_us"] / 1e3
        notes.append("p50_ms is benchmark_model's mean: this build prints no median")
    notes.append("benchmark_model runs for at least --min_secs (default 1 s), so runs may exceed what was asked")
    notes.append(
        "benchmark_model prints no per-run times: no p90, IQR, confidence interval of the median or drift "
        "(spread: min_ms/max_ms, p95_ms)"
    )
    threads = b["params"].get("Num threads") or b["params"].get("#threads used for CPU inference")
    ms = lambda key, d=timed: d[key] / 1e3 if key in d else None  # noqa: E731
    return BenchResult(
        p50_ms=p50,
        mean_ms=b["avg_us"] / 1e3,
        p95_ms=ms("p95"),
        std_ms=ms("std"),
        min_ms=ms("min"),
        max_ms=ms("max"),
        runs=int(timed.get("count", 0)),
        warmup=int(warm.get("count", 0)),
        seq_len=seq_len,
        threads=int(threads) if threads not in (None, "", "-1") else -1,
        init_ms=b["init_us"] / 1e3,
        first_inference_ms=None if b["first_us"] is None else b["first_us"] / 1e3,
        peak_rss_mb=b["peak_mb"],
        memory_delta_mb=b["mem_overall_mb"],
        timed_s=(timed.get("count", 0) * timed.get("avg", 0) + warm.get("count", 0) * warm.get("avg", 0)) / 1e6,
        where=where,
        device=device,
        device_info=device_info,
        runtime="tflite (benchmark_model)",
        runtime_version=runtime_version,
        tool="benchmark_model",
        artifact=artifact,
        wall_s=wall_s,
        warnings=tuple(warnings),
        notes=tuple(notes),
        raw_tail=tail(raw, 6),
    )


def result_from_perf_test(
    proc,
    *,
    where: str,
    artifact: str,
    threads: int,
    seq_len: int | None,
    device: str,
    device_info: dict,
    runtime_version: str,
    wall_s: float,
    runs_on: str,
    warnings: tuple[str, ...] = (),
) -> BenchResult:
    raw = (proc.stdout or "") + (proc.stderr or "")
    try:
        r = parse_perf_test(raw)
    except OutputFormatError:
        r = None
    if proc.returncode != 0 or r is None:
        raise BenchmarkCrashed(
            f"onnxruntime_perf_test failed on {runs_on} (exit {proc.returncode}). Last lines:\n{tail(raw)}"
        )
    s = lambda key: r[key] * 1e3 if r[key] is not None else None  # noqa: E731
    notes = ["onnxruntime_perf_test does one untimed first inference as its only warm-up"]
    p50 = s("p50_s")
    if p50 is None:
        p50 = r["avg_ms"]
        notes.append("p50_ms is the mean: this onnxruntime_perf_test build prints no percentiles")
    return BenchResult(
        p50_ms=p50,
        p90_ms=s("p90_s"),
        p95_ms=s("p95_s"),
        mean_ms=r["avg_ms"],
        min_ms=s("min_s"),
        max_ms=s("max_s"),
        runs=int(r["requests"]),
        warmup=1,
        threads=threads,
        seq_len=seq_len,
        init_ms=s("session_s"),
        first_inference_ms=r["first_ms"],
        peak_rss_mb=r["peak_bytes"] / 2**20 if r["peak_bytes"] else None,
        timed_s=r["total_s"],
        where=where,
        device=device,
        device_info=device_info,
        runtime="onnxruntime (onnxruntime_perf_test)",
        runtime_version=runtime_version,
        tool="onnxruntime_perf_test",
        artifact=artifact,
        wall_s=wall_s,
        warnings=tuple(warnings),
        notes=tuple(notes),
        raw_tail=tail(raw, 6),
    )


def benchmark_model_run_flags(config: BenchConfig, use_xnnpack: bool) -> list[str]:
    """Threads, warm-up and timed runs; --sustained maps onto the tool's own --min_secs (it times
    while runs < num_runs or elapsed < min_secs, and stops a phase after max_secs, default 150)."""
    flags = [
        f"--num_threads={config.threads}",
        f"--warmup_runs={config.warmup}",
        f"--num_runs={config.runs}",
    ]
    if config.sustained_s:
        flags += [f"--min_secs={config.sustained_s:g}", f"--max_secs={max(150.0, 2 * config.sustained_s):g}"]
    return flags + [f"--use_xnnpack={'true' if use_xnnpack else 'false'}"]


def benchmark_model_input_flags(
    path: Path, vocab_size: int, signature: str | None = None
) -> tuple[list[str], int | None, str | None]:
    """--input_layer* flags that keep benchmark_model's random inputs valid for BERT.

    By default the tool fills int32 inputs uniformly from [0, 99] (tflite/tools/utils.cc,
    GetDataRangesForType), which overflows the 2-row token-type embedding: the run fails with
    "Embedding Lookup: index out of bounds". So we name every input, its shape, and a range:
    token ids in [1, vocab-1], mask 1, token types 0. Reading the names needs ai-edge-litert
    here; without it we return no flags and a note saying why the run may fail.
    `signature` (a multi-signature file: an early-exit segment): that signature's inputs, in its subgraph's
    order, roles read from the signature's own input names; a float input (a hidden state) gets no range.
    Returns (flags, sequence length, note).
    """

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return (
            [],
            None,
            (
                "ai-edge-litert is not installed here, so benchmark_model got no "
                "--input_layer_value_range and fills token types with 0-99 (pip install 'edgebert[tflite]')"
            ),
        )
    import numpy as np

    try:
        it = Interpreter(model_path=str(path))
        if signature:
            found = it.get_signature_runner(signature).get_input_details().items()
            details = [{**d, "role_name": key} for key, d in sorted(found, key=lambda kv: kv[1]["index"])]
        else:
            details = sorted(it.get_input_details(), key=lambda d: d["index"])
    except (ValueError, RuntimeError) as exc:  # the tool on the target will say what is wrong, in its words
        return [], None, f"ai-edge-litert could not read {path.name} here ({exc})"
    names = [d["name"] for d in details]
    if any("," in n or ":" in n for n in names):  # the flag syntax cannot carry such names
        return [], None, f"input names {names} cannot be passed to --input_layer"
    ranges = {"ids": (1, min(99, vocab_size - 1)), "mask": (1, 1), "types": (0, 0)}
    shapes = [",".join(str(int(x)) for x in d["shape"]) for d in details]
    value_ranges = [
        f"{d['name']},{low},{high}"
        for k, d in enumerate(details)
        if np.issubdtype(d["dtype"], np.integer)
        for low, high in [ranges[input_role(d.get("role_name", d["name"]), k)]]
    ]
    seq_len = next((int(d["shape"][1]) for d in details if len(d["shape"]) > 1), None)
    return (
        [
            f"--input_layer={','.join(names)}",
            f"--input_layer_shape={':'.join(shapes)}",
            f"--input_layer_value_range={':'.join(value_ranges)}",
        ],
        seq_len,
        None,
    )


def model_warning(device: str, expected: tuple[str, ...]) -> str | None:
    """A warning when the device is not one the profile was made for (figures then describe this one)."""
    if not expected:
        return None
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731
    if norm(device) in {norm(e) for e in expected}:
        return None
    return (
        f"the device reports model {device!r}, but the profile was made for {', '.join(map(repr, expected))}: "
        f"these figures describe {device!r}"
    )
