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

from edgebert.artifact import MIN_SEQ_LEN, ArtifactConfig, check_seq_len
from edgebert.errors import UsageError
from edgebert.hashing import write_atomic
from edgebert.model.loaded import load
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec
from edgebert.registry import CONVERTERS
from edgebert.runners import BenchConfig, RunnerOptions, Target, run_bench
from edgebert.runners.results import model_warning
from edgebert.select.costs import costs
from edgebert.select.latency import Measurement, fit
from edgebert.select.profiles import DeviceProfile, config_dir, host_machine

__all__ = ["CalibrateRequest", "CALIBRATION_SPECS", "calibrate", "seq_lens", "stamp_machine"]

# ≤ 10 sub-networks spread over the grid's widths and depths; every 3rd (by size, from the 2nd) is held out,
# at both sequence lengths, so the held-out error is that of sub-networks the fit never saw.
CALIBRATION_SPECS = tuple(
    SubnetSpec(w, d)
    for w, d in (
        (1.0, 1.0),
        (0.75, 1.0),
        (0.5, 1.0),
        (0.25, 1.0),
        (1.0, 0.5),
        (0.75, 0.75),
        (0.5, 0.5),
        (0.25, 0.5),
        (1.0, 0.75),
        (0.5, 0.75),
    )
)


@dataclass(frozen=True)
class CalibrateRequest:
    profile: DeviceProfile
    target: Target
    model: str | None = None
    formats: tuple[str, ...] | None = None  # default: the profile's first (preferred) format
    precisions: tuple[str, ...] = ("fp32", "int8")
    seq_len: int = 128
    threads: int | None = None
    runs: int = 30
    out: str | None = None  # default: <config dir>/profiles/<device>.yaml
    options: RunnerOptions = RunnerOptions()  # the profile fills in what is not set
    force: bool = False  # calibrate even when the target reports a model the profile was not made for


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


