"""`export --search`: the best searched point for one budget, as a selector Candidate and the manifest's
`selection` section (method "search"), so the export, verification, measurement and report that follow
treat it as they treat a grid point."""

from __future__ import annotations

from edgebert.errors import BudgetError, UsageError
from edgebert.model.loaded import Loaded
from edgebert.search.evolution import EvolutionConfig, Limits, Point
from edgebert.search.run import Efficiency, search_model
from edgebert.select.budget import Budget
from edgebert.select.choose import allowed
from edgebert.select.profiles import DeviceProfile
from edgebert.select.selector import Candidate

__all__ = ["search_target", "searched_selection", "bound_source"]


def search_target(
    profile: DeviceProfile, formats, quantize, loadable: tuple[str, ...] | None = None
) -> tuple[str, str]:
    """The (format, precision) searched: the first allowed format (the profile's preference), fp32 unless --quantize
    or unless the app's runtime does not load fp32 (`loadable`: its precisions, export/runtimes.py; as the grid's
    selector filters them)."""
    formats, precisions = allowed(profile, formats, quantize, loadable)
    for f in formats:
        if precisions[f]:
            return f, quantize or ("fp32" if "fp32" in precisions[f] else precisions[f][0])
    raise UsageError(f"no format among {', '.join(formats)} can produce {quantize}")


def bound_source(source: str, precision: str) -> str:
    """Quality is measured on the fp32 sub-network; for int8/fp16 it is an upper bound, and says so."""
    return source if precision == "fp32" else f"upper bound, measured in fp32 not {precision}: {source}"


def searched_selection(
    loaded: Loaded,
    profile: DeviceProfile,
    budget: Budget,
    formats,
    quantize,
    seq_len: int,
    threads: int,
    progress: bool = False,
    cfg: EvolutionConfig = EvolutionConfig(),
    n_sample: int = 48,
    loadable: tuple[str, ...] | None = None,
) -> tuple[Candidate, dict]:
    """(the chosen candidate, the manifest's selection section). Raises BudgetError (exit 3) when nothing fits.
    `loadable`: the precisions the app's runtime loads (None: any)."""
    fmt, precision = search_target(profile, formats, quantize, loadable)
    limits = Limits(budget.latency_ms, budget.memory_mb)
    result, est, what = search_model(
        loaded,
        lambda config: Efficiency(profile, config, fmt, precision, seq_len, threads),
        [limits],
        cfg=cfg,
        n_sample=n_sample,
        progress=progress,
    )
    (row,) = result.budgets
    if row.chosen is None:
        raise BudgetError(f"--search: {row.why}")
    ch = _candidate(row.chosen, fmt, precision, seq_len, threads)
    cands = [_row(p, fmt, precision, limits) for p in _listed(result, row)]
    chosen = _row(row.chosen, fmt, precision, limits)
    if all(c["spec"] != chosen["spec"] for c in cands):
        cands.append(chosen)
    why = f"searched: {row.why} ({row.evaluated} feasible configurations scored, {row.measured} measured); " + (
        f"the best uniform grid point within the budget, {row.grid.spec.key}, measures {row.grid.quality:.4f}"
        if row.grid
        else "no uniform grid point fits the budget"
    )
    section = {
        "method": "search",
        "chosen": chosen,
        "why": why,
        "candidates": cands,
        "quality_source": what,
        "latency_source": row.chosen.latency.source,
        "search": {
            "budget": row.to_dict(),
            "predictor": est.predictor.to_dict(),
            "measured_configurations": len(est.measured),
            "front": [p.to_dict() for p in result.front],
        },
    }
    return ch, section


def _listed(result, row) -> list[Point]:
    """The points the report lists: the measured ones of the Pareto front and the grid's best."""
    pts = list(result.front)
    if row.grid is not None and all(p.spec.key != row.grid.spec.key for p in pts):
        pts.append(row.grid)
    return pts


def _candidate(p: Point, fmt: str, precision: str, seq_len: int, threads: int) -> Candidate:
    return Candidate(
        p.spec,
        fmt,
        precision,
        seq_len,
        threads,
        p.latency,
        p.memory,
        p.quality,
        bound_source(p.quality_source, precision),
    )


def _row(p: Point, fmt: str, precision: str, limits: Limits) -> dict:
    fits = limits.fits(p.latency, p.memory)
    return {
        "spec": p.spec.key,
        "width": p.spec.width,
        "depth": p.spec.depth,
        "format": fmt,
        "precision": precision,
        "predicted_latency_ms": p.latency.value,
        "predicted_latency_p90_bound_ms": p.latency.upper,
        "predicted_memory_mb": p.memory.value if p.memory else 0.0,
        "quality": p.quality,
        "quality_source": bound_source(p.quality_source, precision),
        "fits": fits,
        "why": "fits (p90 bounds within the limits)" if fits else f"p90 bound {p.latency.upper:.3g} ms > budget",
    }
