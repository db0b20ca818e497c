"""The user's cache folder: what edgebert can measure or install again (proxy tables, calibrations, runtime venvs)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """$EDGEBERT_CACHE_DIR, else $XDG_CACHE_HOME/edgebert, else ~/.cache/edgebert."""
    base = os.environ.get("EDGEBERT_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgebert"
