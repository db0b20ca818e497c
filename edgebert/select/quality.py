"""Quality of every (width, depth) sub-network: the model's measured table, or else the proxy.

`quality.json` in the model folder maps SubnetSpec.key ("w0.5-d0.75") to {score, metric, data, n,
measured_at} (+ metric-specific extras), written by `edgebert train` / `edgebert evaluate`. A row's
"precisions" maps FORMAT/RECIPE ("onnx/int8") to that artifact's own score on the same data, with its
format, precision, recipe, runtime, n and measured_at: select/quantized.py reads them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from edgebert.errors import DataError
from edgebert.model.loaded import Loaded
from edgebert.select.proxy import proxy_table

__all__ = ["QUALITY_FILE", "keep_precisions", "quality_for", "read_table", "write_table"]

QUALITY_FILE = "quality.json"


def write_table(path: Path, table: dict) -> Path:
    """Write atomically: a reader never sees half a table."""
    path = Path(path)
    if path.is_dir():
        path = path / QUALITY_FILE
    fd, tmp = tempfile.mkstemp(prefix=".quality-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(table, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_table(model_dir: Path) -> dict:
    """The table in a model folder (or the table file itself, as write_table takes either); {} when none."""
    path = Path(model_dir)
    if path.is_dir():
        path = path / QUALITY_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not a valid quality table ({exc}); re-run `edgebert evaluate`") from None


def keep_precisions(new: dict, old: dict) -> dict:
    """`new` with the per-precision scores of `old` that `new` did not re-measure, where both rows were measured
    on the same data (name and n): `edgebert evaluate --quantized tflite/int8` keeps train's ONNX scores."""
    out = {}
    for key, row in new.items():
        was = old.get(key, {})
        kept = {
            what: q
            for what, q in was.get("precisions", {}).items()
            if what not in row.get("precisions", {}) and (q.get("data"), q.get("n")) == (row.get("data"), row.get("n"))
        }
        out[key] = {**row, "precisions": {**kept, **row.get("precisions", {})}} if kept or "precisions" in row else row
    return out


def quality_for(loaded: Loaded, progress: bool) -> tuple[dict, str]:
    """The model's measured quality table, or a proxy measured on calibration text (and say so).

    Kept on `loaded`, so a build of many entries reads or measures it once."""
    if loaded.quality is None:
        loaded.quality = _quality(loaded, progress)
    return loaded.quality


def _quality(loaded: Loaded, progress: bool) -> tuple[dict, str]:
    table = read_table(loaded.model_dir) if (loaded.model_dir / "quality.json").exists() else {}
    if table:
        out = {}
        for key, row in table.items():
            out[key] = (
                float(row["score"]),
                f"measured: {row.get('metric', 'score')} on {row.get('data', 'dev set')}"
                f" (quality.json, n={row.get('n', '?')})",
            )
        return out, "the model's quality table (quality.json, written by `edgebert train`/`evaluate`)"
    return proxy_table(loaded, progress)
