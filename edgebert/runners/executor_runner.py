"""ExecuTorch's `executor_runner` on a phone: its command line, and its output turned into a BenchResult.

The runner is ExecuTorch's own C++ benchmark app (examples/portable/executor_runner/executor_runner.cpp;
built with the XNNPACK backend linked it is `xnn_executor_runner`, the same source). Its gflags, as the
source defines them: --model_path (the .pte), --num_executions (default 1), --cpu_threads (-1: a heuristic
count of performant cores). It fills every input with ones at the upper bound of each dynamic dimension,
so an edgebert .pte runs at (1, seq_len): token id 1, attention mask 1, token type 1 (BERT has two types).
It has no warm-up flag.

What it prints (ET_LOG lines such as "I 00:00:00.012345 executorch:executor_runner.cpp:301] ..."):
  "Model loaded in X ms."                                   (recent builds)
  "Iteration i of N: X ms"                                   (recent builds, one per execution)
  "Model executed successfully N time(s) in X ms."          (every build that times; the total)
With per-execution lines the first `warmup` executions are dropped and the rest give p50/p90/CI/drift;
without them only the mean over all N executions (warm-up included) is known, and the result says so.
"""

from __future__ import annotations

import re

import numpy as np

from edgebert.runners.bench_script import stats
from edgebert.runners.interface import BenchConfig, BenchmarkCrashed, BenchResult, tail
from edgebert.runners.parse import OutputFormatError

__all__ = ["parse_executor_runner", "executor_runner_argv", "result_from_executor_runner", "pte_seq_len"]

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOTAL = re.compile(rf"Model executed successfully (?P<n>\d+) time\(s\) in (?P<ms>{_NUM}) ms")
_ITERATION = re.compile(rf"Iteration (?P<i>\d+) of (?P<n>\d+): (?P<ms>{_NUM}) ms")
_LOADED = re.compile(rf"Model loaded in (?P<ms>{_NUM}) ms")
_THREADS = re.compile(r"Resetting threadpool with num threads = (?P<n>-?\d+)")


def parse_executor_runner(text: str) -> dict:
    """{executions, total_ms, per_run_ms (list, may be empty), load_ms, threads} from one runner's output.

    Raises OutputFormatError when the timed total is missing (it crashed, or a build that does not time)."""
    total = _TOTAL.search(text)
    if total is None:
        if "Model executed successfully" in text:
            raise OutputFormatError(
                "this executor_runner build prints no execution time ('Model executed successfully N time(s).' "
                "without 'in X ms'); build it from executorch 0.4 or newer"
            )
        raise OutputFormatError("no 'Model executed successfully N time(s) in X ms' line: the runner did not finish")
    loaded, threads = _LOADED.search(text), _THREADS.search(text)
    return {
        "executions": int(total["n"]),
        "total_ms": float(total["ms"]),
        "per_run_ms": [float(m["ms"]) for m in _ITERATION.finditer(text)],
        "load_ms": float(loaded["ms"]) if loaded else None,
        "threads": int(threads["n"]) if threads else None,
    }


def executor_runner_argv(exe: str, model: str, config: BenchConfig) -> list[str]:
    """Warm-up and timed runs are one run of --num_executions: the runner has no warm-up flag."""
    return [
        exe,
        f"--model_path={model}",
        f"--num_executions={config.warmup + config.runs}",
        f"--cpu_threads={config.threads}",
    ]


def pte_seq_len(path) -> tuple[int | None, str | None]:
    """The sequence length the runner will use (the .pte's planned upper bound), read with ExecuTorch here;
    (None, why) when it is not installed here."""
    try:
        from executorch.runtime import Runtime
    except ImportError:
        return None, "executorch is not installed here, so the .pte's sequence length was not read"
    try:
        program = Runtime.get().load_program(str(path))
        sizes = [int(x) for x in program.metadata("forward").input_tensor_meta(0).sizes()]
    except Exception as exc:  # noqa: BLE001 - the runner on the phone will say what is wrong, in its words
        return None, f"executorch could not read {path} here ({type(exc).__name__})"
    return (sizes[1] if len(sizes) > 1 else None), None


def result_from_executor_runner(
    proc,
    *,
    config: BenchConfig,
    where: str,
    artifact: str,
    device: str,
    device_info: dict,
    runtime_version: str,
    wall_s: float,
    runs_on: str,
    seq_len: int | None,
    warnings: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
) -> BenchResult:
    raw = (proc.stdout or "") + (proc.stderr or "")
    try:
        r = parse_executor_runner(raw)
    except OutputFormatError as exc:
        raise BenchmarkCrashed(
            f"executor_runner failed on {runs_on} (exit {proc.returncode}): {exc}. Last lines:\n{tail(raw)}"
        ) from None
    if proc.returncode != 0:
        raise BenchmarkCrashed(
            f"executor_runner failed on {runs_on} (exit {proc.returncode}). Last lines:\n{tail(raw)}"
        )
    notes = list(notes) + [
        "executor_runner fills every input with ones at the .pte's planned shape (1, seq_len); latency does "
        "not depend on the token values"
    ]
    per_run = r["per_run_ms"]
    if len(per_run) == r["executions"] and len(per_run) > config.warmup:
        timed = per_run[config.warmup :]
        figures = stats(np, timed)  # the bench script's own summary: the same figures as every other runner
        ci = figures["p50_ci95_ms"]
        figures.update(
            p50_ci95_ms=tuple(ci) if ci else None,
            runs=len(timed),
            warmup=config.warmup,
            first_inference_ms=per_run[0],
            timed_s=sum(per_run) / 1e3,
        )
    else:
        mean = r["total_ms"] / max(r["executions"], 1)
        figures = dict(p50_ms=mean, mean_ms=mean, runs=r["executions"], warmup=0, timed_s=r["total_ms"] / 1e3)
        notes.append(
            f"p50_ms is the mean of all {r['executions']} executions, the first (cold) ones included: this "
            "executor_runner build prints no per-execution times, so there is no warm-up, p90, IQR, CI or drift"
        )
    threads = r["threads"] if r["threads"] is not None else config.threads
    return BenchResult(
        **figures,
        threads=threads,
        seq_len=seq_len,
        init_ms=r["load_ms"],
        where=where,
        device=device,
        device_info=device_info,
        runtime="executorch (executor_runner)",
        runtime_version=runtime_version,
        tool="executor_runner",
        artifact=artifact,
        wall_s=wall_s,
        warnings=tuple(warnings),
        notes=tuple(notes),
        raw_tail=tail(raw, 6),
    )
