"""Quick calibration of this machine for `--device host`: about a minute, cached per machine.

The shipped `host` coefficients were fitted on one machine; on another they rank candidates but
their error is unknown (the profile widens it to +-50%). Rather than refit four coefficients per
(format, precision) from scratch, as `edgebert calibrate` does from up to 10 sub-networks, this
keeps the shipped fit's shape and measures how this machine differs from it:

    p50 = a · (shipped compute ms) + b · (shipped fixed + per-layer ms)

a probe sub-network in the middle of the grid for every (format, precision) the export can choose
(dynamic-shape formats at two lengths, so compute and overhead separate), then, while the time
budget lasts, a second, held-out sub-network of another width and depth that the fit on the probe
must predict. The held-out errors become the entries' stated error; the final fit uses both.
A (format, precision) the budget left unmeasured keeps the widened guess, and the result says so.

Conversion takes most of the minute; the artifacts are timed in this process, in rounds repeated
while the budget lasts, and each figure is its quietest round's median (other jobs on a shared
machine only ever add time). How far a typical round lies above the quietest is the load noise, and
no entry states an error below it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import yaml

from edgebert.artifact import ArtifactConfig, check_seq_len
from edgebert.calibrate.full import seq_lens, stamp_machine
from edgebert.hashing import write_atomic
from edgebert.model.loaded import load
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec
from edgebert.registry import CONVERTERS
from edgebert.select.choose import allowed
from edgebert.select.costs import Costs, costs
from edgebert.select.latency import LatencyEntry, LatencyModel, nnls
from edgebert.select.profiles import DeviceProfile, host_calibration_path, host_machine, load_profile

__all__ = [
    "QuickRequest",
    "QUICK_PROBE",
    "QUICK_HELD_OUT",
    "quick_pairs",
    "most_useful_first",
    "quick_calibrate",
    "calibrate_host",
]

QUICK_PROBE = SubnetSpec(0.5, 0.5)  # measured for every (format, precision); 3 layers convert fastest
QUICK_HELD_OUT = SubnetSpec(1.0, 0.5)  # another width (the depth costs conversion time): what the fit must predict
QUICK_BUDGET_S = 60.0
QUICK_WINDOW_S = 0.15  # one timing window per artifact and round (at least QUICK_MIN_RUNS runs)
QUICK_MIN_RUNS = 5
QUICK_MAX_ROUNDS = 8
# Few held-out points: the stated error is never below this (the shipped fits' own held-out medians are 4-10%).
_ERROR_FLOOR = 0.05
_PRECISION_ORDER = {"int8": 0, "fp32": 1, "fp16": 2}  # what tight budgets pick first


@dataclass(frozen=True)
class QuickRequest:
    profile: DeviceProfile  # the host profile as loaded (its shipped coefficients are the prior)
    pairs: tuple[tuple[str, str], ...]  # (format, precision) the export can choose, most useful first
    threads: int = 1
    model: str | None = None
    seq_len: int = 128
    budget_s: float | None = None  # default QUICK_BUDGET_S
    out: str | None = None  # default: this machine's file under the cache folder


def quick_pairs(profile: DeviceProfile, formats, quantize, threads: int) -> tuple[tuple[str, str], ...]:
    """The pairs an export with these --formats/--quantize can choose whose entry at `threads` (or the
    nearest thread count, which the prediction would scale) was fitted elsewhere: int8 first."""
    fmts, precisions = allowed(profile, formats, quantize)
    pairs = []
    for f in fmts:
        for p in precisions[f]:
            found = profile.latency_model.entry(f, p, threads)
            if found and found[0].key in profile.calibration_wanted:
                pairs.append((f, p))
    return most_useful_first(pairs)


def most_useful_first(pairs) -> tuple[tuple[str, str], ...]:
    """(format, precision) pairs in the order the time budget should spend on them: int8 first (what tight
    budgets pick), then fp32, each in the given format order."""
    pairs = tuple(pairs)
    formats = list(dict.fromkeys(f for f, _ in pairs))
    return tuple(sorted(pairs, key=lambda fp: (_PRECISION_ORDER.get(fp[1], 9), formats.index(fp[0]))))


def _thread_ratio(model: LatencyModel, e: LatencyEntry, threads: int) -> float:
    """How the shipped entry's compute time scales to `threads` (1 when it was fitted at that count)."""
    return model.speedup(e.threads) / model.speedup(threads)


