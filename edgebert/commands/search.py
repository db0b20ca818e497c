"""`edgebert search`: per-layer sub-networks under a device's budgets, compared with DynaBERT's grid."""

from __future__ import annotations

import time

from edgebert.calibrate.quick import calibrate_host
from edgebert.commands.text import fmt
from edgebert.errors import BudgetError, UsageError
from edgebert.model.loaded import load
from edgebert.search.evolution import EvolutionConfig, Limits
from edgebert.search.pick import bound_source, search_target
from edgebert.search.run import Efficiency, SearchResult, search_model
from edgebert.select.budget import parse_latency, parse_memory
from edgebert.select.profiles import load_profile
from edgebert.train.data import BUILTIN, load_data
from edgebert.train.evaluate import measure as evaluate

__all__ = ["parse_budgets", "run_search", "format_search", "dev_measurer", "rows"]


def parse_budgets(text: str) -> list[float]:
    """'10ms,20ms,40ms' -> [10.0, 20.0, 40.0]; each parsed as --budget is (a bad one is exit 2, named)."""
    parts = [p.strip() for p in str(text or "").split(",") if p.strip()]
    if not parts:
        raise UsageError(f"--budgets {text!r} names no budget; expected e.g. 10ms,20ms,40ms")
    return sorted(set(parse_latency(p) for p in parts))


def dev_measurer(data: str, tokenizer, text_column: str = "text", label_column: str = "label"):
    """measurer(model) -> Measure: dev-set accuracy (classifiers) or cosine fidelity (encoders), as `edgebert evaluate`
    measures the grid; a built-in set gives its dev split, a file is used whole."""
    cols = {"text_column": text_column, "label_column": label_column}
    dev = load_data(data, split="dev", **cols) if data in BUILTIN else load_data(data, **cols)

    def measurer(model):
        def measure(specs):
            table = evaluate(model, dev, tokenizer, specs)
            return {k: (r["score"], f"measured: {r['metric']} on {r['data']} (n={r['n']})") for k, r in table.items()}

        return measure

    return measurer


def run_search(
    *,
    model=None,
    device: str,
    budgets: str,
    memory=None,
    formats=None,
    quantize=None,
    seq_len: int = 128,
    threads=None,
    data=None,
    text_column="text",
    label_column="label",
    sample: int = 48,
    population: int = 40,
    generations: int = 15,
    confirm: int = 4,
    seed: int = 0,
    no_calibrate: bool = False,
    progress: bool = False,
    say=None,
) -> dict:
    t0 = time.perf_counter()
    latencies = parse_budgets(budgets)
    profile = load_profile(device, host_calibration=not no_calibrate)
    memory_mb = parse_memory(memory) if memory else profile.model_memory_mb
    fmt_, precision = search_target(profile, formats, quantize)
    threads = threads or profile.default_threads
    calibration = None
    if not no_calibrate:  # --device host on a machine its fit was not made on: calibrated once, as export does
        profile, calibration = calibrate_host(
            profile,
            formats=(fmt_,),
            quantize=precision,
            threads=threads,
            model=model,
            seq_len=seq_len,
            progress=progress,
            say=say,
        )
    for name, v, low in (("--sample", sample, 8), ("--population", population, 4), ("--generations", generations, 1)):
        if v < low:
            raise UsageError(f"{name} must be >= {low}, got {v}")
    loaded = load(model)
    measurer = None if data is None else dev_measurer(data, loaded.tokenizer, text_column, label_column)
    cfg = EvolutionConfig(population=population, generations=generations, seed=seed)
    result, est, what = search_model(
        loaded,
        lambda config: Efficiency(profile, config, fmt_, precision, seq_len, threads),
        [Limits(ms, memory_mb) for ms in latencies],
        measurer=measurer,
        cfg=cfg,
        n_sample=sample,
        confirm=confirm,
        progress=progress,
    )
    if not any(b.chosen for b in result.budgets):
        raise BudgetError("; ".join(f"{b.limits.latency_ms:g} ms: {b.why}" for b in result.budgets))
    return {
        "model": str(loaded.model_dir),
        "device": profile.name,
        "format": fmt_,
        "precision": precision,
        "seq_len": seq_len,
        "threads": threads,
        "memory_mb": memory_mb,
        "quality_estimate": what,
        "measured_configurations": len(est.measured),
        "predictor": est.predictor.to_dict(),
        "rows": rows(result, precision),
        "front": [p.to_dict() for p in result.front],
        "search_seconds": round(time.perf_counter() - t0, 1),
        "host_calibration": calibration,
    }


def rows(result: SearchResult, precision: str = "fp32") -> list[dict]:
    """One row per budget: the chosen per-layer spec, its quality and source, the grid's best, predictions."""
    out = []
    for b in result.budgets:
        ch, grid = b.chosen, b.grid
        row = {
            "budget_ms": b.limits.latency_ms,
            "memory_mb": b.limits.memory_mb,
            "fits": ch is not None,
            "why": b.why,
            "spec": ch.spec.to_dict() if ch else None,
            "key": ch.spec.key if ch else None,
            "quality": ch.quality if ch else None,
            "quality_source": bound_source(ch.quality_source, precision) if ch else None,
            "grid_quality": grid.quality if grid else None,
            "grid_spec": grid.spec.key if grid else None,
            "grid_quality_source": bound_source(grid.quality_source, precision) if grid else "no grid point fits",
            "predicted_latency_ms": ch.latency.value if ch else None,
            "predicted_latency_p90_bound_ms": ch.latency.upper if ch else None,
            "latency_source": ch.latency.source if ch else None,
            "predicted_memory_mb": ch.memory.value if ch and ch.memory else None,
            "memory_source": ch.memory.source if ch and ch.memory else None,
            "evaluated": b.evaluated,
            "measured": b.measured,
        }
        out.append(row)
    return out


def format_search(r: dict) -> str:
    lines = [
        f"search on {r['device']} ({r['format']}/{r['precision']}, seq {r['seq_len']}, {r['threads']} thread{'s' if r['threads'] != 1 else ''}, "
        f"memory <= {r['memory_mb']:g} MB) in {r['search_seconds']:g} s",
        f"quality: {r['quality_estimate']}",
        f"predictor: {r['predictor']['source']}",
        f"{'budget':>8}{'quality':>9}{'grid':>8}{'pred ms':>9}{'p90 ms':>8}{'pred MB':>9}  chosen / grid point",
    ]
    for x in r["rows"]:
        lines.append(
            f"{x['budget_ms']:>6g}ms{fmt(x['quality'], '.4f'):>9}{fmt(x['grid_quality'], '.4f'):>8}"
            f"{fmt(x['predicted_latency_ms'], '.2f'):>9}{fmt(x['predicted_latency_p90_bound_ms'], '.2f'):>8}"
            f"{fmt(x['predicted_memory_mb'], '.1f'):>9}  {x['key'] or x['why']} / {x['grid_spec'] or '-'}"
        )
    lines.append("latency and memory are predicted by the device profile's model; quality figures are measured")
    if r.get("host_calibration"):
        lines.append(f"host calibrated first (cached in {r['host_calibration']['file']})")
    return "\n".join(lines)
