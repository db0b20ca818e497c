"""Measuring artifacts on targets: the callbacks export uses, and `edgebert bench FOLDER`.

An early-exit folder's segments are timed too, one run per segment (`measure_segments`), and composed with
the manifest's exit histogram into expected / p90 / worst-case latency.

Every figure is recorded in the manifest as `measured` (where, how many runs). `bench` touches a
folder's manifest only when every measurement succeeded; during an export, whose artifacts have
passed their parity check, a skipped or failed measurement is recorded instead.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgebert.errors import RunnerError, UsageError
from edgebert.export.manifest import mismatches, read_manifest, write_manifest
from edgebert.export.record import measured_entry, record, record_failure, record_skip
from edgebert.runners import BenchConfig, RunnerOptions, Target, UnsupportedArtifact, parse_target, run_bench
from edgebert.runners.interface import DEFAULT_TIMEOUT_S
from edgebert.runners.segments import bench_segments
from edgebert.runners.segments import unsupported as segments_unsupported
from edgebert.select.exit_latency import histogram_from, measured_exit_latency

__all__ = ["BenchRequest", "MeasureSettings", "bench_folder", "local_measurer", "measure_segments", "target_measurer"]


def _seconds(flag: str, value, minimum_exclusive: bool = False) -> None:
    bad = (
        isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (minimum_exclusive and not value)
    )
    if bad:
        raise UsageError(f"{flag} must be a number of seconds {'> 0' if minimum_exclusive else '>= 0'}, got {value!r}")


@dataclass(frozen=True)
class MeasureSettings:
    """How `export` and `build` time each artifact: bench's --runs, --timeout, --cooldown and --sustained.

    (How to reach the target is the RunnerOptions beside it.) Checked when made, so that a bad value
    fails before minutes of converting, not after the parity check."""

    runs: int = 50
    timeout_s: float = DEFAULT_TIMEOUT_S  # per artifact and target
    cooldown_s: float = 0.0  # idle seconds before each measurement on a target after its first
    sustained_s: float = 0.0  # time each artifact for at least this long and report its drift

    def __post_init__(self):
        if isinstance(self.runs, bool) or not isinstance(self.runs, int) or self.runs < 1:
            raise UsageError(f"--runs must be a whole number >= 1, got {self.runs!r}")
        _seconds("--timeout", self.timeout_s, minimum_exclusive=True)
        _seconds("--cooldown", self.cooldown_s)
        _seconds("--sustained", self.sustained_s)
        self.config(threads=1, seq_len=128)  # --sustained must fit in --timeout

    def config(self, threads: int, seq_len: int, signature: str | None = None, warmup: int = 5) -> BenchConfig:
        return BenchConfig(
            threads=threads,
            runs=self.runs,
            warmup=warmup,
            seq_len=seq_len,
            timeout_s=self.timeout_s,
            sustained_s=self.sustained_s,
            signature=signature,
        )

    def to_dict(self) -> dict:
        return asdict(self)


class _Cooldown:
    """--cooldown: idle before each measurement on a target that has already measured something in
    this run (the first follows whatever ran before edgebert). Returns what to record as cooldown_s."""

    def __init__(self, seconds: float):
        self.seconds, self.used = seconds, set()

    def wait(self, where: str) -> float | None:
        if not self.seconds:
            return None
        slept = self.seconds if where in self.used else 0.0
        self.used.add(where)
        time.sleep(slept)
        return slept


def _lengths(entry: dict, seq_len: int) -> list[tuple[dict | None, int, str | None]]:
    """(bucket, length, signature) to time: every sequence-length bucket, else the artifact's one length."""
    buckets = entry.get("buckets") or []
    return [(b, b["seq_len"], b["signature"]) for b in buckets] or [(None, seq_len, None)]


def _own_signature(entry: dict) -> str | None:
    """The signature of a bucketed file's stated (largest) length, the one its own figure is for."""
    return next((b["signature"] for b in entry.get("buckets") or [] if b["seq_len"] == entry["seq_len"]), None)


def _record_length(entry: dict, bucket: dict | None, result: dict) -> None:
    """A bucket's figure goes into its bucket; the artifact's own figure is the stated (largest) length."""
    if bucket is not None:
        bucket["latency"]["measured"].append(measured_entry(result))
    if bucket is None or bucket["seq_len"] == entry["seq_len"]:
        record(entry, result)


