"""`edgebert calibrate --device D --target T`."""

from __future__ import annotations

from edgebert.calibrate import CalibrateRequest, calibrate
from edgebert.commands.text import fmt
from edgebert.errors import UsageError
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
    progress=True,
) -> dict:
    profile = load_profile(device)
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


def format_calibration(r: dict) -> str:
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