def _parts(model: LatencyModel, c: Costs, fmt: str, precision: str, threads: int) -> tuple[float, float]:
    """The shipped prediction split into (compute ms, overhead ms) at `threads`."""
    e, _ = model.entry(fmt, precision, threads)
    return e.compute_ms(c) * _thread_ratio(model, e, threads), e.fixed_ms + e.per_layer_ms * c.layers


def _fit_scales(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(a, b) with measured ≈ a·compute + b·overhead, relative error minimised; one shared scale when
    the points cannot tell the two apart (one point, or the same compute/overhead mix)."""
    a = np.array([[c, o] for c, o, _ in points])
    b = np.array([m for _, _, m in points])
    mixes = {round(c / (c + o), 2) for c, o, _ in points if c + o > 0}
    if len(points) >= 2 and len(mixes) >= 2 and (a[:, 1] > 0).any():
        w = 1.0 / b
        x = nnls(a * w[:, None], b * w)
        if x[0] > 0:
            return float(x[0]), float(x[1])
    s = float(np.median(b / a.sum(axis=1)))
    return s, s


def _entry(prior: LatencyEntry, a: float, b: float, threads: int, n: int, held: list[float], source: str, noise=None):
    """The shipped entry with compute scaled by `a` (thread scaling folded in) and overhead by `b`.

    Its stated error: the held-out error, never below the floor nor below the load noise measured while
    calibrating (on a busy machine a figure is only as good as its repeatability)."""
    med = max(_ERROR_FLOOR, noise or 0.0, statistics.median(held) if held else prior.expected_error)
    p90 = max(2 * med, max(held)) if held else max(2 * med, prior.error_p90)
    today = date.today().isoformat()
    method = (
        f"quick calibration: the shipped coefficients scaled by {a:.3g} (compute) and {b:.3g} (fixed + per layer), "
        f"fitted on {n} measurements, {today}"
    )
    return dataclasses.replace(
        prior,
        threads=threads,
        linear_gmacs_per_s=prior.linear_gmacs_per_s / a if a > 0 else math.inf,
        attention_gmacs_per_s=prior.attention_gmacs_per_s / a if a > 0 else math.inf,
        per_layer_ms=prior.per_layer_ms * b,
        fixed_ms=prior.fixed_ms * b,
        expected_error=round(med, 4),
        error_p90=round(p90, 4),
        provenance={
            "source": source,
            "date": today,
            "method": method,
            "n": n,
            "held_out": {"abs_rel_errors": [round(x, 4) for x in held], "n": len(held)},
            "load_noise": None if noise is None else round(noise, 4),
            "prior": prior.provenance.get("source", ""),
        },
    )


def _jobs(req: QuickRequest, model_config) -> list[tuple[SubnetSpec, str, str, tuple[int, ...]]]:
    lengths = seq_lens(req.seq_len)
    jobs = []
    for spec in (QUICK_PROBE, QUICK_HELD_OUT):
        if not spec.fits(model_config.heads, model_config.ffn):
            continue
        for fmt, prec in req.pairs:
            dynamic = CONVERTERS.get(fmt).dynamic_shapes
            jobs.append((spec, fmt, prec, lengths if dynamic and spec == QUICK_PROBE else (req.seq_len,)))
    return jobs


def _open(conv, path: Path, threads: int):
    """The artifact loaded in its runtime, in this process (a seam for the tests)."""
    return conv.load(path, threads=threads)


def _time_ms(run, seq_len: int, vocab_size: int, window_s: float, min_runs: int = QUICK_MIN_RUNS) -> list[float]:
    """Run times (ms) of one timing window after two warm-up calls; token ids below the vocabulary size."""
    rng = np.random.default_rng(seq_len)
    inputs = {
        "input_ids": rng.integers(1, max(2, min(vocab_size, 1000)), (1, seq_len), dtype=np.int64),
        "attention_mask": np.ones((1, seq_len), dtype=np.int64),
        "token_type_ids": np.zeros((1, seq_len), dtype=np.int64),
    }
    for _ in range(2):
        run(inputs)
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < window_s and len(times) < 500):
        t = time.perf_counter()
        run(inputs)
        times.append(1e3 * (time.perf_counter() - t))
    return times


def _measure(req: QuickRequest, model, progress: bool, started: float) -> tuple[dict, list, float | None]:
    """({(format, precision): [(spec key, Costs, quiet p50 ms)]}, the jobs the budget left out, load noise).

    Converting takes most of the minute; timing is cheap once an artifact is loaded. So every artifact is
    timed right after it is converted and then again in rounds over all of them while the budget lasts,
    in this process (the local runner's fresh process per call costs about a second each). A shared
    machine only ever adds time, so a figure is its quietest round's median, as benchmarks/fit_host.py and
    benchmarks/selector_bench.py measure; how much a typical round exceeds it is the load noise."""
    from tqdm import tqdm

    jobs, left, spent = _jobs(req, model.config), [], []
    budget_s = QUICK_BUDGET_S if req.budget_s is None else req.budget_s
    window = QUICK_WINDOW_S
    timed: list[tuple[tuple, int, object, list[float]]] = []  # (job, length, runtime, round medians)
    round_s = 0.0

    def one_round(rows) -> None:
        for _job, n, run, medians in rows:
            medians.append(float(np.median(_time_ms(run, n, model.config.vocab_size, window))))

    with tempfile.TemporaryDirectory(prefix="edgebert-quick-calibrate-") as tmp:
        bar = tqdm(jobs, desc="calibrating host", unit="artifact", disable=not progress, leave=False)
        for i, job in enumerate(bar):
            spec, fmt, prec, ns = job
            elapsed = time.perf_counter() - started
            if spent and elapsed + statistics.mean(spent) > budget_s:
                left = jobs[i:]
                break
            t = time.perf_counter()
            conv = CONVERTERS.get(fmt)()
            path = Path(tmp) / f"{i}-{spec.key}-{prec}{conv.suffix}"
            # Timing does not depend on which heads are kept: no rewiring.
            conv.convert(slice_model(model, spec).eval(), ArtifactConfig(fmt, prec, ns[0]), path)
            timed += [(job, n, _open(conv, path, req.threads), []) for n in ns]
            # A round over everything loaded so far: each artifact's rounds spread over the whole minute,
            # so they catch the machine's quiet stretches as a longer benchmark's would.
            one_round(timed if i % 2 == 0 else timed[::-1])
            spent.append(time.perf_counter() - t)
        bar.close()
        rounds = 0
        while timed and rounds < QUICK_MAX_ROUNDS:
            t = time.perf_counter()
            if rounds and t - started + round_s > budget_s:
                break
            # Alternate the order, so that a slow stretch does not always fall on the same artifacts.
            one_round(timed if rounds % 2 else timed[::-1])
            round_s, rounds = time.perf_counter() - t, rounds + 1
    got: dict = {}
    for (spec, fmt, prec, _), n, _, medians in timed:
        got.setdefault((fmt, prec), []).append((spec.key, costs(model.config, n, spec), min(medians)))
    excess = [statistics.median(m) / min(m) - 1 for *_, m in timed if len(m) > 1]
    return got, left, (statistics.median(excess) if excess else None)


def quick_calibrate(req: QuickRequest, progress: bool = True) -> dict:
    """Measure, fit, cache; returns what was done (the file, the held-out error, what was left out)."""
    started = time.perf_counter()
    prior = load_profile(req.profile.path or req.profile.name, host_calibration=False).latency_model
    model = load(req.model).full
    check_seq_len(req.seq_len, model.config.max_position_embeddings)
    got, left, noise = _measure(req, model, progress, started)
    cpu_model, cores = host_machine()
    today = date.today().isoformat()
    n_all = sum(len(v) for v in got.values())
    source = (
        f"quick calibration on this machine ({cpu_model}, {cores} cores): {n_all} measurements, each the "
        f"quietest median of its {QUICK_WINDOW_S:g} s timing rounds (in this process), {today}"
    )
    held_errors, fitted = {}, {}
    for (fmt, prec), rows in got.items():
        pts = [(*_parts(prior, c, fmt, prec, req.threads), p50) for _, c, p50 in rows]
        probe = [p for p, (key, _, _) in zip(pts, rows) if key == QUICK_PROBE.key]
        held = [p for p, (key, _, _) in zip(pts, rows) if key != QUICK_PROBE.key]
        if probe and held:
            a, b = _fit_scales(probe)
            held_errors[(fmt, prec)] = [abs(a * c + b * o - m) / m for c, o, m in held]
        fitted[(fmt, prec)] = (_fit_scales(pts), len(pts))
    pooled = [x for errs in held_errors.values() for x in errs]
    entries = []
    for (fmt, prec), ((a, b), n) in fitted.items():
        # A pair without its own held-out point is judged by the others' (the same method on this machine).
        held = held_errors.get((fmt, prec)) or pooled
        e = prior.entry(fmt, prec, req.threads)[0]
        entries.append(_entry(e, a * _thread_ratio(prior, e, req.threads), b, req.threads, n, held, source, noise))
    out = Path(req.out) if req.out else host_calibration_path(cpu_model, cores)
    override = stamp_machine(
        LatencyModel(
            entries=_kept(out, entries) + tuple(entries),
            parallel_efficiency=prior.parallel_efficiency,
            device=req.profile.name,
            source=source,
        )
    )
    _write(out, override, cpu_model, cores, time.perf_counter() - started)
    return {
        "file": str(out),
        "machine": {"cpu_model": cpu_model, "cores": cores},
        "seconds": round(time.perf_counter() - started, 1),
        "calibrated": [f"{f}/{p}" for f, p in fitted],
        "not_calibrated": sorted({f"{f}/{p}" for _, f, p, _ in left} - {f"{f}/{p}" for f, p in fitted}),
        "held_out_median_error": statistics.median(pooled) if pooled else None,
        "held_out_max_error": max(pooled) if pooled else None,
        "held_out_n": len(pooled),
        "n_measurements": n_all,
        "load_noise": None if noise is None else round(noise, 4),
    }


def _kept(path: Path, entries: list[LatencyEntry]) -> tuple[LatencyEntry, ...]:
    """Entries of an earlier quick calibration of this machine that this one did not measure again."""
    if not path.is_file():
        return ()
    earlier = yaml.safe_load(path.read_text()) or {}
    new = {e.key for e in entries}
    kept = []
    for d in (earlier.get("latency_model") or {}).get("entries") or []:
        e = LatencyEntry(**d)
        if e.key not in new:
            kept.append(e)
    return tuple(kept)


def _write(path: Path, model: LatencyModel, cpu_model: str, cores: int, seconds: float) -> None:
    doc = {
        "name": "host",
        "machine": {"cpu_model": cpu_model, "cores": cores},
        "calibrated": {"tool": "edgebert quick calibration", "date": date.today().isoformat(), "seconds": seconds},
        "latency_model": model.to_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, yaml.safe_dump(doc, sort_keys=False))


def calibrate_host(
    profile: DeviceProfile,
    *,
    formats=None,
    quantize=None,
    threads: int | None = None,
    model: str | None = None,
    seq_len: int = 128,
    progress: bool = True,
    say=None,
) -> tuple[DeviceProfile, dict | None]:
    """`--device host` on a machine its fit was not made on: calibrate once (cached), then reload the profile.

    Returns the profile to use and what the calibration did (None when none was needed)."""
    threads = threads or profile.default_threads
    pairs = quick_pairs(profile, formats, quantize, threads) if profile.calibration_wanted else ()
    if not pairs:
        return profile, None
    req = QuickRequest(
        profile=profile,
        pairs=pairs,
        threads=threads,
        model=model,
        seq_len=seq_len,
    )
    if say:
        say(
            f"host: the shipped latency model was fitted on another machine; calibrating this one "
            f"({', '.join(f'{f}/{p}' for f, p in req.pairs)}; at most {req.budget_s or QUICK_BUDGET_S:g} s, once: the result is cached)"
        )
    done = quick_calibrate(req, progress=progress)
    return load_profile(profile.path or profile.name), done
