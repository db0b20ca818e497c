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
        for w in x.get("warnings", []):
            lines.append(f"  warning: {w}")
    for sk in r["skipped"]:
        lines.append(f"skipped {sk['file']}: {sk['why']}")
    return "\n".join(lines)
