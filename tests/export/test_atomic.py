"""Atomic output folders: staging names carry the PID, a dead process's leftovers are swept, SIGTERM cleans up."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edgebert.export.atomic import atomic_dir, sweep_stale


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def staging(parent: Path, kind: str, pid: int | None, name: str = "o") -> Path:
    folder = parent / (f".{name}.{kind}-{pid}-abc" if pid is not None else f".{name}.{kind}-abc")
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"half")
    return folder


def test_staging_folder_names_the_pid(tmp_path):
    with atomic_dir(tmp_path / "o") as tmp:
        assert tmp.name.startswith(f".o.partial-{os.getpid()}-")
        (tmp / "f").write_text("x")
    assert (tmp_path / "o" / "f").read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["o"]


def test_sweep_removes_only_dead_processes_leftovers(tmp_path, caplog):
    dead = dead_pid()
    gone = [staging(tmp_path, "partial", dead), staging(tmp_path, "old", dead)]
    kept = [
        staging(tmp_path, "partial", os.getpid()),  # a running export's
        staging(tmp_path, "partial", None),  # an older edgebert's: no PID to prove it dead
        staging(tmp_path, "partial", dead, name="other"),  # another output's
    ]
    with caplog.at_level(logging.WARNING, logger="edgebert.export.atomic"):
        assert sorted(sweep_stale(tmp_path, "o")) == sorted(gone)
    assert all(not p.exists() for p in gone) and all(p.exists() for p in kept)
    assert f"removed stale staging folder {gone[0]} (process {dead} is no longer running)" in caplog.text


def test_sweep_puts_back_a_folder_killed_between_the_two_renames(tmp_path):
    old = staging(tmp_path, "old", dead_pid())
    (old / "x").mkdir()
    (old / "x" / "manifest.json").write_text("{}")
    sweep_stale(tmp_path, "o")
    assert (tmp_path / "o" / "manifest.json").read_text() == "{}" and not old.exists()


def test_atomic_dir_sweeps_before_staging(tmp_path):
    stale = staging(tmp_path, "partial", dead_pid())
    with atomic_dir(tmp_path / "o"):
        assert not stale.exists()


_SLOW_EXPORT = """
import pathlib, sys, time
import edgebert.export.pipeline as pipeline

def slow(*args, **kwargs):
    pathlib.Path(sys.argv[1]).write_text("converting")
    time.sleep(120)

pipeline.convert_and_verify = slow
from edgebert.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigterm_during_export_exits_143_and_leaves_no_staging(tiny_model_dir, tmp_path):
    """Issue 11 item 4: SIGTERM (CI cancel, `timeout`, `docker stop`) printed nothing, left .NAME.partial-*."""
    out, flag = tmp_path / "o", tmp_path / "flag"
    args = ["export", "--model", str(tiny_model_dir), "--formats", "torchscript", "--seq-len", "16", "--no-measure"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_EXPORT, str(flag), *args, "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert flag.exists(), proc.stderr.read() if proc.poll() is not None else "export never reached convert"
    assert list(tmp_path.glob(f".o.partial-{proc.pid}-*"))  # mid-export: staged, not published
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert not out.exists() and not list(tmp_path.glob(".o.*"))  # holds today: nothing half-written
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
