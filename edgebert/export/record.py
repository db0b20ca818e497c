"""Adding a measurement to an artifact's manifest entry, always labelled `measured`, or why there is none.

`latency.skipped`: the target cannot run this format (e.g. TorchScript over adb); `latency.failed`: the
target was asked and failed (unreachable, timeout, crash). Either way the artifact, verified already,
is published; a failure makes the command exit 5 afterwards (see `measurement_failures`)."""

from __future__ import annotations

__all__ = ["measured_entry", "record", "record_skip", "record_failure", "measurement_failures"]


def measured_entry(result: dict) -> dict:
    """Manifest form of one measurement: always kind=measured, with where and how many runs."""
    return {"kind": "measured", **result}


def record(entry: dict, result: dict) -> None:
    """Add one runner result to an artifact's manifest entry (latency, and memory when measured)."""
    entry["latency"]["measured"].append(measured_entry(result))
    if result.get("peak_rss_mb") is not None:
        entry["memory"]["measured"].append(
            {
                "kind": "measured",
                "peak_rss_mb": result["peak_rss_mb"],
                "where": result["where"],
                "runs": result["runs"],
                "what": "peak RSS of the whole measuring process",
            }
        )


def record_skip(entry: dict, where: str, why: str) -> None:
    entry["latency"].setdefault("skipped", []).append({"where": where, "why": why})


def record_failure(entry: dict, where: str, error: Exception) -> None:
    failure = {"where": where, "why": str(error), "error": type(error).__name__}
    entry["latency"].setdefault("failed", []).append(failure)


def measurement_failures(manifest: dict) -> list[dict]:
    """Every failed measurement of the manifest's artifacts, each with its artifact's file."""
    return [{"file": a["file"], **f} for a in manifest["artifacts"] for f in a["latency"].get("failed", [])]
