"""`edgebert export`: a given width/depth, or the selector's pick for a device and budget."""

from __future__ import annotations

import math
from pathlib import Path

from edgebert.bench import MeasureSettings, local_measurer
from edgebert.calibrate.quick import calibrate_host
from edgebert.commands.early_exit import (
    AUTO,
    EarlyExitPlan,
    SegmentTiming,
    early_exit_summary,
    format_early_exit,
    prepare_early_exit,
)
from edgebert.commands.text import fmt
from edgebert.deploy import DeviceExport, device_export
from edgebert.errors import RunnerError, UsageError
from edgebert.export.pipeline import ExportConfig, export
from edgebert.export.record import measurement_failures
from edgebert.export.runtimes import formats_for
from edgebert.model.spec import SubnetSpec
from edgebert.runners import RunnerOptions, parse_target
from edgebert.runners.interface import DEFAULT_TIMEOUT_S
from edgebert.runtime.policy import Policy
from edgebert.select.budget import Budget
from edgebert.select.profiles import load_profile

__all__ = ["run_export", "export_summary", "format_export_summary", "measurement_error"]


def _default_out(model: str | None, spec: SubnetSpec) -> str:
    name = "minilm" if model is None else Path(model).resolve().name
    return f"out/{name}-w{round(spec.width * 100)}-d{round(spec.depth * 100)}"


def run_export(
    *,
    model=None,
    width=None,
    depth=None,
    device=None,
    budget=None,
    memory=None,
    target=None,
    formats=None,
    quantize=None,
    seq_len=128,
    threads=None,
    out=None,
    force=False,
    no_rewire=False,
    no_measure=False,
    runs=50,
    timeout=DEFAULT_TIMEOUT_S,
    cooldown=0.0,
    sustained=0.0,
    options: RunnerOptions | None = None,
    progress: bool = True,
    no_calibrate: bool = False,
    say=None,
    early_exit: Policy | str | None = None,
    data: str | None = None,
    max_quality_drop: float | None = None,
    budget_on: str = "p90",
    search: bool = False,
    runtime: str | None = None,
) -> dict:
    """`edgebert export`: a given --width/--depth, or the sub-network the selector picks for --device.

    `--device host` on a machine its fit was not made on first calibrates this machine (about a minute,
    cached; `say` reports it) unless no_calibrate, which keeps the shipped fit with its widened error.
    `runtime` (--runtime; with --device, else the profile's `runtime:` when it names one) keeps to the formats
    and precisions that runtime loads (export/runtimes.py)."""
    measuring = MeasureSettings(runs=runs, timeout_s=timeout, cooldown_s=cooldown, sustained_s=sustained)
    lengths = ExportConfig.lengths_fields(seq_len)  # --seq-len: one length, or buckets ending at the largest
    _check_quality_drop(max_quality_drop, quantize, early_exit)
    if data is not None and early_exit is None:
        raise UsageError("--data is the dev data of --early-exit (auto chooses the policy on it); give --early-exit")
    seq_len = lengths["seq_len"]
    if device is not None and early_exit is not None:
        raise UsageError(
            "--early-exit takes --width/--depth; with --device the selector picks the exit policy of a model with "
            "exit heads (--budget-on p90|worst says which latency the budget holds)"
        )
    if device is not None:
        if width is not None or depth is not None:
            raise UsageError("give either --width/--depth or --device/--budget, not both (the selector picks the spec)")
        profile = load_profile(device, host_calibration=not no_calibrate)
        # Parsed once, before a minute of calibration, so a bad --budget/--memory is refused at once; calibration
        # changes the latency model only, not the profile's default budgets.
        limits = Budget.resolve(profile, budget, memory)
        calibration = None
        if not no_calibrate:
            profile, calibration = calibrate_host(
                profile,
                formats=formats,
                quantize=quantize,
                threads=threads,
                model=model,
                seq_len=seq_len,
                progress=progress,
                say=say,
            )
        req = DeviceExport(
            profile=profile,
            budget=limits,
            model=model,
            formats=formats,
            quantize=quantize,
            seq_len=seq_len,
            buckets=lengths["buckets"],
            threads=threads,
            out=out,
            force=force,
            target=parse_target(target) if target else None,
            measure=not no_measure,
            options=options or RunnerOptions(),
            measuring=measuring,
            max_quality_drop=max_quality_drop,
            search=search,
            app_runtime=runtime,
            budget_on=budget_on,
        )
        manifest, folder = device_export(req, progress=progress, early_exit=EarlyExitPlan())
        summary = {**export_summary(manifest, folder), "host_calibration": calibration}
        return {**summary, "early_exit": early_exit_summary(manifest)}
    if search:
        raise UsageError("--search needs --device (and --budget): it searches under that device's latency model")
    if no_calibrate:
        raise UsageError("--no-calibrate goes with --device host (a given --width/--depth predicts nothing)")
    if budget is not None or memory is not None:
        raise UsageError("--budget/--memory need --device (the profile whose latency model predicts the budget)")
    if target is not None:
        raise UsageError("--target needs --device (use `edgebert bench OUT --target ...` to measure an export)")
    if runtime is not None:
        formats = formats_for(runtime, formats, quantize or "fp32", lengths["buckets"])
    spec = SubnetSpec(1.0 if width is None else width, 1.0 if depth is None else depth)
    cfg = ExportConfig(
        out=out or _default_out(model, spec),
        model=model,
        spec=spec,
        formats=formats or ("onnx", "tflite", "torchscript"),
        precision=quantize or "fp32",
        **lengths,
        force=force,
        rewire=not no_rewire,
        threads=threads or 1,
        max_quality_drop=max_quality_drop,
    )
    timing = None
    if not no_measure:  # each segment timed here too, as the plain artifacts are
        config = measuring.config(cfg.threads, cfg.seq_len)
        timing = SegmentTiming((parse_target("local"),), config, cooldown_s=measuring.cooldown_s)
    loaded, finish = None, None
    if early_exit is not None:
        loaded, finish = prepare_early_exit(cfg, early_exit, timing, None, data, max_quality_drop, progress)
    measure = None if no_measure else local_measurer(cfg.threads, cfg.seq_len, measuring)
    manifest = export(cfg, progress=progress, measure=measure, loaded=loaded, finish=finish)
    return {**export_summary(manifest, cfg.out), "early_exit": early_exit_summary(manifest)}


