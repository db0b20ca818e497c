"""Atomic output folders, and the one rule for which folders edgebert may replace.

A folder is built in a hidden sibling (`.NAME.partial-<pid>-<random>`) and renamed into place at the end.
An existing folder is replaced only if edgebert can prove it wrote it (`proof` returns None); a folder
with anything else in it is never replaced, --force or not, because replacing means deleting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from edgebert.disk import disk_full_message, is_disk_full
from edgebert.errors import OutputError
from edgebert.export.manifest import MANIFEST, SCHEMA, SUBNET_DIR

__all__ = ["atomic_dir", "check_output_dir", "export_folder_proof", "unlisted", "sweep_stale"]

log = logging.getLogger(__name__)

# Why a folder is not provably one edgebert wrote (None: it is).
Proof = Callable[[Path], "str | None"]

# Written beside the artifacts by export (report) and by bench (a manifest rewrite cut short).
_EXPORT_EXTRAS = {MANIFEST, f".{MANIFEST}.tmp", "report.md", "pareto.png"}


def unlisted(folder: Path, files: set[str], dirs: set[str] = frozenset()) -> list[str]:
    """Paths in `folder` that are neither one of `files` nor inside one of `dirs` (relative, sorted)."""
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).as_posix()
        if rel not in files and rel.split("/")[0] not in dirs:
            found.append(rel)
    return sorted(found)


def export_folder_proof(folder: Path) -> str | None:
    """An export folder: edgebert's manifest.json, and nothing the manifest does not account for."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return f"it has no {MANIFEST}"
    except (OSError, ValueError) as exc:
        return f"its {MANIFEST} is unreadable ({type(exc).__name__})"
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        schema = manifest.get("schema") if isinstance(manifest, dict) else None
        return f"its {MANIFEST} has schema {schema!r}, not edgebert's {SCHEMA!r}"
    try:
        files = {a["file"] for a in manifest["artifacts"]} | set(manifest["tokenizer"]["files"])
        # early-exit segments (export/segments.py): listed per format in their own section
        files |= {f["file"] for fs in ((manifest.get("early_exit") or {}).get("files") or {}).values() for f in fs}
    except (KeyError, TypeError, AttributeError):
        return f"its {MANIFEST} lists no artifacts and tokenizer files"
    extra = unlisted(folder, files | _EXPORT_EXTRAS, {SUBNET_DIR})
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        return f"its manifest does not list {shown}"
    return None


def _holds_cwd(out: Path) -> bool:
    return Path.cwd().resolve().is_relative_to(out.resolve())


def check_output_dir(out: Path, force: bool, proof: Proof = export_folder_proof) -> None:
    """Fail early (before any work) on an output folder we may not use."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} exists and is a file; give a folder path")
    if _holds_cwd(out):
        raise OutputError(
            f"--out {out} is the current folder or holds it; edgebert publishes by replacing the whole "
            f"folder, so give a new sub-folder, e.g. --out {out / 'export'}"
        )
    if out.exists() and any(out.iterdir()):
        why = proof(out)
        if why is not None:
            raise OutputError(
                f"{out} is not a folder edgebert wrote ({why}); edgebert never replaces such a folder, "
                "--force or not: move its files away or choose another --out"
            )
        if not force:
            raise OutputError(
                f"output folder {out} already exists and is not empty; pass --force to replace it "
                "or choose another --out"
            )
    _check_parent(out)


def _check_parent(out: Path) -> None:
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():  # before the access check: a file lacks the x bit and would read "permission denied"
        raise OutputError(f"cannot create {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {probe} (permission denied); choose a writable --out")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def sweep_stale(parent: Path, name: str) -> list[Path]:
    """Remove staging folders of NAME left in `parent` by processes that no longer run (SIGKILL, power loss).

    A `.old-` folder still holding the previous output while NAME is missing (killed between the two
    renames) is put back first. Staging folders without a PID (older edgebert) are left alone."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(partial|old)-(\d+)-[^/]*")
    removed = []
    for p in sorted(Path(parent).glob(f".{name}.*")):
        m = pattern.fullmatch(p.name)
        if m is None or not p.is_dir() or _alive(int(m.group(2))):
            continue
        if m.group(1) == "old" and (p / "x").is_dir() and not (Path(parent) / name).exists():
            os.rename(p / "x", Path(parent) / name)
            log.warning("edgebert: restored %s from %s (its process %s was killed mid-publish)", name, p, m.group(2))
        shutil.rmtree(p, ignore_errors=True)
        log.warning("edgebert: removed stale staging folder %s (process %s is no longer running)", p, m.group(2))
        removed.append(p)
    return removed


def _size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def _publish(tmp: Path, out: Path) -> None:
    # mkdtemp makes 0700 folders; the published one gets the user's usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    if out.exists():
        # Move the old folder aside first so a crash between the two renames loses nothing.
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        os.rename(out, old / "x")
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


@contextlib.contextmanager
def atomic_dir(out: Path, force: bool = False, proof: Proof = export_folder_proof):
    """Yield a temporary folder; on success it becomes `out`. On any error or Ctrl-C it is removed."""
    out = Path(out)
    if out.parent.is_dir():
        sweep_stale(out.parent, out.name)
    check_output_dir(out, force, proof)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # The PID in the name lets a later run tell a dead process's leftovers from a running export's.
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
    except OSError as exc:  # /proc, a read-only mount, a full disk: the access check cannot see these
        raise OutputError(
            f"cannot create --out {out}: {exc.strerror or exc} in {out.parent}; choose a folder you can write"
        ) from None
    try:
        yield tmp
        check_output_dir(out, force, proof)  # again: files may have been put there while we worked
        _publish(tmp, out)
    except BaseException as exc:
        written = _size_of(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        if is_disk_full(exc):
            raise OutputError(disk_full_message(out.parent, written)) from None
        raise
