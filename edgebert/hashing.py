"""sha256 of files and the UTC timestamps written beside them (every stage records both)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["sha256_file", "now_iso"]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()
