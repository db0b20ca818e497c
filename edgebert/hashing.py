"""sha256 of files, the UTC timestamps written beside them, and writing a file atomically."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["sha256_file", "now_iso", "write_atomic"]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def write_atomic(path: str | Path, text: str) -> Path:
    """Write through a hidden `.NAME.tmp` beside `path`, then rename: a reader sees the old file or the
    new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