def seq_lens(seq_len: int) -> tuple[int, ...]:
    """The lengths measured: the requested one and half of it (at least MIN_SEQ_LEN).

    Attention costs grow with the square of the length, projections and FFN linearly: at one
    length the two are proportional across sub-networks of one depth and the fit cannot tell them
    apart, so a prediction at any other length would be a guess.
    """
    return tuple(dict.fromkeys((seq_len, max(MIN_SEQ_LEN, seq_len // 2))))


def _measure_all(req, profile, model, plan, threads, progress) -> list:
    """Export every (spec, format, precision) into a temp dir and measure it on the target at both lengths.

    A dynamic-shape artifact is converted once and measured at each length; a static-shape one
    (TFLite: the length is baked in) is converted once per length, and at the shorter length only
    for every other sub-network by size (conversions take seconds each; five sub-networks at two
    lengths identify the attention term).
    """
    from tqdm import tqdm

    lengths = seq_lens(req.seq_len)
    specs = [s for s in CALIBRATION_SPECS if s.fits(model.config.heads, model.config.ffn)]
    # Static-shape formats at the shorter length: every other sub-network by size, smallest first.
    both = set(sorted(specs, key=lambda s: costs(model.config, req.seq_len, s).total_macs)[::2])
    jobs = []  # (spec, format, precision, lengths of one file: the file's own first)
    for spec in specs:
        for fmt, prec in plan:
            if CONVERTERS.get(fmt).dynamic_shapes:
                jobs.append((spec, fmt, prec, lengths))
            else:
                jobs += [(spec, fmt, prec, (n,)) for n in lengths if n == req.seq_len or spec in both]
    out = []
    with tempfile.TemporaryDirectory(prefix="edgebert-calibrate-") as tmp:
        for i, (spec, fmt, prec, ns) in enumerate(
            tqdm(jobs, desc=f"calibrate {profile.name}", unit="artifact", disable=not progress, leave=False)
        ):
            conv = CONVERTERS.get(fmt)()
            path = Path(tmp) / f"{i}-{spec.key}-{prec}-{ns[0]}{conv.suffix}"
            # Timing does not depend on which heads are kept, so no rewiring is needed here.
            conv.convert(slice_model(model, spec).eval(), ArtifactConfig(fmt, prec, ns[0]), path)
            for n in ns:
                r = run_bench(req.target, path, BenchConfig(threads=threads, runs=req.runs, seq_len=n), req.options)
                if not out:
                    _check_device(req, profile, r.device)  # before minutes more of measuring the wrong device
                out.append((Measurement(costs(model.config, n, spec), fmt, prec, threads, r.p50_ms, label=spec.key), r))
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


def _held_out_specs(measurements) -> set[str]:
    """Every 3rd sub-network by size (the 2nd, 5th, 8th), all its lengths, formats and precisions with it."""
    size: dict[str, int] = {}
    for m in measurements:
        size[m.label] = max(size.get(m.label, 0), m.costs.total_macs)
    ranked = sorted(size, key=size.get)
    return {k for j, k in enumerate(ranked) if j % 3 == 1} if len(ranked) > 5 else set()


def _fit_with_holdout(measurements, device: str, source: str, parallel_efficiency: float | None = None):
    """Fit on all but the held-out sub-networks (to judge), then on all (to write).

    `parallel_efficiency`: kept when every measurement has one thread count (fit() cannot infer it
    then and would write its default): the device's own figure still scales other thread counts.
    """

    held_specs = _held_out_specs(measurements)
    train = [m for m in measurements if m.label not in held_specs]
    held = [m for m in measurements if m.label in held_specs]
    one_thread_count = len({m.threads for m in measurements}) == 1
    keep = parallel_efficiency is not None and one_thread_count

    def fitted(ms):
        model = fit(ms, device=device, source=source)
        return dataclasses.replace(model, parallel_efficiency=parallel_efficiency) if keep else model

    trial = fitted(train)
    held_err = _rel_errors(trial, held) if held else []
    final = fitted(measurements)
    if held_err:
        # Predictions promise the held-out error (what an unseen sub-network will see), not the fit's own.
        med, p90 = statistics.median(held_err), _p90(held_err)
        final = dataclasses.replace(
            final,
            entries=tuple(
                dataclasses.replace(e, expected_error=max(e.expected_error, med), error_p90=max(e.error_p90, p90))
                for e in final.entries
            ),
        )
    return final, trial, train, held, held_err


def stamp_machine(model):
    """Entries measured on this machine say which one (CPU model and cores, separate fields), so that
    `host` can tell whether they hold where it is loaded."""
    cpu_model, cores = host_machine()
    return dataclasses.replace(
        model,
        entries=tuple(
            dataclasses.replace(e, provenance={**e.provenance, "cpu_model": cpu_model, "cores": cores})
            for e in model.entries
        ),
    )


def _write_override(path: Path, profile, model, target_desc: str, full: bool) -> Path:
    """full=False: an override (name + latency_model) in the config dir, merged into the shipped profile
    on load; full=True (--out FILE): a complete profile to pass as --device FILE."""
    doc = yaml.safe_load(Path(profile.path).read_text()) if full else {"name": profile.name}
    doc["calibrated"] = {"target": target_desc, "date": date.today().isoformat(), "tool": "edgebert calibrate"}
    doc["latency_model"] = model.to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, yaml.safe_dump(doc, sort_keys=False))


def _check_device(req: CalibrateRequest, profile: DeviceProfile, device: str) -> None:
    """An override says "this is how fast DEVICE is": refuse to write another device's speed under its name."""
    why = model_warning(device, profile.device_models)
    if why and not req.force and not req.out:
        raise UsageError(
            f"{why}; calibrating would write its speed as {profile.name}'s. Point --target at a {profile.name}, "
            f"write a profile of its own with --out FILE, or pass --force if it is a variant the profile does not list"
        )


def calibrate(req: CalibrateRequest, progress: bool = True) -> dict:
    profile = req.profile
    req = dataclasses.replace(
        req, options=req.options.with_device_defaults(profile.big_core_mask, profile.device_models)
    )
    plan = _plan(req, profile)
    threads = req.threads or profile.default_threads
    if req.target.kind == "local":
        threads = min(threads, os.cpu_count() or 1)
    model = load(req.model).full
    check_seq_len(req.seq_len, model.config.max_position_embeddings)
    pairs = _measure_all(req, profile, model, plan, threads, progress)
    if not pairs:
        raise UsageError("no calibration sub-network fits this model; it is too small to calibrate on")
    measurements = [m for m, _ in pairs]
    where = pairs[0][1]
    target_desc = f"{where.where} ({where.device}, {where.runtime} {where.runtime_version})"
    n_specs = len({m.label for m in measurements})
    lengths = sorted({m.seq_len for m in measurements}, reverse=True)
    source = (
        f"calibrated: fitted on {len(measurements)} measurements on {target_desc} ({n_specs} sub-networks, "
        f"seq {'/'.join(map(str, lengths))}), {req.runs} runs each, {date.today().isoformat()}"
    )
    final, trial, train, held, held_err = _fit_with_holdout(
        measurements, profile.name, source, profile.latency_model.parallel_efficiency
    )
    out = Path(req.out) if req.out else config_dir() / "profiles" / f"{profile.name}.yaml"
    if profile.path and out.resolve() == Path(profile.path).resolve():
        raise UsageError(f"--out {out} is the shipped profile itself; calibration writes an override elsewhere")
    if req.target.kind == "local":
        final = stamp_machine(final)
    _write_override(out, profile, final, target_desc, full=bool(req.out))
    rows = []
    for m in measurements:
        pred = trial.predict_latency(m.costs, m.format, m.precision, m.threads).value
        rows.append(
            {
                "spec": m.label,
                "seq_len": m.seq_len,
                "format": m.format,
                "precision": m.precision,
                "threads": m.threads,
                "measured_p50_ms": m.p50_ms,
                "predicted_ms": pred,
                "rel_error": abs(pred - m.p50_ms) / m.p50_ms,
                "held_out": m in held,
            }
        )
    use = (
        f"the selector uses it for --device {profile.name} from now on"
        if not req.out
        else f"use it with --device {out}"
    )
    return {
        "device": profile.name,
        "target": target_desc,
        "override": str(out),
        "use": use,
        "rows": rows,
        "held_out_median_error": statistics.median(held_err) if held_err else None,
        "held_out_p90_error": _p90(held_err) if held_err else None,
        "fit_median_error": statistics.median(_rel_errors(trial, train)),
        "n_measurements": len(measurements),
        "n_subnetworks": n_specs,
        "seq_lens": lengths,
        "parallel_efficiency": final.parallel_efficiency,
    }
