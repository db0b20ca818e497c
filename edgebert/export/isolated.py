"""Older runtimes that apps still ship, each in its own venv, as `edgebert compat` verification targets.

These releases pin numpy < 2 (edgebert's torch needs numpy 2), so each lives in an isolated venv whose python
an environment variable names (.ci/run builds them); `isolated_script.py` runs there and serves the model
to `IsolatedSession`, which `export/verify.py` then drives like any loaded artifact. Nothing here imports
a runtime.

Measured (edgebert compat on a tiny export, fp32/fp16/int8, onnxruntime 1.15.0/1.16.3/1.17.0/1.18.0 tried by
hand): edgebert's ONNX files are IR version 10, opset 20, which onnxruntime reads from 1.18.0 on (1.17.0 and
older: "Unsupported model IR version: 10, max supported IR version: 9"). 1.15.0 is the oldest onnxruntime
with a CPython 3.11 wheel on the index.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebert.errors import RunnerError
from edgebert.user_cache import cache_dir

__all__ = ["IsolatedRuntime", "ISOLATED", "IsolatedSession", "isolated_python", "explain", "NOT_INSTALLED"]

_SCRIPT = Path(__file__).with_name("isolated_script.py")
NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class IsolatedRuntime:
    package: str
    version: str
    format: str  # the artifact format it runs
    why: str  # why this release is a target

    @property
    def name(self) -> str:
        """The runtime's name in the compatibility table and for --runtime (pip's spelling)."""
        return f"{self.package}=={self.version}"

    @property
    def env_var(self) -> str:
        """e.g. EDGEBERT_AI_EDGE_LITERT_1_4_0_PYTHON: the python of the venv that holds this release."""
        return "EDGEBERT_" + re.sub(r"[^A-Z0-9]+", "_", f"{self.package} {self.version}".upper()) + "_PYTHON"

    @property
    def cached_venv(self) -> Path:
        """Where `edgebert compat --install-runtimes` makes its venv (export/runtime_envs.py)."""
        return cache_dir() / "runtimes" / f"{self.package}-{self.version}"

    @property
    def requirements(self) -> tuple[str, ...]:
        """What pip installs into its venv."""
        return (self.name, "numpy<2")

    @property
    def setup_hint(self) -> str:
        venv = f".venv-{self.package}-{self.version}"
        return (
            f"run `edgebert compat FOLDER --install-runtimes` (a venv in {self.cached_venv.parent}), or make one by "
            f"hand: python3 -m venv {venv} && {venv}/bin/pip install {self.name} 'numpy<2' && "
            f"export {self.env_var}=$PWD/{venv}/bin/python"
        )


ISOLATED = {
    r.name: r
    for r in (
        IsolatedRuntime("ai-edge-litert", "1.4.0", "tflite", "the last LiteRT 1.x release"),
        IsolatedRuntime("tflite-runtime", "2.14.0", "tflite", "the last tflite-runtime release (TensorFlow 2.14)"),
        IsolatedRuntime("onnxruntime", "1.15.0", "onnx", "the oldest onnxruntime with a CPython 3.11 wheel"),
        IsolatedRuntime("onnxruntime", "1.18.0", "onnx", "the oldest onnxruntime that reads ONNX IR version 10"),
    )
}


def isolated_python(runtime: IsolatedRuntime) -> str | None:
    """The venv's interpreter: the environment variable's, else the one `compat --install-runtimes` made in the
    cache folder; None when neither is set up (the table then says 'not installed')."""
    python = os.environ.get(runtime.env_var, "").strip()
    if python:
        return python
    cached = runtime.cached_venv
    return str(cached / "bin" / "python") if (cached / ".complete").exists() else None


# What an older runtime says when a file is too new for it, turned into the fact a reader needs.
_REASONS = (
    (
        r"Didn't find op for builtin opcode '(\w+)' version '(\d+)'",
        lambda m, rt: {"op": m[1], "op_version": int(m[2]), "why": f"op {m[1]} version {m[2]} is newer than {rt}"},
    ),
    (
        r"Unsupported model IR version: (\d+), max supported IR version: (\d+)",
        lambda m, rt: {
            "ir_version": int(m[1]),
            "why": f"the file is ONNX IR version {m[1]}; {rt} reads IR versions up to {m[2]}",
        },
    ),
    (
        r"Could not find an implementation for (\w+)\((\d+)\)",
        lambda m, rt: {"op": m[1], "op_version": int(m[2]), "why": f"{rt} has no kernel for {m[1]} opset {m[2]}"},
    ),
    (
        r"[Oo]pset (\d+) is under development|[Oo]pset (\d+) .*not supported",
        lambda m, rt: {"opset": int(m[1] or m[2]), "why": f"{rt} does not support ONNX opset {m[1] or m[2]}"},
    ),
)


def explain(error: str | None, runtime: str) -> dict:
    """{why, op/op_version or ir_version or opset} for a load error an older runtime gave; {} when unknown."""
    for pattern, fact in _REASONS:
        found = re.search(pattern, error or "")
        if found:
            return fact(found, runtime)
    return {}


class IsolatedSession:
    """A model loaded in an isolated runtime: `loaded`, `error`, `version`; call it with feeds as any runtime.

    A file the runtime cannot load is an answer (loaded False, error), not an exception; RunnerError means
    the environment itself is broken (missing interpreter, crash, timeout)."""

    def __init__(self, runtime: IsolatedRuntime, model: Path | None, threads: int = 1, timeout_s: float = 120):
        self._start(runtime, timeout_s)
        if model is None:
            return
        first = self._ask({"package": runtime.package, "model": str(Path(model).resolve()), "threads": threads})
        self.version, self.loaded, self.error = first.get("version"), bool(first.get("loaded")), first.get("error")
        self.signatures = first.get("signatures") or []

    @classmethod
    def mobile_package_config(cls, runtime: IsolatedRuntime) -> str:
        """The op set of the reduced ORT Mobile package, as shipped in an onnxruntime 1.15-1.18 wheel."""
        with cls(runtime, None) as session:
            answer = session._ask({"package": runtime.package, "mobile_package_config": True})
        if not answer.get("config"):
            raise RunnerError(f"{runtime.name} holds no mobile_package.required_operators.config")
        return answer["config"]

    def _start(self, runtime: IsolatedRuntime, timeout_s: float) -> None:
        python = isolated_python(runtime)
        if python is None:
            raise RunnerError(f"{runtime.name} is not set up: {runtime.setup_hint}")
        self.runtime, self.timeout_s = runtime, timeout_s
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "GLOG_minloglevel": "2"}
        self._stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: native logs must never block it
        try:
            self._proc = subprocess.Popen(
                [python, str(_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                env=env,
            )
        except (FileNotFoundError, PermissionError):
            self._stderr.close()
            raise RunnerError(f"{runtime.env_var}={python} cannot be run; {runtime.setup_hint}") from None

    def _ask(self, request: dict) -> dict:
        with contextlib.suppress(BrokenPipeError):  # an exited script is reported below, with its stderr
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout_s)
        line = self._proc.stdout.readline() if ready else ""  # the script answers every request with one line
        if not line:
            if not ready:
                self._proc.kill()
            self._proc.wait()
            self._stderr.seek(0)
            tail = self._stderr.read()[-1500:]
            raise RunnerError(
                f"{self.runtime.name} gave no answer ({'timed out' if not ready else f'exit {self._proc.returncode}'}):"
                f"\n{tail}"
            )
        return json.loads(line)

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        answer = self._ask({"feeds": {k: np.asarray(v).tolist() for k, v in feeds.items()}})
        if answer.get("error"):
            raise RunnerError(f"{self.runtime.name} failed to run the file: {answer['error']}")
        return np.asarray(answer["output"], dtype=np.float32)

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()  # end of requests: the script exits
        try:
            self._proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> IsolatedSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
