"""What the CLI's commands do, as plain functions taking the parsed arguments (no printing here)."""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError
from .spec import SubnetSpec

__all__ = ["run_export", "format_export_summary", "export_summary", "run_bench_folder", "format_bench",
           "format_profile", "format_profiles_table", "format_calibration"]


def _default_out(model: str | None, spec: SubnetSpec) -> str:
    name = "minilm" if model is None else Path(model).resolve().name
    return f"out/{name}-w{round(spec.width * 100)}-d{round(spec.depth * 100)}"


def run_export(args, progress: bool = True) -> dict:
    from .export import ExportConfig, export

    if args.device is not None:
        from .select_export import run_device_export

        return run_device_export(args, progress=progress)
    if args.budget is not None or args.memory is not None:
        raise UsageError("--budget/--memory need --device (the profile whose latency model predicts the budget)")
    if args.target is not None:
        raise UsageError("--target needs --device (use `edgebert bench OUT --target ...` to measure an export)")
    spec = SubnetSpec(1.0 if args.width is None else args.width, 1.0 if args.depth is None else args.depth)
    cfg = ExportConfig(
        out=args.out or _default_out(args.model, spec),
        model=args.model,
        spec=spec,
        formats=args.formats or ("onnx", "tflite", "torchscript"),
        precision=args.quantize or "fp32",
        seq_len=args.seq_len,
        force=args.force,
        rewire=not args.no_rewire,
        threads=args.threads or 1,
    )
    measure = None
    if not args.no_measure:
        from .measure import local_measurer

        measure = local_measurer(threads=cfg.threads, seq_len=cfg.seq_len, runs=args.runs)
    manifest = export(cfg, progress=progress, measure=measure)
    return export_summary(manifest, cfg.out)


def export_summary(manifest: dict, out: str) -> dict:
    arts = []
    for a in manifest["artifacts"]:
        measured = a["latency"]["measured"]
        predicted = a["latency"]["predicted"]
        arts.append({
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
        })
    return {
        "out": str(out),
        "manifest": str(Path(out) / "manifest.json"),
        "spec": manifest["subnet"]["spec"],
        "parameters": manifest["subnet"]["parameters"],
        "full_parameters": manifest["subnet"]["full_parameters"],
        "device": (manifest.get("device") or {}).get("name"),
        "budget": manifest.get("budget"),
        "artifacts": arts,
    }


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_export_summary(s: dict) -> str:
    spec = s["spec"]
    lines = [
        f"exported w{spec['width']:g} d{spec['depth']:g} "
        f"({s['parameters'] / 1e6:.1f}M of {s['full_parameters'] / 1e6:.1f}M parameters) to {s['out']}",
    ]
    if s.get("device"):
        b = s["budget"]
        lines.append(f"device {s['device']}: budget {b['latency_ms']:g} ms p50, {b['memory_mb']:g} MB, "
                     f"{b['threads']} threads, seq {b['seq_len']} (report: {s['out']}/report.md)")
    lines.append(f"{'file':<18}{'precision':<10}{'size MB':>9}{'max|diff|':>11}{'cosine':>9}"
                 f"{'p50 ms measured':>17}{'p50 ms predicted':>18}  measured where")
    for a in s["artifacts"]:
        lat = a["latency_ms"]
        lines.append(
            f"{Path(a['file']).name:<18}{a['precision']:<10}{a['size_bytes'] / 1e6:>9.2f}"
            f"{_fmt(a['parity']['max_abs_diff'], '.2e'):>11}{_fmt(a['parity']['min_cosine'], '.5f'):>9}"
            f"{_fmt(lat['measured_p50'], '.2f'):>17}{_fmt(lat['predicted_p50'], '.2f'):>18}  {lat['measured_where'] or '-'}"
        )
        for note in a["notes"]:
            lines.append(f"  note: {note}")
    lines.append(f"manifest: {s['manifest']}")
    return "\n".join(lines)


def run_bench_folder(args, progress: bool = True) -> dict:
    from .measure import bench_folder

    return bench_folder(args, progress=progress)


def format_bench(r: dict) -> str:
    lines = [f"measured on {r['target']} ({r['folder']}/manifest.json updated)",
             f"{'file':<16}{'prec':<6}{'p50 ms':>9}{'p90 ms':>9}{'mean ms':>9}{'runs':>6}{'thr':>4}{'peak MB':>9}  device / runtime"]
    for x in r["results"]:
        lines.append(f"{x['file']:<16}{x['precision']:<6}{x['p50_ms']:>9.2f}{_fmt(x.get('p90_ms'), '.2f'):>9}"
                     f"{x['mean_ms']:>9.2f}{x['runs']:>6}{x['threads']:>4}{_fmt(x.get('peak_rss_mb'), '.1f'):>9}"
                     f"  {x.get('device', '?')} / {x['runtime']} {x['runtime_version']}")
        for w in x.get("warnings", []):
            lines.append(f"  warning: {w}")
    for sk in r["skipped"]:
        lines.append(f"skipped {sk['file']}: {sk['why']}")
    return "\n".join(lines)


def format_profiles_table(profiles) -> str:
    lines = [f"{'name':<18}{'cores':>6}{'RAM MB':>8}{'model MB':>10}{'threads':>8}{'budget':>9}  {'reach':<6}{'formats':<24}latency model"]
    for p in profiles:
        lm = p.latency_model
        lines.append(f"{p.name:<18}{p.cpu.cores:>6}{p.ram_mb:>8}{p.model_memory_mb:>10g}{p.default_threads:>8}"
                     f"{p.default_budget_ms:>7g}ms  {p.reach:<6}{','.join(p.formats):<24}{lm.source[:60]}")
    return "\n".join(lines)


def format_profile(p) -> str:
    import yaml

    return yaml.safe_dump(p.to_dict(), sort_keys=False, width=110)


def format_calibration(r: dict) -> str:
    lines = [f"calibrated {r['device']} on {r['target']}: {r['n_measurements']} measurements",
             f"{'spec':<12}{'format':<8}{'prec':<6}{'thr':>4}{'seq':>5}{'measured p50':>14}{'predicted':>11}{'error':>8}  set"]
    for x in r["rows"]:
        lines.append(f"{x['spec']:<12}{x['format']:<8}{x['precision']:<6}{x['threads']:>4}{x.get('seq_len', '-'):>5}"
                     f"{x['measured_p50_ms']:>14.2f}"
                     f"{x['predicted_ms']:>11.2f}{100 * x['rel_error']:>7.1f}%  {'held out' if x['held_out'] else 'fit'}")
    lines.append(f"fit median |error| {100 * r['fit_median_error']:.1f}%; held-out median |error| "
                 f"{_fmt(r['held_out_median_error'] and 100 * r['held_out_median_error'], '.1f')}%, p90 "
                 f"{_fmt(r['held_out_p90_error'] and 100 * r['held_out_p90_error'], '.1f')}%")
    lines.append(f"wrote {r['override']}: {r['use']}")
    return "\n".join(lines)
