"""`local`: the bench script on this machine, in a fresh Python process.

A fresh process keeps edgebert's own imports (torch, other artifacts) out of the memory
figures and gives the runtime a clean thread pool, as on a board.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from edgebert.registry import RUNNERS
from edgebert.runners.interface import BenchConfig, BenchResult, RunnerOptions, Target, run_process
from edgebert.runners.results import BENCH_SCRIPT, check_artifact, model_warning, result_from_script, script_args

__all__ = ["LocalRunner"]


@RUNNERS.register("local")
class LocalRunner:
    def __init__(self, target: Target, options: RunnerOptions | None = None):
        self.target = target
        self.options = options or RunnerOptions()

    def bench(self, artifact: str | Path, config: BenchConfig) -> BenchResult:
        path = check_artifact(artifact)
        start = time.perf_counter()
        # cwd is the artifact's folder so an ONNX file finds its external weights by relative name.
        proc = run_process(
            [sys.executable, str(BENCH_SCRIPT), *script_args(str(path), config, config.timeout_s)],
            timeout_s=config.timeout_s,
            what=f"the local benchmark of {path.name}",
            cwd=path.parent,
        )
        result = result_from_script(
            proc, where=self.target.uri, artifact=path.name, wall_s=time.perf_counter() - start, runs_on="this machine"
        )
        warning = model_warning(result.device, self.options.expected_models)
        return replace(result, warnings=result.warnings + ((warning,) if warning else ()))