def local_measurer(threads: int, seq_len: int, settings: MeasureSettings | None = None, warmup: int = 5):
    """A callback for export(): time each artifact (each of its buckets) on this machine in a fresh subprocess."""
    settings = settings or MeasureSettings()
    local, cooldown = parse_target("local"), _Cooldown(settings.cooldown_s)

    def measure(entry: dict, path: Path) -> None:
        for bucket, n, signature in _lengths(entry, seq_len):
            rested = cooldown.wait(local.uri)
            result = run_bench(local, Path(path), settings.config(threads, n, signature, warmup))
            _record_length(entry, bucket, replace(result, cooldown_s=rested).to_dict())

    return measure


def target_measurer(
    targets: list[Target],
    threads: int,
    seq_len: int,
    options: RunnerOptions,
    settings: MeasureSettings | None = None,
    before=None,
):
    """A callback for export(): `before(entry)` (e.g. predictions), then time the artifact on each target.

    Locally at most this machine's cores; on a device the requested threads. The artifact has passed
    its parity check by now, so nothing here raises a RunnerError: a format the target cannot run is
    recorded as skipped (the same filter as `bench`), a failed measurement as failed, and the caller
    exits 5 after publishing (`measurement_failures`). Every figure records its cooldown and sustained time."""
    local_threads = min(threads, os.cpu_count() or 1)
    settings = settings or MeasureSettings()
    cooldown = _Cooldown(settings.cooldown_s)

    def measure(entry: dict, path: Path) -> None:
        if before is not None:
            before(entry)
        for t in targets:
            why = _unsupported(t, entry["format"], options)
            if why:
                record_skip(entry, t.uri, why)
                continue
            n = local_threads if t.kind == "local" else threads
            # Every bucket on every target: benchmark_model (adb) runs one signature per run
            # (--signature_to_run_for) and refuses a multi-signature file without one.
            for bucket, length, signature in _lengths(entry, seq_len):
                rested = cooldown.wait(t.uri)
                try:
                    result = run_bench(t, path, settings.config(n, length, signature), options)
                except UnsupportedArtifact as exc:  # the runner knows a limit the filter does not
                    record_skip(entry, t.uri, str(exc))
                    break
                except RunnerError as exc:
                    record_failure(entry, t.uri, exc)
                    break
                _record_length(entry, bucket, replace(result, cooldown_s=rested).to_dict())

    return measure


def measure_segments(
    section: dict, folder: Path, target: Target, fmt: str, config: BenchConfig, options, cooldown_s: float = 0.0
) -> dict:
    """One format's early-exit segments timed on `target` (one run per segment file or signature, `cooldown_s`
    before each), composed with the section's dev histogram: an entry of early_exit.latency[fmt].measured.
    Raises the runner's RunnerError."""
    dev = section.get("dev") or {}
    hist = dev.get("histogram") or [0] * (section["layers"] - 1) + [1]  # no dev texts: every input runs all
    results = bench_segments(target, folder, section, fmt, config, options, cooldown_s)
    where = results[0].where  # the runner's own name for where it ran (adb://SERIAL for adb://)
    composed = measured_exit_latency([r.p50_ms for r in results], hist, histogram_from(dev), where)
    return {**composed.to_dict(), "where": where, "segments": [measured_entry(r.to_dict()) for r in results]}


@dataclass(frozen=True)
class BenchRequest:
    """`edgebert bench FOLDER`: what to measure where."""

    folder: Path
    target: Target
    options: RunnerOptions = RunnerOptions()
    formats: tuple[str, ...] | None = None  # None: every artifact in the folder
    threads: int | None = None  # None: the export's, else 1
    runs: int = 50
    warmup: int = 5
    timeout_s: float = 300.0
    cooldown_s: float = 0.0  # idle seconds between artifacts, so one's heat does not slow the next
    sustained_s: float = 0.0  # time each artifact for at least this long and report its drift

    def __post_init__(self):
        _seconds("--cooldown", self.cooldown_s)

    def config(self, threads: int, seq_len: int, signature: str | None = None) -> BenchConfig:
        """How one artifact (or one format's segments) is timed under this request."""
        return BenchConfig(
            threads=threads,
            runs=self.runs,
            warmup=self.warmup,
            seq_len=seq_len,
            timeout_s=self.timeout_s,
            sustained_s=self.sustained_s,
            signature=signature,
        )


