"""edgebert command line: `edgebert export | profiles | bench | calibrate | train | evaluate | build`.

Argument parsing and printing only; every command calls one library function.
"""

from __future__ import annotations

import argparse
import json
import sys

from edgebert.errors import EXIT_CODES, EdgebertError, UsageError

__all__ = ["main", "build_parser"]


def _epilog() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES.items())


def _formats(text: str) -> tuple[str, ...]:
    from edgebert.registry import CONVERTERS

    names = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    for n in names:
        CONVERTERS.get(n)  # raises UsageError listing the known formats
    return names


def _add_export(sub) -> None:
    from edgebert.artifact import PRECISIONS
    from edgebert.registry import CONVERTERS

    p = sub.add_parser(
        "export",
        help="slice, quantize, convert, verify and write artifacts + manifest.json",
        description="Export a sub-network of a (dynamic) BERT to ONNX / TFLite / TorchScript. Either give "
        "--width/--depth, or --device and --budget to let edgebert choose the sub-network.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="model folder (HF BERT checkpoint or edgebert model); default: packaged MiniLM")
    p.add_argument("--width", type=float, help="width multiplier in (0, 1] (DynaBERT grid: 0.25 0.5 0.75 1.0)")
    p.add_argument("--depth", type=float, help="depth multiplier in (0, 1] (DynaBERT grid: 0.5 0.75 1.0)")
    p.add_argument("--device", help="device profile name or path to a profile .yaml (see `edgebert profiles`)")
    p.add_argument("--budget", help="latency budget, e.g. 40ms or 0.04s (default: the profile's)")
    p.add_argument("--memory", help="memory limit, e.g. 150MB or 1.5GB (default: the profile's)")
    p.add_argument("--target", help="also measure on this target: local, ssh://user@host[:port], adb://[serial]")
    p.add_argument("--formats", type=_formats, default=None,
                   help=f"comma-separated, from: {','.join(CONVERTERS.names())} (default: all, or the profile's)")
    p.add_argument("--quantize", choices=PRECISIONS, default=None,
                   help="precision of the artifacts (default fp32; with --device edgebert chooses)")
    p.add_argument("--seq-len", type=int, default=128, help="sequence length (static for TFLite; default 128)")
    p.add_argument("--threads", type=int, default=None, help="threads for verification and measurement")
    p.add_argument("--out", help="output folder (default: out/<name>)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--no-rewire", action="store_true", help="do not rewire heads/neurons before slicing")
    p.add_argument("--no-measure", action="store_true", help="skip timing the artifacts on this machine")
    p.add_argument("--runs", type=int, default=50, help="timed runs per artifact when measuring (default 50)")
    p.add_argument("--json", action="store_true", help="print the manifest summary as JSON on stdout")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from edgebert.commands import run_export

    summary = run_export(args, progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        from edgebert.commands import format_export_summary

        print(format_export_summary(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from edgebert import __version__

    parser = argparse.ArgumentParser(
        prog="edgebert",
        description="Put dynamic BERT sub-networks on phones and boards: select, slice, quantize, "
        "export, verify, measure.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgebert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_export(sub)
    for mount in _MOUNTS:
        mount(sub)
    return parser


def _add_profiles(sub) -> None:
    p = sub.add_parser("profiles", help="list device profiles, or show one with the provenance of its numbers",
                       epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=("list", "show"), default="list")
    p.add_argument("name", nargs="?", help="profile name or path to a .yaml (for `show`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def run(args) -> int:
        from edgebert.commands import format_profile, format_profiles_table
        from edgebert.profiles import list_profiles, load_profile

        if args.action == "show":
            if not args.name:
                raise UsageError("`edgebert profiles show NAME`: give a profile name (see `edgebert profiles`)")
            prof = load_profile(args.name)
            print(json.dumps(prof.to_dict(), indent=2) if args.json else format_profile(prof))
        else:
            profs = list_profiles()
            print(json.dumps([p.to_dict() for p in profs], indent=2) if args.json else format_profiles_table(profs))
        return 0

    p.set_defaults(func=run)


def _add_bench(sub) -> None:
    from edgebert.registry import RUNNERS

    p = sub.add_parser("bench", help="measure an export folder's artifacts on a target (local, ssh://, adb://)",
                       description="Measure every artifact of an export folder on a target and record the results "
                       f"in its manifest.json. Target kinds: {', '.join(RUNNERS.names())}.",
                       epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="an export folder (with manifest.json)")
    p.add_argument("--target", default="local", help="local | ssh://[user@]host[:port] | adb://[serial] (default local)")
    _add_runner_options(p)
    p.add_argument("--formats", type=_formats, default=None, help="only these formats (default: all in the folder)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")

    def run(args) -> int:
        from edgebert.commands import format_bench, run_bench_folder

        results = run_bench_folder(args, progress=not args.json and sys.stderr.isatty())
        print(json.dumps(results, indent=2) if args.json else format_bench(results))
        return 0

    p.set_defaults(func=run)


def _add_runner_options(p) -> None:
    p.add_argument("--threads", type=int, default=None, help="threads (default: the export's, else 1)")
    p.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs (default 5)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per artifact before giving up (default 300)")
    p.add_argument("--adb", dest="adb_path", help="adb executable (default: adb on PATH)")
    p.add_argument("--benchmark-binary", help="TFLite benchmark_model: local file to push, or a path on the device")
    p.add_argument("--onnx-perf-test", help="onnxruntime_perf_test: local file to push, or a path on the device")
    p.add_argument("--remote-python", help="python on the board (e.g. a venv's bin/python; default python3)")
    p.add_argument("--identity", help="ssh private key (default: your ssh config / agent)")
    p.add_argument("--ssh-config", help="ssh config file (default: ~/.ssh/config)")
    p.add_argument("--taskset", help="CPU mask to pin the benchmark to on Android, e.g. f0 (default: the profile's)")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="DynaBERT dynamic training (width, then width+depth) with distillation",
                       epilog=_epilog() + "\n\nSeveral GPUs or machines: accelerate launch -m edgebert.train ...",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    from edgebert.train import add_train_arguments

    add_train_arguments(p)

    def run(args) -> int:
        from edgebert.train import train_from_args

        return train_from_args(args)

    p.set_defaults(func=run)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure the quality table of a dynamic model on data",
                       epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    from edgebert.quality import add_evaluate_arguments

    add_evaluate_arguments(p)

    def run(args) -> int:
        from edgebert.quality import evaluate_main

        return evaluate_main(args)

    p.set_defaults(func=run)


def _add_calibrate(sub) -> None:
    p = sub.add_parser("calibrate", help="measure sub-networks on a target and refit a device's latency model",
                       description="Export up to 10 sub-networks, measure them on --target, refit the device's latency "
                       "coefficients, report the held-out error, and write a profile override (the shipped profile "
                       "is never modified).", epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True, help="profile name or .yaml path to calibrate")
    p.add_argument("--target", default="local", help="local | ssh://[user@]host[:port] | adb://[serial]")
    p.add_argument("--model", help="model folder (default: packaged MiniLM)")
    p.add_argument("--formats", type=_formats, default=None, help="formats to calibrate (default: the profile's first)")
    p.add_argument("--precisions", default="fp32,int8", help="comma-separated (default fp32,int8)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--out", help="override file to write (default: ~/.config/edgebert/profiles/DEVICE.yaml)")
    p.add_argument("--json", action="store_true")
    _add_runner_options(p)

    def run(args) -> int:
        from edgebert.calibrate import CalibrateRequest, calibrate
        from edgebert.commands import format_calibration
        from edgebert.measure import runner_options

        req = CalibrateRequest(device=args.device, target=args.target, model=args.model, formats=args.formats,
                               precisions=tuple(x.strip() for x in args.precisions.split(",") if x.strip()),
                               seq_len=args.seq_len, threads=args.threads, runs=args.runs, out=args.out,
                               options=runner_options(args, None))
        result = calibrate(req, progress=not args.json and sys.stderr.isatty())
        print(json.dumps(result, indent=2) if args.json else format_calibration(result))
        return 0

    p.set_defaults(func=run)


def _add_build(sub) -> None:
    p = sub.add_parser("build", help="build every (device, budget) of an edgebert.toml: cached, reproducible, "
                       "with index.json", description="Export the sub-network chosen for each (device, budget) entry "
                       "of a build config into its own folder, skip entries whose inputs did not change, and write "
                       "index.json. Exit 3 lists the entries that fit no candidate; exit 4 a parity failure.",
                       epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="the build config, e.g. edgebert.toml (see examples/edgebert.toml)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="only this entry (its folder name) or device; repeat or comma-separate")
    p.add_argument("--check", action="store_true",
                   help="re-verify the built artifacts (files, sha256, parity) against their manifests; build nothing")
    p.add_argument("--no-cache", action="store_true", help="rebuild the selected entries even if nothing changed")
    p.add_argument("--out", help="output folder (default: [output] dir of the config, relative to the config)")
    p.add_argument("--json", action="store_true", help="print index.json (with --check: the check report) on stdout")

    def run(args) -> int:
        from edgebert.build import build, check, format_check, format_summary
        from edgebert.build_config import load_build_config

        cfg = load_build_config(args.config, out=args.out)
        if args.check:
            report = check(cfg, args.only)
            print(json.dumps(report, indent=2) if args.json else format_check(report))
            return report["exit_code"]
        index = build(cfg, args.only, no_cache=args.no_cache, progress=not args.json and sys.stderr.isatty())
        print(json.dumps(index, indent=2) if args.json else format_summary(index))
        return index["exit_code"]

    p.set_defaults(func=run)


_MOUNTS: list = [_add_profiles, _add_bench, _add_calibrate, _add_train, _add_evaluate, _add_build]



def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except EdgebertError as exc:
        print(f"edgebert: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgebert: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
