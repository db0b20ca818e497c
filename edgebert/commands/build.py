"""`edgebert build CONFIG [--check]`."""

from __future__ import annotations

from pathlib import Path

from edgebert.build.check import check as build_check
from edgebert.build.config import load_build_config
from edgebert.build.index import INDEX
from edgebert.build.run import build

__all__ = ["run_build", "format_summary", "format_check"]


def run_build(*, config, only=None, check=False, no_cache=False, out=None, progress=True) -> dict:
    """`edgebert build`: the index (or, with check, the check report); its `exit_code` is the command's."""
    cfg = load_build_config(config, out=out)
    if check:
        return build_check(cfg, only)
    return build(cfg, only, no_cache=no_cache, progress=progress)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_summary(index: dict) -> str:
    head = ("entry", "status", "spec", "chosen", "pred ms", "meas p50 ms", "artifacts (MB)")
    lines = [head]
    for r in index["entries"]:
        ch = r["chosen"] or {}
        measured = [
            m["p50_ms"]
            for a in r["artifacts"]
            for m in a["latency"]["measured"]
            if a["format"] == ch.get("format") and a["precision"] == ch.get("precision") and "p50_ms" in m
        ]
        arts = " ".join(f"{a['format']}:{a['size_bytes'] / 1e6:.1f}" for a in r["artifacts"])
        lines.append(
            (
                r["name"],
                r["status"],
                ch.get("spec") or "-",
                f"{ch['format']}/{ch['precision']}" if ch else "-",
                _ms(ch.get("predicted_latency_ms")),
                _ms(measured[0] if measured else None),
                arts or "-",
            )
        )
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(index["counts"].items()))
    text.append(f"\n{counts}; index: {Path(index['out']) / INDEX}")
    problems = [r for r in index["entries"] if r["status"] in ("over-budget", "failed")]
    for r in problems:
        text.append(f"{r['status']}: {r['name']}: {r['message']}")
    return "\n".join(text)


def format_check(report: dict) -> str:
    lines = []
    for r in report["entries"]:
        lines.append(f"{r['name']}: {r['status']}")
        lines.extend(f"  {p}" for p in r["problems"])
    return "\n".join(lines)
