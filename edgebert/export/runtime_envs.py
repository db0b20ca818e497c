"""Venvs for the older runtimes `edgebert compat` checks, made on demand in the user's cache folder.

Each release pins numpy < 2 (edgebert's torch needs numpy 2), so it cannot share edgebert's environment:
`edgebert compat FOLDER --install-runtimes` makes `<cache>/runtimes/<package>-<version>` with
`python -m venv` and pip (from the package index), built under a temporary name and renamed into place,
so an interrupted or failed install leaves nothing a later run would take for a working venv.
Measured here: 20-47 s per venv (ai-edge-litert 1.4.0 fastest, onnxruntime 1.18.0 slowest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edgebert.errors import RunnerError
from edgebert.export.isolated import ISOLATED, IsolatedRuntime, isolated_python

__all__ = ["install_runtime", "install_missing"]


def install_runtime(runtime: IsolatedRuntime, timeout_s: float = 900) -> str:
    """Make the venv (if missing) and return its python. Raises RunnerError naming pip's complaint."""
    final = runtime.cached_venv
    if (final / ".complete").exists():
        return str(final / "bin" / "python")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-{os.getpid()}-", dir=final.parent))
    try:
        steps = [[sys.executable, "-m", "venv", str(tmp / "venv")]]
        if runtime.requirements:
            steps.append([str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", *runtime.requirements])
        for cmd in steps:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            if run.returncode:
                tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
                raise RunnerError(
                    f"could not install {runtime.name} into {final}: {' '.join(cmd[2:5])} failed: {' | '.join(tail)}"
                    "; check that the package index is reachable, or set it up by hand: " + runtime.setup_hint
                )
        # A venv finds its site-packages from its interpreter's location, so the renamed one works.
        (tmp / "venv" / ".complete").write_text(runtime.name + "\n")
        shutil.rmtree(final, ignore_errors=True)  # an unfinished one from an older run
        os.rename(tmp / "venv", final)
    except subprocess.TimeoutExpired:
        raise RunnerError(f"installing {runtime.name} took longer than {timeout_s:.0f} s; try again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(final / "bin" / "python")


def install_missing(on_step=None) -> dict[str, str]:
    """Install every isolated runtime that neither its environment variable nor the cache provides."""
    made = {}
    for runtime in ISOLATED.values():
        if isolated_python(runtime) is not None:
            continue
        if on_step is not None:
            on_step(runtime.name)
        made[runtime.name] = install_runtime(runtime)
    return made
