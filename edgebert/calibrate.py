"""calibrate: measure a spread of sub-networks on a target, refit the device's latency model,
report the held-out error, and write a profile override (never the shipped profile)."""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from .artifact import ArtifactConfig
from .costs import costs
from .errors import UsageError
from .registry import CONVERTERS
from .spec import SubnetSpec

__all__ = ["CalibrateRequest", "CALIBRATION_SPECS", "calibrate"]

# ≤ 10 sub-networks spread over the grid's widths and depths; every 4th (by size) is held out.
CALIBRATION_SPECS = tuple(SubnetSpec(w, d) for w, d in (
    (1.0, 1.0), (0.75, 1.0), (0.5, 1.0), (0.25, 1.0), (1.0, 0.5), (0.75, 0.75), (0.5, 0.5), (0.25, 0.5),
    (1.0, 0.75), (0.5, 0.75),
))


@dataclass(frozen=True)
class CalibrateRequest:
    device: str
    target: str = "local"
    model: str | None = None
    formats: tuple[str, ...] | None = None  # default: the profile's first (preferred) format
    precisions: tuple[str, ...] = ("fp32", "int8")
    seq_len: int = 128
    threads: int | None = None
    runs: int = 30
    out: str | None = None  # default: <config dir>/profiles/<device>.yaml
    options: object = None  # runners.RunnerOptions


def _plan(req: CalibrateRequest, profile) -> list[tuple[str, str]]:
    formats = req.formats or (profile.formats[0],)
    plan = []
    for f in formats:
        conv = CONVERTERS.get(f)
        for p in req.precisions:
            if p in conv.precisions:
                plan.append((f, p))
    if not plan:
        raise UsageError(f"none of {','.join(formats)} can produce {','.join(req.precisions)}; pick other --formats")
    return plan


def _measure_all(req, profile, model, plan, threads, progress) -> list:
    """Export every (spec, format, precision) into a temp dir and measure it on the target."""
    from tqdm import tqdm

    from .latency import Measurement
    from .runners import BenchConfig, run_bench
    from .slicing import slice_model

    jobs = [(s, f, p) for s in CALIBRATION_SPECS for f, p in plan]
    out = []
    with tempfile.TemporaryDirectory(prefix="edgebert-calibrate-") as tmp:
        for i, (spec, fmt, prec) in enumerate(tqdm(jobs, desc=f"calibrate {profile.name}", unit="artifact",
                                                   disable=not progress, leave=False)):
            try:
                spec.check_fits(model.config.heads, model.config.ffn)
            except Exception:
                continue
            conv = CONVERTERS.get(fmt)()
            path = Path(tmp) / f"{i}-{spec.key}-{prec}{conv.suffix}"
            # Timing does not depend on which heads are kept, so no rewiring is needed here.
            conv.convert(slice_model(model, spec).eval(), ArtifactConfig(fmt, prec, req.seq_len), path)
            r = run_bench(req.target, path, BenchConfig(threads=threads, runs=req.runs, seq_len=req.seq_len),
                          req.options)
            out.append((Measurement(costs(model.config, req.seq_len, spec), fmt, prec, threads, r.p50_ms,
                                    label=spec.key), r))
            path.unlink()
    return out


def _rel_errors(model, ms) -> list[float]:
    errs = []
    for m in ms:
        pred = model.predict_latency(m.costs, m.format, m.precision, m.threads)
        errs.append(abs(pred.value - m.p50_ms) / m.p50_ms)
    return errs


def _p90(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def _fit_with_holdout(measurements, device: str, source: str):
    from .latency import fit

    by_group: dict[tuple, list] = {}
    for m in measurements:
        by_group.setdefault((m.format, m.precision), []).append(m)
    train, held = [], []
    for ms in by_group.values():
        ms = sorted(ms, key=lambda m: m.costs.total_macs)
        for j, m in enumerate(ms):
            (held if j % 4 == 2 and len(ms) > 5 else train).append(m)
    trial = fit(train, device=device, source=source)
    held_err = _rel_errors(trial, held) if held else []
    final = fit(measurements, device=device, source=source)
    if held_err:
        # Predictions promise the held-out error (what an unseen sub-network will see), not the fit's own.
        med, p90 = statistics.median(held_err), _p90(held_err)
        final = dataclasses.replace(final, entries=tuple(
            dataclasses.replace(e, expected_error=max(e.expected_error, med), error_p90=max(e.error_p90, p90))
            for e in final.entries))
    return final, trial, train, held, held_err


def _write_override(path: Path, profile, model, target_desc: str, full: bool) -> Path:
    """full=False: an override (name + latency_model) in the config dir, merged into the shipped profile
    on load; full=True (--out FILE): a complete profile to pass as --device FILE."""
    doc = yaml.safe_load(Path(profile.path).read_text()) if full else {"name": profile.name}
    doc["calibrated"] = {"target": target_desc, "date": date.today().isoformat(), "tool": "edgebert calibrate"}
    doc["latency_model"] = model.to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)
    return path


def calibrate(req: CalibrateRequest, progress: bool = True) -> dict:
    from .export import load
    from .profiles import config_dir, load_profile

    from .artifact import MIN_SEQ_LEN
    from .runners import parse_target

    parse_target(req.target)  # a bad target fails before minutes of exporting
    profile = load_profile(req.device)
    plan = _plan(req, profile)
    threads = req.threads or profile.default_threads
    if req.target == "local":
        threads = min(threads, os.cpu_count() or 1)
    model = load(req.model).full
    if not MIN_SEQ_LEN <= req.seq_len <= model.config.max_position_embeddings:
        raise UsageError(f"--seq-len {req.seq_len} is out of range: this model takes "
                         f"{MIN_SEQ_LEN}..{model.config.max_position_embeddings} tokens")
    pairs = _measure_all(req, profile, model, plan, threads, progress)
    if not pairs:
        raise UsageError("no calibration sub-network fits this model; it is too small to calibrate on")
    measurements = [m for m, _ in pairs]
    where = pairs[0][1]
    target_desc = f"{where.where} ({where.device}, {where.runtime} {where.runtime_version})"
    source = (f"calibrated: fitted on {len(measurements)} measurements on {target_desc}, "
              f"{req.runs} runs each, {date.today().isoformat()}")
    final, trial, train, held, held_err = _fit_with_holdout(measurements, profile.name, source)
    out = Path(req.out) if req.out else config_dir() / "profiles" / f"{profile.name}.yaml"
    if profile.path and out.resolve() == Path(profile.path).resolve():
        raise UsageError(f"--out {out} is the shipped profile itself; calibration writes an override elsewhere")
    _write_override(out, profile, final, target_desc, full=bool(req.out))
    rows = []
    for m in measurements:
        pred = trial.predict_latency(m.costs, m.format, m.precision, m.threads).value
        rows.append({"spec": m.label, "format": m.format, "precision": m.precision, "threads": m.threads,
                     "measured_p50_ms": m.p50_ms, "predicted_ms": pred, "rel_error": abs(pred - m.p50_ms) / m.p50_ms,
                     "held_out": m in held})
    use = (f"the selector uses it for --device {profile.name} from now on" if not req.out
           else f"use it with --device {out}")
    return {"device": profile.name, "target": target_desc, "override": str(out), "use": use, "rows": rows,
            "held_out_median_error": statistics.median(held_err) if held_err else None,
            "held_out_p90_error": _p90(held_err) if held_err else None,
            "fit_median_error": statistics.median(_rel_errors(trial, train)),
            "n_measurements": len(measurements)}
