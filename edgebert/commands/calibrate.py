"""`edgebert calibrate --device D --target T`."""

from __future__ import annotations

from edgebert.calibrate import CalibrateRequest, QuickRequest, calibrate, quick_calibrate
from edgebert.calibrate.quick import most_useful_first
from edgebert.commands.text import fmt
from edgebert.errors import UsageError
from edgebert.registry import CONVERTERS
from edgebert.runners import RunnerOptions, parse_target
from edgebert.select.profiles import load_profile

__all__ = ["run_calibrate", "format_calibration"]


def run_calibrate(
    *,
    device,
    target=None,
    model=None,
    formats=None,
    precisions="fp32,int8",
    seq_len=128,
    threads=None,
    runs=30,
    out=None,
    options: RunnerOptions | None = None,
    force=False,
    quick=False,
    progress=True,
) -> dict:
    profile = load_profile(device)
    if quick:
        return _quick(profile, target, model, formats, precisions, seq_len, threads, out, progress)
    if target is None:
        if profile.reach != "local":
            raise UsageError(
                f"{profile.name} is reached over {profile.reach}: pass --target "
                f"{'adb://SERIAL' if profile.reach == 'adb' else 'ssh://user@host'} (measuring this machine would "
                f"write this machine's speed as the {profile.name}'s)"
            )
        target = "local"
    parsed_target = parse_target(target)  # a bad target fails before minutes of exporting
    req = CalibrateRequest(
        profile=profile,
        force=force,
        target=parsed_target,
        model=model,
        formats=formats,
        precisions=tuple(x.strip() for x in precisions.split(",") if x.strip()),
        seq_len=seq_len,
        threads=threads,
        runs=runs,
        out=out,
        options=options or RunnerOptions(),
    )
    return calibrate(req, progress=progress)


def _quick(profile, target, model, formats, precisions, seq_len, threads, out, progress) -> dict:
    if not profile.path or parse_target(target or "local").kind != "local" or profile.reach != "local":
        raise UsageError("--quick calibrates this machine for --device host; for other devices leave it out")
    precs = [x.strip() for x in precisions.split(",") if x.strip()]
    pairs = most_useful_first(
        (f, p)
        for f in formats or profile.formats
        for p in precs
        if p in CONVERTERS.get(f).precisions and profile.latency_model.covers(f, p)
    )
    if not pairs:
        raise UsageError(f"the {profile.name} profile has no latency entry for these --formats/--precisions")
    req = QuickRequest(
        profile=profile, pairs=pairs, threads=threads or profile.default_threads, model=model, seq_len=seq_len, out=out
    )
    return {"quick": True, **quick_calibrate(req, progress=progress)}


def format_calibration(r: dict) -> str:
    if r.get("quick"):
        held = r["held_out_median_error"]
        text = (
            f"calibrated {r['machine']['cpu_model']} ({r['machine']['cores']} cores) in {r['seconds']:g} s: "
            f"{', '.join(r['calibrated'])} from {r['n_measurements']} measurements; held-out median |error| "
            f"{fmt(held and 100 * held, '.1f')}% over {r['held_out_n']}\nwrote {r['file']}: --device host uses it on this machine"
        )
        if r["not_calibrated"]:
            text += f"\nnot calibrated (time ran out): {', '.join(r['not_calibrated'])}"
        return text
    lines = [
        f"calibrated {r['device']} on {r['target']}: {r['n_measurements']} measurements",
        f"{'spec':<12}{'format':<8}{'prec':<6}{'thr':>4}{'seq':>5}{'measured p50':>14}{'predicted':>11}{'error':>8}  set",
    ]
    for x in r["rows"]:
        lines.append(
            f"{x['spec']:<12}{x['format']:<8}{x['precision']:<6}{x['threads']:>4}{x.get('seq_len', '-'):>5}"
            f"{x['measured_p50_ms']:>14.2f}"
            f"{x['predicted_ms']:>11.2f}{100 * x['rel_error']:>7.1f}%  {'held out' if x['held_out'] else 'fit'}"
        )
    lines.append(
        f"fit median |error| {100 * r['fit_median_error']:.1f}%; held-out median |error| "
        f"{fmt(r['held_out_median_error'] and 100 * r['held_out_median_error'], '.1f')}%, p90 "
        f"{fmt(r['held_out_p90_error'] and 100 * r['held_out_p90_error'], '.1f')}%"
    )
    lines.append(f"wrote {r['override']}: {r['use']}")
    return "\n".join(lines)
