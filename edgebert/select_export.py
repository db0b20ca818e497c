"""`edgebert export --device D --budget B`: profile → candidates → select → export → measure → report."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from .costs import costs
from .errors import UsageError
from .export import ExportConfig, Loaded, export, load
from .registry import CONVERTERS

__all__ = ["DeviceExport", "device_export", "run_device_export", "choose", "quality_for"]

# Quality cost charged to quantized candidates when the quality table holds fp32 figures only.
# From measured parity on MiniLM (verify.py, seq 128): int8 mean cosine 0.995-0.996 to fp32,
# fp16 1.000. Without it int8 and fp32 of one sub-network tie and the faster always wins.
PRECISION_PENALTY = {"int8": 0.005, "fp16": 0.0005}


def quality_for(loaded: Loaded, progress: bool) -> tuple[dict, str]:
    """The model's measured quality table, or a proxy measured on calibration text (and say so).

    Kept on `loaded`, so a build of many entries reads or measures it once."""
    if loaded.quality is None:
        loaded.quality = _quality(loaded, progress)
    return loaded.quality


def _quality(loaded: Loaded, progress: bool) -> tuple[dict, str]:
    from .quality import read_table

    table = read_table(loaded.model_dir) if (loaded.model_dir / "quality.json").exists() else {}
    if table:
        out = {}
        for key, row in table.items():
            out[key] = (float(row["score"]), f"measured: {row.get('metric', 'score')} on {row.get('data', 'dev set')}"
                                             f" (quality.json, n={row.get('n', '?')})")
        return out, "the model's quality table (quality.json, written by `edgebert train`/`evaluate`)"
    return _proxy(loaded, progress)


# The proxy is a property of the weights, not of the machine: computed once per model and kept in the
# user's cache (17 s for MiniLM on 1 thread, rewiring included: `--seed-proxy` below). Bump when
# rewiring, proxy_quality or the calibration texts change what it computes.
PROXY_VERSION = 1
PROXY_SEQ_LEN = 128


def _proxy_texts() -> list[str]:
    from .calibration import calibration_texts

    return calibration_texts()[64:]  # held out from the texts rewiring used


def _proxy(loaded: Loaded, progress: bool) -> tuple[dict, str]:
    from .selector import proxy_quality
    from .spec import DEPTHS, WIDTHS, SubnetSpec

    texts = _proxy_texts()
    what = (f"proxy (this model has no quality.json): mean cosine of each sub-network's embedding to the full "
            f"model's on {len(texts)} held-out calibration texts")
    key = _proxy_key(loaded, texts)
    cached = _read_proxy(key)
    if cached is not None:
        table, when, where = cached
        return table, f"{what}; computed {when} for these exact weights, {where}"
    model, _ = loaded.for_slicing(SubnetSpec(0.5, 1.0), True, progress)  # the rewired model, as exported
    specs = [SubnetSpec(w, d) for w in WIDTHS for d in DEPTHS]
    valid = [s for s in specs if s.fits(model.config.heads, model.config.ffn)]
    table = proxy_quality(model, loaded.tokenizer, texts, valid, seq_len=PROXY_SEQ_LEN)
    _write_proxy(key, table)
    return table, what


def proxy_cache_dir() -> Path:
    """$EDGEBERT_CACHE_DIR, else $XDG_CACHE_HOME/edgebert, else ~/.cache/edgebert."""
    base = os.environ.get("EDGEBERT_CACHE_DIR")
    if base:
        return Path(base) / "quality-proxy"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgebert" / "quality-proxy"


def _proxy_key(loaded: Loaded, texts: list[str]) -> str:
    import hashlib
    import json

    from .export import weights_sha256

    parts = {"version": PROXY_VERSION, "weights": weights_sha256(loaded.model_dir), "seq_len": PROXY_SEQ_LEN,
             "config": loaded.full.config.to_dict(), "texts": hashlib.sha256("\n".join(texts).encode()).hexdigest()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


# Tables edgebert ships for the built-in default model, so that the first export needs no proxy run.
# Regenerate with `python -m edgebert.select_export --seed-proxy` after changing what the key covers.
_SHIPPED_PROXY = Path(__file__).parent / "data" / "quality-proxy"


def _read_proxy(key: str) -> tuple[dict, str, str] | None:
    """(the cached or shipped table, when it was computed, where it was read), or None when there is
    none or it is unreadable (then it is simply measured again)."""
    for folder, where in ((proxy_cache_dir(), "read from the cache"), (_SHIPPED_PROXY, "shipped with edgebert")):
        found = _read_proxy_file(folder / f"{key}.json", key)
        if found is not None:
            return (*found, where)
    return None


def _read_proxy_file(path: Path, key: str) -> tuple[dict, str] | None:
    import json

    from .spec import SubnetSpec

    try:
        data = json.loads(path.read_text())
        table = {k: (float(score), str(source)) for k, (score, source) in data["table"].items()}
        for k in table:
            SubnetSpec.from_key(k)
        if data["key"] != key:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return table, str(data.get("computed_at", "in an earlier run"))


def _seed_proxy() -> Path:
    """Measure the default model's proxy table and store it in edgebert/data (maintainers)."""
    from .export import load

    loaded = load(None)
    _proxy(loaded, progress=True)
    key = _proxy_key(loaded, _proxy_texts())
    src = proxy_cache_dir() / f"{key}.json"
    _SHIPPED_PROXY.mkdir(parents=True, exist_ok=True)
    (_SHIPPED_PROXY / src.name).write_text(src.read_text())
    return _SHIPPED_PROXY / src.name


