"""measure: time artifacts on a target (`local`, `ssh://[user@]host[:port]`, `adb://[serial]`).

    result = run_bench("ssh://pi@raspberrypi.local", "out/pi4/model.tflite", BenchConfig(threads=4))
    result.to_dict()  # every figure labelled measured, with where, how and when

Each target kind is a runner module registered in `edgebert.registry.RUNNERS`; this package
only imports the standard library until a runner is used.
"""

from __future__ import annotations

from pathlib import Path

from edgebert.registry import RUNNERS
from edgebert.runners.interface import (
    AmbiguousDevice,
    AuthError,
    BenchConfig,
    BenchmarkCrashed,
    BenchResult,
    BenchTimeout,
    BinaryMissing,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    RunnerOptions,
    RuntimeMissing,
    Target,
    TargetUnreachable,
    UnsupportedArtifact,
    parse_target,
)

__all__ = [
    "run_bench",
    "measure_many",
    "measure_local",
    "parse_target",
    "Target",
    "BenchConfig",
    "RunnerOptions",
    "BenchResult",
    "TargetUnreachable",
    "AuthError",
    "DeviceNotFound",
    "AmbiguousDevice",
    "DeviceOffline",
    "DeviceUnauthorized",
    "BinaryMissing",
    "RuntimeMissing",
    "UnsupportedArtifact",
    "BenchmarkCrashed",
    "BenchTimeout",
]


def _runner(target: Target | str, options: RunnerOptions | None):

    target = parse_target(target)
    return RUNNERS.get(target.kind)(target, options or RunnerOptions())


def run_bench(
    target: Target | str, artifact: str | Path, config: BenchConfig | None = None, options: RunnerOptions | None = None
) -> BenchResult:
    """Measure one artifact on `target`. Raises a RunnerError subclass (exit code 5) on failure,
    after removing whatever it put on the target."""
    return _runner(target, options).bench(artifact, config or BenchConfig())


def measure_many(
    target: Target | str,
    artifacts: list[str | Path],
    threads: int = 1,
    runs: int = 50,
    *,
    warmup: int = 5,
    seq_len: int = 128,
    timeout_s: float | None = None,
    options: RunnerOptions | None = None,
) -> list[BenchResult]:
    """Measure several artifacts one after another on the same target (for `edgebert calibrate`)."""
    kw = {} if timeout_s is None else {"timeout_s": timeout_s}
    config = BenchConfig(threads=threads, runs=runs, warmup=warmup, seq_len=seq_len, **kw)
    runner = _runner(target, options)
    return [runner.bench(a, config) for a in artifacts]


def measure_local(
    path: str | Path,
    *,
    threads: int = 1,
    seq_len: int = 128,
    runs: int = 50,
    warmup: int = 5,
    signature: str | None = None,
) -> dict:
    """The local measurement as a manifest-ready dict (what `edgebert export` records); `signature`: one
    bucket of a multi-signature .tflite."""
    config = BenchConfig(threads=threads, runs=runs, warmup=warmup, seq_len=seq_len, signature=signature)
    return run_bench("local", path, config).to_dict()
