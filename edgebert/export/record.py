"""Adding a measurement to an artifact's manifest entry, always labelled `measured`."""

from __future__ import annotations

__all__ = ["measured_entry", "record"]


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