def _check_quality_drop(value: float | None, quantize: str | None, early_exit=None) -> None:
    """What can be said before the model is loaded (its task sets the unit and the upper end: export/gate.py)."""
    if value is None:
        return
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--max-quality-drop must be a finite number >= 0, got {value!r}")
    if quantize == "fp32" and early_exit != AUTO:
        raise UsageError(
            "--max-quality-drop gates int8/fp16 artifacts and --early-exit auto's policy; with --quantize fp32 and "
            "no --early-exit auto there is nothing to gate"
        )


def export_summary(manifest: dict, out: str) -> dict:
    arts = []
    for a in manifest["artifacts"]:
        measured = a["latency"]["measured"]
        predicted = a["latency"]["predicted"]
        arts.append(
            {
                "file": str(Path(out) / a["file"]),
                "format": a["format"],
                "precision": a["precision"],
                "size_bytes": a["size_bytes"],
                "sha256": a["sha256"],
                "parity": {k: a["parity"].get(k) for k in ("max_abs_diff", "min_cosine", "argmax_agreement", "passed")},
                "latency_ms": {
                    "measured_p50": measured[-1]["p50_ms"] if measured else None,
                    "measured_where": measured[-1]["where"] if measured else None,
                    "predicted_p50": predicted["value"] if predicted else None,
                    "predicted_source": predicted["source"] if predicted else None,
                },
                "notes": a["notes"],
                "not_measured": {k: a["latency"].get(k, []) for k in ("skipped", "failed")},
                "buckets": [_bucket_summary(b) for b in a.get("buckets") or []],
            }
        )
    return {
        "out": str(out),
        "manifest": str(Path(out) / "manifest.json"),
        "spec": manifest["subnet"]["spec"],
        "parameters": manifest["subnet"]["parameters"],
        "full_parameters": manifest["subnet"]["full_parameters"],
        "device": (manifest.get("device") or {}).get("name"),
        "budget": manifest.get("budget"),
        "artifacts": arts,
        "measurement_failures": measurement_failures(manifest),
        "embedding_rank": (manifest.get("selection") or {}).get("embedding_rank"),  # untrained SVD (select/ranks.py)
    }


