"""index.json: one row per config entry and artifact, for CI to upload, diff and gate on."""

from __future__ import annotations

import json
from pathlib import Path

from edgebert.build.config import BuildEntry
from edgebert.export.record import measurement_failures
from edgebert.hashing import write_atomic

__all__ = ["INDEX", "INDEX_SCHEMA", "artifact_row", "index_row", "exit_code", "write_json", "previous_index"]

INDEX = "index.json"
INDEX_SCHEMA = "edgebert.build-index/1"


def artifact_row(folder: str, a: dict, raw: list[str]) -> dict:
    return {
        "file": f"{folder}/{a['file']}",
        "format": a["format"],
        "precision": a["precision"],
        "requested_precision": a.get("requested_precision"),
        "size_bytes": a["size_bytes"],
        "sha256": a["sha256"],
        "parity": {k: a["parity"].get(k) for k in ("passed", "max_abs_diff", "min_cosine", "mean_cosine")},
        "latency": {
            "predicted": a["latency"]["predicted"],
            "measured": a["latency"]["measured"],
            "skipped": a["latency"].get("skipped", []),
            "failed": a["latency"].get("failed", []),
        },
        "memory": {"predicted": a["memory"]["predicted"], "measured": a["memory"]["measured"]},
        "byte_reproducible": a["file"] not in raw,
    }


def index_row(entry: BuildEntry, key: str, status: str, manifest: dict | None = None, **extra) -> dict:
    row = {
        "name": entry.folder,
        "folder": entry.folder,
        "device": entry.profile_name,
        "profile": entry.device,
        "budget": {
            "latency": entry.latency,
            "memory": entry.memory,
            "latency_ms": entry.latency_ms,
            "memory_mb": entry.memory_mb,
        },
        "target": entry.target.uri if entry.target else None,
        "status": status,
        "message": None,
        "reason": None,
        "exit_code": 0,
        "seconds": None,
        "this_run": True,
        "cache_key": key,
        "spec": None,
        "chosen": None,
        "artifacts": [],
    }
    row.update(extra)
    if manifest is not None:
        row["spec"] = {
            **manifest["subnet"]["spec"],
            "heads": manifest["subnet"]["heads"],
            "ffn": manifest["subnet"]["ffn"],
            "parameters": manifest["subnet"]["parameters"],
        }
        chosen = (manifest.get("selection") or {}).get("chosen") or {}
        keys = (
            "spec",
            "format",
            "precision",
            "predicted_latency_ms",
            "predicted_latency_p90_bound_ms",
            "predicted_memory_mb",
            "quality",
        )
        row["chosen"] = {k: chosen.get(k) for k in keys}
        raw = manifest["build"].get("not_byte_reproducible", [])
        row["artifacts"] = [artifact_row(entry.folder, a, raw) for a in manifest["artifacts"]]
        failed = measurement_failures(manifest)
        if failed and row["exit_code"] == 0:  # built and published, but the target failed: the build exits 5
            row["exit_code"] = 5
            row["message"] = "measuring failed: " + "; ".join(
                f"{f['file']} on {f['where']}: {f['why']}" for f in failed
            )
    return row


def exit_code(rows: list[dict]) -> int:
    codes = {r["exit_code"] for r in rows}
    for code in (4, 5, 2, 3):  # parity, then device, then other input errors, then budgets
        if code in codes:
            return code
    return 0


def write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def previous_index(out: Path) -> dict[str, dict]:
    try:
        return {r["folder"]: r for r in json.loads((out / INDEX).read_text())["entries"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
