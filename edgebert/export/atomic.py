"""Atomic output folders: build in a hidden temporary sibling, rename into place at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from edgebert.errors import OutputError

__all__ = ["atomic_dir", "check_output_dir"]


def check_output_dir(out: Path, force: bool) -> None:
    """Fail early (before any work) on an output folder we may not use."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is a file; give a folder path")
    if out.exists() and any(out.iterdir()) and not force:
        raise OutputError(
            f"output folder {out} already exists and is not empty; pass --force to replace it or choose another --out"
        )
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {probe} (permission denied); choose a writable --out")
    if probe != parent and not probe.is_dir():
        raise OutputError(f"cannot create {out}: {probe} is not a folder")


@contextlib.contextmanager
def atomic_dir(out: Path, force: bool = False):
    """Yield a temporary folder; on success it becomes `out`. On any error or Ctrl-C it is removed."""
    out = Path(out)
    check_output_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        # mkdtemp makes 0700 folders; the published one gets the user's usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if out.exists():
            # Move the old folder aside first so a crash between the two renames loses nothing.
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rename(out, old / "x")
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
