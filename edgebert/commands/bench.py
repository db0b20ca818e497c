"""`edgebert bench FOLDER --target ...`."""

from __future__ import annotations

from pathlib import Path

from edgebert.bench import BenchRequest, bench_folder
from edgebert.commands.text import fmt
from edgebert.runners import RunnerOptions, parse_target

__all__ = ["run_bench", "format_bench"]


def run_bench(
    *,
    folder,
    target="local",
    formats=None,
    threads=None,
    runs=50,
    warmup=5,
    timeout=300.0,
    cooldown=0.0,
    sustained=0.0,
    options: RunnerOptions | None = None,
    progress: bool = True,
) -> dict:
    req = BenchRequest(
        folder=Path(folder),
        target=parse_target(target),
        options=options or RunnerOptions(),
        formats=formats,
        threads=threads,
        runs=runs,
        warmup=warmup,
        timeout_s=timeout,
        cooldown_s=cooldown,
        sustained_s=sustained,
    )
    return bench_folder(req, progress=progress)


def format_bench(r: dict) -> str:
    lines = [
        f"measured on {r['target']} ({r['folder']}/manifest.json updated)",
        f"{'file':<16}{'prec':<6}{'p50 ms':>9}{'p90 ms':>9}{'mean ms':>9}{'runs':>6}{'thr':>4}{'peak MB':>9}  device / runtime",
    ]
    for x in r["results"]:
        lines.append(
            f"{x['file']:<16}{x['precision']:<6}{x['p50_ms']:>9.2f}{fmt(x.get('p90_ms'), '.2f'):>9}"
            f"{x['mean_ms']:>9.2f}{x['runs']:>6}{x['threads']:>4}{fmt(x.get('peak_rss_mb'), '.1f'):>9}"
            f"  {x.get('device', '?')} / {x['runtime']} {x['runtime_version']}"
        )
        lines.append("  " + _hygiene(x))
        for w in x.get("warnings", []):
            lines.append(f"  warning: {w}")
    for seg in r.get("segments") or []:
        per = ", ".join(f"{x:.3g}" for x in seg["segments_ms"])
        lines.append(
            f"{seg['format']} early-exit segments (measured, p50 each): [{per}] ms; expected {seg['expected_ms']:.3g} ms, "
            f"p90 {seg['p90_ms']:.3g} ms, worst (all layers) {seg['worst_ms']:.3g} ms over {seg['histogram_from']}"
        )
    for sk in r["skipped"]:
        lines.append(f"skipped {sk['file']}: {sk['why']}")
    return "\n".join(lines)


def _hygiene(x: dict) -> str:
    """How far to trust the figure: the median's 95 % CI, spread, drift, and the temperatures around it."""
    ci = x.get("p50_ci95_ms")
    parts = [f"p50 95% CI {ci[0]:.2f}-{ci[1]:.2f} ms" if ci else "p50 95% CI n/a"]
    parts.append(
        f"IQR {x['iqr_ms']:.2f} ms"
        if x.get("iqr_ms") is not None
        else f"min-max {fmt(x.get('min_ms'), '.2f')}-{fmt(x.get('max_ms'), '.2f')} ms"
    )
    if x.get("drift_pct") is not None:
        parts.append(f"drift {x['drift_pct']:+.1f}%" + (f" over {x['timed_s']:.0f} s" if x.get("timed_s") else ""))
    before, after = x.get("thermal_before"), x.get("thermal_after")
    if before and after:
        parts.append(f"max temp {before['max_c']:.1f} -> {after['max_c']:.1f} C")
    else:
        parts.append("temp n/a")
    return ", ".join(parts)
