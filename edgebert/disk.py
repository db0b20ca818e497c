"""A full disk, told apart from other write errors and explained: how much was written, how much is free, where.

ENOSPC reaches edgebert in many coats: OSError from Python's own writes, safetensors' SafetensorError, a
RuntimeError from a converter's C++ core that only carries the text. All of them name errno 28's message.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

__all__ = ["is_disk_full", "disk_full_message", "human_bytes"]

_TEXTS = ("No space left on device", "StorageFull", "Disk quota exceeded")


def is_disk_full(exc: BaseException | None) -> bool:
    """True when `exc` or anything in its cause/context chain is a full disk or an exhausted quota."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(exc)[:2000] for t in _TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _existing(folder: Path) -> Path:
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def disk_full_message(folder: Path, written: int | None = None) -> str:
    """What to tell the user: where the disk filled, what had been written, what is free now."""
    where = _existing(folder)
    try:
        free = human_bytes(shutil.disk_usage(where).free)
    except OSError:
        free = "unknown"
    done = (
        f"this run needed more than the {human_bytes(written)} it had written there when the disk filled "
        f"(removed again); "
        if written is not None
        else ""
    )
    cache = os.environ.get("EDGEBERT_CACHE_DIR")
    return (
        f"the disk holding {where} is full (no space left on device): {done}{free} free now. Free some space "
        "or choose an output folder on another disk" + (f"; the cache at {cache} also takes space" if cache else "")
    )
