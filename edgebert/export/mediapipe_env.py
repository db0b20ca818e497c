"""MediaPipe Tasks as a verification runtime, reached through its own Python environment.

mediapipe 0.10.21 (the last release whose wheel ships the metadata tooling) pins numpy < 2 and protobuf < 5,
so it lives in an isolated venv: `EDGEBERT_MEDIAPIPE_PYTHON` names that venv's python, and
`mediapipe_script.py` runs there in a subprocess. Nothing here imports mediapipe.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from edgebert.errors import RunnerError

__all__ = ["ENV_VAR", "SETUP_HINT", "mediapipe_python", "run_mediapipe"]

ENV_VAR = "EDGEBERT_MEDIAPIPE_PYTHON"
SETUP_HINT = (
    f"set {ENV_VAR} to the python of a venv with mediapipe==0.10.21, e.g. python3 -m venv .venv-mediapipe && "
    f".venv-mediapipe/bin/pip install mediapipe==0.10.21 && export {ENV_VAR}=$PWD/.venv-mediapipe/bin/python"
)
_SCRIPT = Path(__file__).with_name("mediapipe_script.py")


def mediapipe_python() -> str | None:
    """The isolated environment's interpreter, or None when it is not set up (the check is then skipped)."""
    python = os.environ.get(ENV_VAR, "").strip()
    return python or None


def run_mediapipe(model: Path, task: str, texts: list[str], *, metadata: bool = False, timeout_s: float = 300) -> dict:
    """MediaPipe's own tokenization + inference of `texts` on `model`; see mediapipe_script.py for the answer.

    A file MediaPipe cannot load is an answer (loaded: false, error), not an exception; RunnerError means the
    environment itself is broken (missing interpreter, no mediapipe, crash, timeout)."""
    python = mediapipe_python()
    if python is None:
        raise RunnerError(f"MediaPipe is not set up: {SETUP_HINT}")
    request = json.dumps({"model": str(Path(model).resolve()), "task": task, "texts": texts, "metadata": metadata})
    env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(
            [python, str(_SCRIPT)], input=request, capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except FileNotFoundError:
        raise RunnerError(f"{ENV_VAR}={python} does not exist; {SETUP_HINT}") from None
    except subprocess.TimeoutExpired:
        raise RunnerError(f"MediaPipe took more than {timeout_s:g} s on {model}") from None
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (done.stderr or done.stdout)[-1500:]
        raise RunnerError(f"MediaPipe ({python}) exited {done.returncode} without an answer:\n{tail}") from None
