"""Import heavy optional modules inside the functions that need them, with a clear message."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgebert.errors import MissingExtraError


def require(module: str, *, extra: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only a missing top-level package means "extra not installed"; anything else is a bug.
        missing = getattr(exc, "name", None) or ""
        if missing and module.split(".")[0] != missing.split(".")[0] and not module.startswith(missing):
            raise
        raise MissingExtraError(what, extra, module) from None