def _write_proxy(key: str, table: dict) -> None:
    """Best effort: an unwritable cache only costs the next run the same measurement."""
    import json

    from .manifest import now_iso

    folder = proxy_cache_dir()
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"key": key, "version": PROXY_VERSION, "computed_at": now_iso(),
                                   "table": {k: list(v) for k, v in table.items()}}, indent=1) + "\n")
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _allowed(profile, formats, quantize) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    formats = tuple(formats) if formats else tuple(f for f in profile.formats if f in CONVERTERS.names())
    if not formats:
        raise UsageError(f"profile {profile.name} prefers no format edgebert can write; pass --formats")
    precisions = {}
    for f in formats:
        have = CONVERTERS.get(f).precisions
        precisions[f] = tuple(p for p in have if quantize in (None, p))
    if not any(precisions.values()):
        raise UsageError(f"no format among {', '.join(formats)} can produce {quantize}")
    return formats, precisions


def choose(loaded: Loaded, profile, budget_ms: float, memory_mb: float, formats, quantize, seq_len: int, threads: int,
           progress: bool):
    """Enumerate, predict and select; returns (Selection, quality source)."""
    from .selector import enumerate_candidates, select

    quality, quality_source = quality_for(loaded, progress)
    formats, precisions = _allowed(profile, formats, quantize)
    cands = []
    for f in formats:
        if precisions[f]:
            cands += enumerate_candidates(loaded.full.config, profile, [f], precisions[f], seq_len, quality,
                                          threads=threads, precision_penalty=PRECISION_PENALTY)
    return select(cands, budget_ms, memory_mb), quality_source


def _selection_section(selection, quality_source: str) -> dict:
    cands = []
    for v in selection.verdicts:
        c = v.candidate
        if c.latency is None or c.quality is None:
            continue
        cands.append({"spec": c.spec.key, "width": c.spec.width, "depth": c.spec.depth, "format": c.format,
                      "precision": c.precision, "predicted_latency_ms": c.latency.value,
                      "predicted_latency_p90_bound_ms": c.latency.upper,
                      "predicted_memory_mb": c.memory.value if c.memory else 0.0, "quality": c.quality,
                      "fits": v.fits, "why": v.reason})
    ch = selection.chosen
    chosen = next(x for x in cands if x["spec"] == ch.spec.key and x["format"] == ch.format
                  and x["precision"] == ch.precision)
    n_fit = sum(x["fits"] for x in cands)
    why = (f"highest quality ({ch.quality:.4f}) among the {n_fit} of {len(cands)} candidates whose predicted p90 "
           f"bound fits {selection.budget_ms:g} ms and {selection.memory_mb:g} MB (ties go to the faster)")
    return {"chosen": chosen, "why": why, "candidates": cands, "quality_source": quality_source,
            "latency_source": ch.latency.source}


def _predictor(profile, full_config, seq_len: int, threads: int):
    """Predicted latency/memory for every artifact, in the manifest's `predicted` form."""
    def predict(entry: dict, spec) -> None:
        c = costs(full_config, seq_len, spec)
        lat = profile.latency_model.predict_latency(c, entry["format"], entry["precision"], threads)
        mem = profile.latency_model.predict_memory(c, entry["format"], entry["precision"])
        entry["latency"]["predicted"] = lat.to_dict() if lat else None
        entry["memory"]["predicted"] = mem.to_dict() if mem else None
    return predict


