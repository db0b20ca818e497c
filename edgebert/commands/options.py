"""RunnerOptions from the runner flags (bench, calibrate, export --target, build)."""

from __future__ import annotations

from edgebert.runners.interface import RunnerOptions

__all__ = ["runner_options"]


def runner_options(
    adb_path=None,
    benchmark_binary=None,
    onnx_perf_test=None,
    remote_python=None,
    identity=None,
    ssh_config=None,
    taskset=None,
    executorch_runner=None,
) -> RunnerOptions:
    """RunnerOptions from the runner flags; a device profile fills in the rest where it is used."""
    return RunnerOptions(
        adb_path=adb_path,
        benchmark_binary=benchmark_binary,
        onnx_perf_test=onnx_perf_test,
        remote_python=remote_python,
        ssh_identity=identity,
        ssh_config=ssh_config,
        taskset_mask=taskset,
        executorch_runner=executorch_runner,
    )