def _bucket_summary(b: dict) -> dict:
    measured, predicted = b["latency"]["measured"], b["latency"]["predicted"]
    return {
        "signature": b.get("signature"),
        "seq_len": b["seq_len"],
        "min_cosine": (b.get("parity") or {}).get("min_cosine"),
        "measured_p50": measured[-1]["p50_ms"] if measured else None,
        "predicted_p50": predicted["value"] if predicted else None,
    }


def measurement_error(summary: dict) -> RunnerError | None:
    """Exit 5 for an export whose artifacts are published but whose measurement failed somewhere."""
    failed = summary["measurement_failures"]
    if not failed:
        return None
    lines = "; ".join(f"{f['file']} on {f['where']}: {f['why']}" for f in failed)
    return RunnerError(
        f"the artifacts passed their parity check and are published in {summary['out']}, but measuring failed "
        f"({lines}). Fix the target and measure them with `edgebert bench {summary['out']} --target ...`"
    )


def format_export_summary(s: dict) -> str:
    spec = SubnetSpec.from_dict(s["spec"])
    lines = [
        f"exported {spec.key if spec.per_layer else f'w{spec.width:g} d{spec.depth:g}'} "
        f"({s['parameters'] / 1e6:.1f}M of {s['full_parameters'] / 1e6:.1f}M parameters) to {s['out']}",
    ]
    if s.get("device"):
        b = s["budget"]
        lines.append(
            f"device {s['device']}: budget {b['latency_ms']:g} ms p50, {b['memory_mb']:g} MB, "
            f"{b['threads']} threads, seq {b['seq_len']} (report: {s['out']}/report.md)"
        )
    if s.get("embedding_rank"):
        lines.append(f"note: {s['embedding_rank']['says']}")
    lines.append(
        f"{'file':<18}{'precision':<10}{'size MB':>9}{'max|diff|':>11}{'cosine':>9}"
        f"{'p50 ms measured':>17}{'p50 ms predicted':>18}  measured where"
    )
    for a in s["artifacts"]:
        lat = a["latency_ms"]
        lines.append(
            f"{Path(a['file']).name:<18}{a['precision']:<10}{a['size_bytes'] / 1e6:>9.2f}"
            f"{fmt(a['parity']['max_abs_diff'], '.2e'):>11}{fmt(a['parity']['min_cosine'], '.5f'):>9}"
            f"{fmt(lat['measured_p50'], '.2f'):>17}{fmt(lat['predicted_p50'], '.2f'):>18}  {lat['measured_where'] or '-'}"
        )
        for note in a["notes"]:
            lines.append(f"  note: {note}")
        for b in a.get("buckets", []):
            lines.append(
                f"  bucket {b['signature'] or 'dynamic'} ({b['seq_len']} tokens): cosine {fmt(b['min_cosine'], '.5f')}, "
                f"p50 {fmt(b['measured_p50'], '.2f')} ms measured, {fmt(b['predicted_p50'], '.2f')} ms predicted"
            )
        for kind, entries in a["not_measured"].items():
            lines.extend(f"  {kind} on {e['where']}: {e['why']}" for e in entries)
    cal = s.get("host_calibration")
    if cal:
        held = cal["held_out_median_error"]
        lines.append(
            f"host calibrated in {cal['seconds']:g} s ({', '.join(cal['calibrated'])}; held-out median |error| "
            f"{fmt(held and 100 * held, '.1f')}% over {cal['held_out_n']}), cached in {cal['file']}"
        )
        if cal["not_calibrated"]:
            lines.append(
                f"  not calibrated (time ran out; still the widened guess): {', '.join(cal['not_calibrated'])}; "
                "narrow --formats/--quantize or run `edgebert calibrate --device host`"
            )
    lines.extend(format_early_exit(s.get("early_exit")))
    lines.append(f"manifest: {s['manifest']}")
    return "\n".join(lines)
