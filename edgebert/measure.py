"""measure: time an artifact on a target and record it in its manifest entry, labelled `measured`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["local_measurer", "measured_entry"]


def measured_entry(result: dict) -> dict:
    """Manifest form of one measurement: always kind=measured, with where and how many runs."""
    return {"kind": "measured", **result}


def local_measurer(threads: int, seq_len: int, runs: int = 50, warmup: int = 5):
    """A callback for export(): time each artifact on this machine in a fresh subprocess."""
    from .runners import measure_local

    def measure(entry: dict, path: Path) -> None:
        result = measure_local(Path(path), threads=threads, seq_len=seq_len, runs=runs, warmup=warmup)
        entry["latency"]["measured"].append(measured_entry(result))
        if result.get("peak_rss_mb") is not None:
            entry["memory"]["measured"].append({"kind": "measured", "peak_rss_mb": result["peak_rss_mb"],
                                                "where": result["where"], "runs": result["runs"]})

    return measure