def _unsupported(target: Target, fmt: str, options: RunnerOptions) -> str | None:
    """Why this target cannot measure this format (None: it can)."""
    if target.kind == "adb" and fmt == "torchscript":
        return (
            "adb measures .tflite (benchmark_model), .onnx (onnxruntime_perf_test) and .pte (executor_runner); "
            "TorchScript has no on-device CLI benchmark"
        )
    if target.kind == "adb" and fmt == "onnx" and not options.onnx_perf_test:
        return "measuring .onnx over adb needs --onnx-perf-test PATH (onnxruntime_perf_test built for the phone)"
    if target.kind == "adb" and fmt == "executorch" and not options.executorch_runner:
        return (
            "measuring .pte over adb needs --executorch-runner PATH (ExecuTorch's executor_runner built for the phone)"
        )
    return None


def _check_files(folder: Path, arts: list[dict]) -> None:
    """A file swapped after export (another precision, another model) would be timed and its figures
    recorded under this entry's precision and sha256: refuse before measuring anything."""
    bad = mismatches(folder, {"artifacts": arts})
    if bad:
        raise UsageError(
            f"{folder}: {'; '.join(bad)}: the artifact is not the one this manifest describes, so nothing was "
            "measured or recorded; restore the exported file or export again"
        )


def bench_folder(req: BenchRequest, progress: bool = True) -> dict:
    """Measure an export folder's artifacts on req.target; record them in its manifest only if all succeed."""
    folder = Path(req.folder)
    manifest = read_manifest(folder)
    arts = [a for a in manifest["artifacts"] if req.formats is None or a["format"] in req.formats]
    if not arts:
        raise UsageError(f"{folder} has no artifacts of format {','.join(req.formats or [])}")
    _check_files(folder, arts)
    device = manifest.get("device") or {}
    options = req.options.with_device_defaults(device.get("big_core_mask"), tuple(device.get("device_models") or ()))
    threads = req.threads or (manifest.get("budget") or {}).get("threads") or 1
    plan, skipped = [], []
    for a in arts:
        why = _unsupported(req.target, a["format"], options)
        (skipped if why else plan).append((a, why))
    if not plan:
        raise UsageError("nothing to measure on " + req.target.uri + ": " + "; ".join(w for _, w in skipped))
    from tqdm import tqdm

    results = []
    for k, (a, _) in enumerate(
        tqdm(plan, desc=f"bench on {req.target.uri}", unit="artifact", disable=not progress, leave=False)
    ):
        config = req.config(threads, a["seq_len"], _own_signature(a))
        cooldown = req.cooldown_s if k else 0.0  # the first artifact follows whatever ran before edgebert
        time.sleep(cooldown)
        result = run_bench(req.target, folder / a["file"], config, options)
        results.append((a, replace(result, cooldown_s=cooldown if req.cooldown_s else None).to_dict()))
    segments = _bench_segments(req, folder, manifest, threads, options, skipped)
    # Only now, with every measurement in hand, touch the manifest (atomically).
    for a, r in results:
        record(a, r)
    for fmt, entry in segments:
        empty = {"predicted": None, "measured": [], "skipped": [], "failed": []}
        manifest["early_exit"].setdefault("latency", {}).setdefault(fmt, empty)["measured"].append(entry)
    write_manifest(folder, manifest)
    return {
        "folder": str(folder),
        "target": req.target.uri,
        "results": [{"file": a["file"], "format": a["format"], "precision": a["precision"], **r} for a, r in results],
        "skipped": [{"file": a["file"], "why": w} for a, w in skipped],
        "segments": [{"format": fmt, **{k: e[k] for k in _SEGMENT_KEYS}} for fmt, e in segments],
    }


_SEGMENT_KEYS = ("expected_ms", "p90_ms", "worst_ms", "segments_ms", "histogram_from")


def _bench_segments(req: BenchRequest, folder: Path, manifest: dict, threads: int, options, skipped: list):
    """An early-exit folder's segments (of req.formats), each format timed on req.target after the artifacts;
    what the target cannot run is added to `skipped`. Checked against the manifest's sha256 first."""
    section = manifest.get("early_exit")
    if not section:
        return []
    fmts = [f for f in section["files"] if req.formats is None or f in req.formats]
    _check_files(folder, [f for fmt in fmts for f in section["files"][fmt]])
    config = req.config(threads, section["seq_len"])
    out = []
    for fmt in fmts:
        why = segments_unsupported(req.target, fmt, options)
        if why:
            skipped.append(({"file": f"{fmt} early-exit segments"}, why))
            continue
        out.append((fmt, measure_segments(section, folder, req.target, fmt, config, options, req.cooldown_s)))
    return out