@dataclass(frozen=True)
class DeviceExport:
    """One `export --device` request (also what `edgebert build` runs per matrix entry)."""

    device: str
    budget: str | None = None  # "40ms"; None: the profile's default
    memory: str | None = None  # "150MB"; None: the profile's model_memory_mb
    model: str | None = None
    formats: tuple[str, ...] | None = None  # None: the chosen candidate's format
    quantize: str | None = None  # None: the selector chooses
    seq_len: int = 128
    threads: int | None = None
    out: str | None = None
    force: bool = False
    target: str | None = None
    measure: bool = True
    runs: int = 50


def _measurer(req: DeviceExport, profile, spec, predict, seq_len: int, threads: int):
    from .measure import record
    from .runners import BenchConfig, RunnerOptions, run_bench

    local_threads = min(threads, os.cpu_count() or 1)
    targets = ["local"] if req.measure else []
    if req.target:
        targets.append(req.target)
    options = RunnerOptions(taskset_mask=profile.big_core_mask, expected_models=profile.device_models)

    def measure(entry: dict, path: Path) -> None:
        predict(entry, spec)
        for t in targets:
            n = local_threads if t == "local" else threads
            record(entry, run_bench(t, path, BenchConfig(threads=n, runs=req.runs, seq_len=seq_len), options).to_dict())
    return measure


def run_device_export(args, progress: bool = True) -> dict:
    from .commands import export_summary

    if args.width is not None or args.depth is not None:
        raise UsageError("give either --width/--depth or --device/--budget, not both (the selector picks the spec)")
    req = DeviceExport(device=args.device, budget=args.budget, memory=args.memory, model=args.model,
                       formats=args.formats, quantize=args.quantize, seq_len=args.seq_len, threads=args.threads,
                       out=args.out, force=args.force, target=args.target, measure=not args.no_measure, runs=args.runs)
    manifest, out = device_export(req, progress=progress)
    return export_summary(manifest, out)


def device_export(req: DeviceExport, progress: bool = True, loaded: Loaded | None = None) -> tuple[dict, str]:
    """Select the sub-network for req.device within its budgets and export it; returns (manifest, out folder).

    Raises BudgetError (exit 3) when nothing fits, ParityError (exit 4) when an artifact fails.
    """
    from .profiles import load_profile, parse_latency, parse_memory
    from .report import write_report

    profile = load_profile(req.device)
    budget_ms = parse_latency(req.budget) if req.budget else profile.default_budget_ms
    memory_mb = parse_memory(req.memory) if req.memory else profile.model_memory_mb
    threads = req.threads or profile.default_threads
    loaded = loaded or load(req.model)
    selection, quality_source = choose(loaded, profile, budget_ms, memory_mb, req.formats, req.quantize,
                                       req.seq_len, threads, progress)
    ch = selection.chosen
    formats = tuple(req.formats) if req.formats else (ch.format,)
    out = req.out or f"out/{profile.name}-{budget_ms:g}ms"
    cfg = ExportConfig(out=out, model=req.model, spec=ch.spec, formats=formats, precision=ch.precision,
                       seq_len=req.seq_len, force=req.force, threads=min(threads, os.cpu_count() or 1))
    extra = {
        "device": profile.to_dict(),
        "budget": {"latency_ms": budget_ms, "memory_mb": memory_mb, "threads": threads, "seq_len": req.seq_len,
                   "latency_from": "--budget" if req.budget else "profile default",
                   "memory_from": "--memory" if req.memory else "profile model_memory_mb"},
        "selection": _selection_section(selection, quality_source),
    }
    predict = _predictor(profile, loaded.full.config, req.seq_len, threads)
    measure = _measurer(req, profile, ch.spec, predict, req.seq_len, threads)
    manifest = export(cfg, progress=progress, loaded=loaded, extra_manifest=extra, measure=measure,
                      finish=lambda folder, m: write_report(m, folder))
    return manifest, out


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--seed-proxy"]:
        sys.exit("usage: python -m edgebert.select_export --seed-proxy   (writes the default model's proxy table "
                 "into edgebert/data/quality-proxy)")
    print(f"wrote {_seed_proxy()}")
