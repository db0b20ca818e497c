"""edgebert command line (click): `edgebert export | profiles | bench | calibrate | train | evaluate | build | search`.

Parsing only: each command hands its values to one function of `edgebert.commands.*`, which builds the
typed objects and calls the library. The heavy commands are imported inside their callbacks so that
`edgebert --help` and `edgebert profiles` never import torch (tests/test_cli.py checks it).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from edgebert import __version__
from edgebert.artifact import PRECISIONS, parse_seq_lens
from edgebert.commands.options import runner_options
from edgebert.commands.profiles import format_profile, format_profiles_table, profiles
from edgebert.disk import disk_full_message, is_disk_full
from edgebert.errors import EXIT_CODES, EdgebertError, UsageError
from edgebert.export.runtimes import APP_RUNTIMES
from edgebert.registry import CONVERTERS
from edgebert.runtime.policy import parse_policy

__all__ = ["main", "cli"]

EXIT_TERMINATED = 143  # 128 + SIGTERM, what shells report for a terminated process


class Terminated(KeyboardInterrupt):
    """SIGTERM (CI cancellation, `timeout`, `docker stop`): unwinds like Ctrl-C, so nothing half-written stays."""


def _epilog(extra: str = "") -> str:
    # \b keeps click from re-wrapping the table.
    codes = "\n".join(f"{code:<4} {what}" for code, what in EXIT_CODES.items())
    return f"\b\nexit codes:\n{codes}\n{EXIT_TERMINATED:<4} terminated (SIGTERM); nothing half-written is left" + extra


def _progress(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


def _print(result, as_json: bool, text) -> None:
    click.echo(json.dumps(result, indent=2) if as_json else text(result))


def _formats(ctx, param, text):
    if text is None:
        return None
    names = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = [n for n in names if n not in CONVERTERS.names()]
    if unknown:
        raise click.BadParameter(f"unknown format {unknown[0]!r}; choose from: {', '.join(CONVERTERS.names())}")
    return names


def _seq_lens(ctx, param, text):
    """--seq-len 128 or 32,64,128 -> a tuple of lengths, parsed once here (edgebert.artifact); bad ones exit 2."""
    try:
        return parse_seq_lens(text)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None


def _floats(ctx, param, text):
    if text is None or isinstance(text, tuple):
        return text
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


_FORMATS_HELP = f"comma-separated, from: {','.join(CONVERTERS.names())}"


def _policy(ctx, param, text):
    """The one place an early-exit policy is parsed (edgebert.runtime.policy); a bad one exits 2."""
    if text is None:
        return None
    try:
        return parse_policy(text)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from None


def _export_policy(ctx, param, text):
    """export's --early-exit: a policy, or 'auto' (chosen on --data by commands/early_exit.py)."""
    if text is not None and text.strip().lower() == "auto":
        return "auto"
    return _policy(ctx, param, text)


def _runner_flags(f):
    """The flags that say how to reach a target (bench, calibrate, export --target)."""
    flags = [
        click.option("--adb", "adb_path", help="adb executable (default: adb on PATH)"),
        click.option("--benchmark-binary", help="TFLite benchmark_model: local file to push, or a path on the device"),
        click.option("--onnx-perf-test", help="onnxruntime_perf_test: local file to push, or a path on the device"),
        click.option(
            "--executorch-runner",
            help="ExecuTorch executor_runner (.pte over adb): local file to push, or a path on the device",
        ),
        click.option("--remote-python", help="python on the board (e.g. a venv's bin/python; default python3)"),
        click.option("--identity", help="ssh private key (default: your ssh config / agent)"),
        click.option("--ssh-config", help="ssh config file (default: ~/.ssh/config)"),
        click.option("--taskset", help="CPU mask to pin the benchmark to on Android, e.g. f0 (default: the profile's)"),
    ]
    for flag in reversed(flags):
        f = flag(f)
    return f


def _hygiene_flags(f):
    """Benchmark hygiene (bench, export): idle between measurements, and sustained timing with drift."""
    f = click.option(
        "--sustained",
        type=float,
        default=0.0,
        show_default=True,
        metavar="S",
        help="time each artifact for at least S seconds and report drift (last third vs first third, %)",
    )(f)
    return click.option(
        "--cooldown",
        type=float,
        default=0.0,
        show_default=True,
        metavar="S",
        help="seconds of idle between artifacts on a target (let it cool)",
    )(f)


def _options(kw: dict):
    """Pop the runner flags out of a command's values into one RunnerOptions."""
    names = (
        "adb_path",
        "benchmark_binary",
        "onnx_perf_test",
        "executorch_runner",
        "remote_python",
        "identity",
        "ssh_config",
        "taskset",
    )
    return runner_options(**{n: kw.pop(n) for n in names})


@click.group(invoke_without_command=True, epilog=_epilog(), context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgebert")
@click.pass_context
def cli(ctx):
    """Put dynamic BERT sub-networks on phones and boards: select, slice, quantize, export, verify, measure.

    Shell completion: eval "$(_EDGEBERT_COMPLETE=bash_source edgebert)" (zsh_source, fish_source)."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(2)


@cli.command(epilog=_epilog())
@click.option("--model", help="model folder (HF BERT checkpoint or edgebert model); default: packaged MiniLM")
@click.option("--width", type=float, help="width multiplier in (0, 1] (DynaBERT grid: 0.25 0.5 0.75 1.0)")
@click.option("--depth", type=float, help="depth multiplier in (0, 1] (DynaBERT grid: 0.5 0.75 1.0)")
@click.option("--device", help="device profile name or path to a profile .yaml (see `edgebert profiles`)")
@click.option("--budget", help="latency budget, e.g. 40ms or 0.04s (default: the profile's)")
@click.option("--memory", help="memory limit, e.g. 150MB or 1.5GB (default: the profile's)")
@click.option("--target", help="also measure on this target: local, ssh://user@host[:port], adb://[serial]")
@click.option("--formats", callback=_formats, help=f"{_FORMATS_HELP} (default: all, or the profile's)")
@click.option(
    "--quantize", type=click.Choice(PRECISIONS), help="precision (default fp32; with --device edgebert chooses)"
)
@click.option(
    "--max-quality-drop",
    type=float,
    help="accuracy gate for int8/fp16: the most quality a quantized artifact may lose against fp32 on the "
    "parity and proxy texts, in accuracy points (classifiers) or cosine (encoders); default 0.5 / 0.005. "
    "Recipes are tried in order (int8, int8 with embeddings and first/last layer fp32, fp16); none passing: exit 4. "
    "With --early-exit auto also the most dev accuracy the policy may lose (points; default 0.5)",
)
@click.option(
    "--seq-len",
    callback=_seq_lens,
    default="128",
    show_default=True,
    help="sequence length, or ascending buckets such as 32,64,128: one TFLite file with a signature per length "
    "(ONNX/TorchScript stay dynamic); a budget applies to the largest",
)
@click.option(
    "--runtime",
    type=click.Choice(list(APP_RUNTIMES)),
    help="only artifacts this app runtime loads (check them with `edgebert compat OUT`)",
)
@click.option("--threads", type=int, help="threads for verification and measurement")
@click.option("--out", help="output folder (default: out/<name>)")
@click.option("--force", is_flag=True, help="replace an existing output folder")
@click.option("--no-rewire", is_flag=True, help="do not rewire heads/neurons before slicing")
@click.option("--no-measure", is_flag=True, help="skip timing the artifacts on this machine")
@click.option(
    "--no-calibrate",
    is_flag=True,
    help="--device host: never calibrate this machine (a fit made on another machine keeps its widened error)",
)
@click.option("--runs", type=int, default=50, show_default=True, help="timed runs per artifact when measuring")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="seconds per artifact and target")
@_hygiene_flags
@click.option(
    "--early-exit",
    callback=_export_policy,
    metavar="POLICY",
    help="also write early-exit segments, run by POLICY: entropy=T, patience=K or confidence=P "
    "(a model trained with `edgebert train --exits`), or auto: the policy running the fewest layers whose --data "
    "accuracy is within --max-quality-drop (default 0.5 pt) of the full sub-network",
)
@click.option(
    "--data",
    help="--early-exit's dev data (rotten-tomatoes: its dev split, or a .csv/.tsv/.jsonl file): auto chooses on it "
    "and the manifest's exit histogram is measured on it (default: the model's own dev split; auto needs it)",
)
@click.option(
    "--budget-on",
    type=click.Choice(["p90", "worst"]),
    default="p90",
    show_default=True,
    help="with --device and a model with exit heads: the selector may pick an early-exit policy; its latency "
    "budget is met by the p90 of the per-input latency over the exit histogram, or by the worst case (every layer)",
)
@click.option(
    "--search",
    is_flag=True,
    help="with --device/--budget: search per-layer sub-networks (heads, FFN width, which layers) instead of the "
    "uniform grid; quality by the embedding proxy (see `edgebert search`)",
)
@_runner_flags
@click.option("--json", "as_json", is_flag=True, help="print the manifest summary as JSON on stdout")
def export(as_json, **kw):
    """Slice, quantize, convert, verify and write artifacts + manifest.json.

    Either give --width/--depth, or --device and --budget to let edgebert choose the sub-network.
    --device host on a machine the shipped host fit was not made on calibrates this machine first
    (about a minute, once: cached under $EDGEBERT_CACHE_DIR, default ~/.cache/edgebert).
    Formats a --target cannot run are skipped; if measuring fails, the verified artifacts are still
    written, the failure is recorded in manifest.json, and the exit code is 5."""
    from edgebert.commands.export import format_export_summary, measurement_error, run_export  # heavy: torch

    options = _options(kw)
    say = lambda text: click.echo(f"edgebert: {text}", err=True)  # noqa: E731
    summary = run_export(**kw, options=options, progress=_progress(as_json), say=say)
    _print(summary, as_json, format_export_summary)
    failed = measurement_error(summary)
    if failed is not None:  # after the summary: the artifacts are published either way
        raise failed


@cli.command(epilog=_epilog())
@click.argument("folder")
@click.argument("texts", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(CONVERTERS.names()), help="artifact format (default: onnx if there)")
@click.option("--early-exit", callback=_policy, metavar="POLICY", help="override the folder's early-exit policy")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="a list of {label, scores | embedding, exit_layer, ms}")
def predict(folder, texts, fmt, early_exit, threads, as_json):
    """Run an export folder on TEXTs with edgebert.runtime (no torch for onnx/tflite): labels and scores (or
    embeddings), the exit layer taken (1-based) and the measured time per text."""
    from edgebert.commands.predict import format_predictions, run_predict

    results = run_predict(folder=folder, texts=list(texts), fmt=fmt, threads=threads, policy=early_exit)
    click.echo(json.dumps(results, indent=2) if as_json else format_predictions(results, texts))


@cli.command("profiles", epilog=_epilog())
@click.argument("action", type=click.Choice(("list", "show")), default="list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def profiles_cmd(action, name, as_json):
    """List device profiles, or show one with the provenance of its numbers."""
    if action == "show":
        if not name:
            raise click.UsageError("`edgebert profiles show NAME`: give a profile name (see `edgebert profiles`)")
        prof = profiles(name)
        click.echo(json.dumps(prof.to_dict(), indent=2) if as_json else format_profile(prof))
    else:
        profs = profiles()
        click.echo(json.dumps([p.to_dict() for p in profs], indent=2) if as_json else format_profiles_table(profs))


@cli.command(epilog=_epilog())
@click.argument("folder")
@click.option("--target", default="local", show_default=True, help="local | ssh://[user@]host[:port] | adb://[serial]")
@click.option("--threads", type=int, help="threads (default: the export's, else 1)")
@click.option("--runs", type=int, default=50, show_default=True, help="timed runs")
@click.option("--warmup", type=int, default=5, show_default=True, help="warm-up runs")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="seconds per artifact before giving up")
@_hygiene_flags
@_runner_flags
@click.option("--formats", callback=_formats, help=f"only these formats ({_FORMATS_HELP}; default: all in the folder)")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
def bench(as_json, **kw):
    """Measure an export folder's artifacts on a target and record them in its manifest.json.

    Target kinds: local, ssh, adb."""
    from edgebert.commands.bench import format_bench, run_bench  # heavy: torch

    options = _options(kw)
    _print(run_bench(**kw, options=options, progress=_progress(as_json)), as_json, format_bench)


@cli.command(epilog=_epilog())
@click.argument("folder")
@click.option("--no-write", is_flag=True, help="print the table only; leave manifest.json as it is")
@click.option(
    "--install-runtimes",
    is_flag=True,
    help="first make a venv for each older runtime not set up yet (ai-edge-litert 1.4, tflite-runtime 2.14, "
    "onnxruntime 1.15/1.18), in the cache folder, from the package index: once, 20-50 s each",
)
@click.option("--json", "as_json", is_flag=True, help="print the table as JSON")
@click.pass_context
def compat(ctx, folder, no_write, install_runtimes, as_json):
    """Which runtimes load each artifact of an export folder and agree with its PyTorch reference.

    Checks every artifact's size and sha256 against manifest.json first, then runs it on the parity
    sentences in ONNX Runtime, ai-edge-litert, torch (TorchScript) and, for .tflite, MediaPipe Tasks with
    its own tokenizer (needs EDGEBERT_MEDIAPIPE_PYTHON: the python of a venv with mediapipe==0.10.21), and
    in older runtimes apps still ship, each in its own venv (--install-runtimes makes them).
    Writes the table into manifest.json (compatibility). Exit 4: a file changed since export, or it
    disagrees with PyTorch in the runtime it was verified with."""
    from edgebert.commands.compat import format_compat, run_compat  # heavy: torch

    if install_runtimes:
        from edgebert.export.runtime_envs import install_missing

        install_missing(on_step=lambda name: click.echo(f"installing {name} into the cache folder (once)", err=True))
    result = run_compat(folder=folder, no_write=no_write)
    _print(result, as_json, format_compat)
    ctx.exit(result["exit_code"])


@cli.command(epilog=_epilog())
@click.option("--device", required=True, help="profile name or .yaml path to calibrate")
@click.option(
    "--target", help="local | ssh://[user@]host[:port] | adb://[serial] (required unless the device is this machine)"
)
@click.option("--model", help="model folder (default: packaged MiniLM)")
@click.option(
    "--formats", callback=_formats, help=f"formats to calibrate ({_FORMATS_HELP}; default: the profile's first)"
)
@click.option("--precisions", default="fp32,int8", show_default=True, help="comma-separated")
@click.option("--seq-len", type=int, default=128, show_default=True)
@click.option("--threads", type=int, help="threads (default: the profile's)")
@click.option("--runs", type=int, default=50, show_default=True, help="timed runs per measurement")
@click.option("--out", help="write a complete profile here (default: an override in ~/.config/edgebert/profiles/)")
@click.option("--force", is_flag=True, help="calibrate even if the target reports a model the profile does not list")
@click.option(
    "--quick",
    is_flag=True,
    help="host only: the about-a-minute calibration `export --device host` runs, cached per machine",
)
@_runner_flags
@click.option("--json", "as_json", is_flag=True)
def calibrate(as_json, **kw):
    """Measure sub-networks on a target and refit a device's latency model.

    Exports up to 10 sub-networks, measures them on --target, refits the device's latency coefficients,
    reports the held-out error, and writes a profile override (the shipped profile is never modified)."""
    from edgebert.commands.calibrate import format_calibration, run_calibrate  # heavy: torch

    options = _options(kw)
    _print(run_calibrate(**kw, options=options, progress=_progress(as_json)), as_json, format_calibration)


@cli.command(epilog=_epilog("\n\nSeveral GPUs or machines: accelerate launch -m edgebert.train ..."))
@click.option(
    "--data",
    required=True,
    help="training data: .csv/.tsv/.jsonl (labelled), .txt (one text per line, "
    "--task embedding), or built-in: rotten-tomatoes",
)
@click.option("--out", required=True, help="output folder for the dynamic model")
@click.option("--model", help="starting model folder (default: the packaged MiniLM)")
@click.option(
    "--eval",
    "eval",
    help="dev data for the quality table (default: the built-in dev split, or a "
    "deterministic 20% hash split of --data)",
)
@click.option("--task", type=click.Choice(("classification", "embedding")), default="classification", show_default=True)
@click.option("--text-column", default="text", show_default=True)
@click.option("--text-pair-column", help="second text column (sentence pairs)")
@click.option("--label-column", default="label", show_default=True)
@click.option("--epochs", type=float, default=2.0, show_default=True, help="epochs per stage")
@click.option("--max-steps", type=int, help="cap on optimizer steps per stage")
@click.option("--teacher-max-steps", type=int, help="cap for teacher fine-tuning (default: --max-steps)")
@click.option("--batch-size", type=int, default=32, show_default=True, help="per process")
@click.option("--seq-len", type=int, default=128, show_default=True, help="max tokens; batches pad to their longest")
@click.option(
    "--lr",
    type=float,
    default=1e-4,
    show_default=True,
    help="peak learning rate (measured on MiniLM; BERT-base-sized models want 2e-5..5e-5, as in DynaBERT)",
)
@click.option("--warmup", type=float, default=0.1, show_default=True, help="share of each stage's steps")
@click.option("--weight-decay", type=float, default=0.01, show_default=True)
@click.option("--widths", callback=_floats, default="0.25,0.5,0.75,1.0", show_default=True)
@click.option("--depths", callback=_floats, default="0.5,0.75,1.0", show_default=True)
@click.option(
    "--rewire-texts", type=int, default=1024, show_default=True, help="training texts used to rank heads/neurons"
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint-every", type=int, default=100, show_default=True, help="steps between checkpoints")
@click.option("--keep-teacher", is_flag=True, help="also save the teacher in OUT/teacher")
@click.option(
    "--sandwich",
    type=int,
    default=0,
    show_default=True,
    metavar="N",
    help="width+depth stage: train the largest, the smallest and N random per-layer sub-networks per step "
    "(the sandwich rule; what `edgebert search` picks from) instead of DynaBERT's grid",
)
@click.option(
    "--exits",
    type=click.Choice(("romebert", "deebert")),
    is_flag=False,
    flag_value="romebert",
    help="also train an early-exit classifier after every layer: romebert (default when the flag is "
    "bare: joint, self-distilled) or deebert (exits after the backbone, which is frozen)",
)
@click.option(
    "--exit-pool",
    type=click.Choice(("mean", "cls")),
    default="mean",
    show_default=True,
    help="what the exit heads classify: the tokens' mean (mean) or the [CLS] state (cls, as the final head)",
)
@click.option(
    "--exit-lr-scale",
    type=float,
    default=10.0,
    show_default=True,
    metavar="X",
    help="the exit heads' learning rate as a multiple of --lr (they start as copies of the final head)",
)
@click.option(
    "--quantized",
    help="after training, also convert every sub-network as FORMAT/PRECISION or FORMAT/RECIPE and score it on "
    "the dev set in its runtime, for the selector (default: onnx/int8,onnx/fp16; e.g. add tflite/int8)",
)
@click.option("--no-quantized", is_flag=True, help="skip those scores (saves two ONNX conversions per sub-network)")
@click.option("--resume", is_flag=True, help="continue an interrupted run of the same --out")
@click.option("--force", is_flag=True, help="replace an existing --out / discard an unfinished run")
def train(**kw):
    """DynaBERT dynamic training (width, then width+depth) with distillation."""
    from edgebert.commands.train import format_train, run_train  # heavy: torch

    try:
        click.echo(format_train(run_train(kw, progress=True)))
    except KeyboardInterrupt:
        click.echo(
            "edgebert train: finished stages and the last checkpoint are kept; continue with the same command "
            "plus --resume",
            err=True,
        )
        raise


@cli.command(
    epilog=_epilog("\n\n--memory with --device: exit 3 names the smallest size any searched compression reaches")
)
@click.option("--model", help="dynamic model folder with a task head (from `edgebert train`), or --task embedding")
@click.option("--data", required=True, help="distillation data, as for `edgebert train` (or built-in: rotten-tomatoes)")
@click.option("--out", required=True, help="output folder for the compressed dynamic model")
@click.option("--eval", "eval", help="dev data for the quality table (default: as `edgebert train`)")
@click.option("--task", type=click.Choice(("classification", "embedding")), default="classification", show_default=True)
@click.option("--text-column", default="text", show_default=True)
@click.option("--text-pair-column", help="second text column (sentence pairs)")
@click.option("--label-column", default="label", show_default=True)
@click.option(
    "--embedding-rank", help="word-table rank: a count (128) or a share of the hidden size (0.5); default dense"
)
@click.option("--weight-rank", help="rank of every projection/FFN matrix: a count or a share (0.5); default dense")
@click.option(
    "--prune", type=float, default=0.0, show_default=True, help="share of heads/neurons (or weights) to remove"
)
@click.option(
    "--prune-kind",
    type=click.Choice(("structured", "unstructured")),
    default="structured",
    show_default=True,
    help="structured: whole heads/neurons (smaller, faster files); unstructured: zeros stored dense (saves no bytes)",
)
@click.option(
    "--prune-steps", type=int, help="structured pruning in N steps, each distilled (LadaBERT) [default: 3; 1: at once]"
)
@click.option("--memory", help="search ranks/pruning whose predicted size fits, e.g. 12MB (needs --device)")
@click.option("--device", help="device profile whose format and memory model --memory is judged by")
@click.option("--epochs", type=float, default=1.0, show_default=True, help="distillation epochs")
@click.option("--max-steps", type=int, default=300, show_default=True, help="cap on distillation steps")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--seq-len", type=int, default=128, show_default=True, help="max tokens; batches pad to their longest")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--widths", callback=_floats, default="0.25,0.5,0.75,1.0", show_default=True)
@click.option("--depths", callback=_floats, default="0.5,0.75,1.0", show_default=True)
@click.option(
    "--subnets-per-step",
    type=int,
    default=4,
    show_default=True,
    help="sub-networks distilled per step: the largest, the smallest and N-2 random from the width x depth grid "
    "(0: all of them every step; slower); every one is scored afterwards",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint-every", type=int, default=100, show_default=True, help="steps between checkpoints")
@click.option(
    "--quantized",
    help="classifiers: after distilling, also convert every sub-network as FORMAT/PRECISION or FORMAT/RECIPE and "
    "score it on the dev set in its runtime, as `train` does (default: onnx/int8,onnx/fp16)",
)
@click.option("--no-quantized", is_flag=True, help="skip those scores (saves two ONNX conversions per sub-network)")
@click.option("--resume", is_flag=True, help="continue an interrupted run of the same --out")
@click.option("--force", is_flag=True, help="replace an existing --out / discard an unfinished run")
@click.option("--json", "as_json", is_flag=True, help="print compression.json on stdout")
def compress(as_json, **kw):
    """LadaBERT hybrid compression: factorise, prune, distil; keeps every (width, depth) and re-measures them."""
    from edgebert.commands.compress import format_compress, run_compress  # heavy: torch

    try:
        _print(run_compress(kw, progress=_progress(as_json)), as_json, format_compress)
    except KeyboardInterrupt:
        click.echo(
            "edgebert compress: the last checkpoint is kept; continue with the same command plus --resume", err=True
        )
        raise


@cli.command(epilog=_epilog())
@click.option("--model", required=True, help="dynamic model folder (from `edgebert train`)")
@click.option("--data", required=True, help="a .csv/.tsv/.jsonl/.txt file, or the built-in 'rotten-tomatoes'")
@click.option(
    "--split",
    type=click.Choice(("train", "dev", "test")),
    default="dev",
    show_default=True,
    help="split of a built-in data set",
)
@click.option("--text-column", default="text", show_default=True)
@click.option("--text-pair-column", help="second text column (sentence pairs)")
@click.option("--label-column", default="label", show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--seq-len", type=int, default=128, show_default=True)
@click.option(
    "--quantized",
    default="",
    help="also score every sub-network converted as FORMAT/PRECISION or FORMAT/RECIPE, run in its runtime (e.g. "
    "onnx/int8,tflite/int8,onnx/int8-keep-ends); the selector uses these figures as measured. Scores of other "
    "formats/recipes already in the table, measured on the same data, are kept",
)
@click.option("--out", help="write the table here (default: MODEL/quality.json)")
@click.option("--no-write", is_flag=True, help="print the table only")
def evaluate(**kw):
    """Measure the quality table of a dynamic model on data."""
    from edgebert.commands.train import format_evaluation, run_evaluate  # heavy: torch

    click.echo(format_evaluation(*run_evaluate(**kw, progress=True)))


@cli.command(epilog=_epilog())
@click.argument("config")
@click.option(
    "--only",
    multiple=True,
    metavar="NAME",
    help="only this entry (its folder name) or device; repeat or comma-separate",
)
@click.option(
    "--check",
    is_flag=True,
    help="re-verify the built artifacts (files, sha256, parity) against their manifests; build nothing",
)
@click.option("--no-cache", is_flag=True, help="rebuild the selected entries even if nothing changed")
@click.option("--out", help="output folder (default: [output] dir of the config, relative to the config)")
@click.option("--json", "as_json", is_flag=True, help="print index.json (with --check: the check report) on stdout")
@click.pass_context
def build(ctx, config, only, check, no_cache, out, as_json):
    """Build every (device, budget) of an edgebert.toml: cached, reproducible, with index.json.

    Exports the sub-network chosen for each entry into its own folder, skips entries whose inputs did
    not change, and writes index.json. Exit 3 lists the entries that fit no candidate; 4 a parity failure."""
    from edgebert.commands.build import format_check, format_summary, run_build  # heavy: torch

    result = run_build(
        config=config, only=list(only) or None, check=check, no_cache=no_cache, out=out, progress=_progress(as_json)
    )
    _print(result, as_json, format_check if check else format_summary)
    ctx.exit(result["exit_code"])


@cli.command(epilog=_epilog())
@click.option("--model", help="model folder (default: packaged MiniLM)")
@click.option("--device", required=True, help="device profile name or .yaml path whose latency/memory models judge")
@click.option("--budgets", required=True, help="latency budgets, comma-separated, e.g. 10ms,20ms,40ms")
@click.option("--memory", help="memory limit, e.g. 150MB (default: the profile's)")
@click.option("--formats", callback=_formats, help=f"{_FORMATS_HELP}; the first is searched (default: the profile's)")
@click.option("--quantize", type=click.Choice(PRECISIONS), help="precision searched (default fp32)")
@click.option("--seq-len", type=int, default=128, show_default=True)
@click.option("--threads", type=int, help="threads (default: the profile's)")
@click.option("--data", help="dev set for measured quality (rotten-tomatoes or a file); default: the embedding proxy")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--sample", type=int, default=48, show_default=True, help="configurations measured to fit the predictor")
@click.option("--population", type=int, default=40, show_default=True)
@click.option("--generations", type=int, default=15, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--no-calibrate",
    is_flag=True,
    help="--device host: never calibrate this machine (a fit made on another machine keeps its widened error)",
)
@click.option("--json", "as_json", is_flag=True, help="print the rows and the Pareto front as JSON")
def search(as_json, **kw):
    """Search per-layer sub-networks (heads, FFN width, which layers) under each budget (issue 17).

    One row per budget: the chosen per-layer spec, its measured quality and source, grid_quality (the best
    uniform DynaBERT grid point within the same budget), predicted latency and memory."""
    from edgebert.commands.search import format_search, run_search  # heavy: torch

    say = lambda text: click.echo(f"edgebert: {text}", err=True)  # noqa: E731
    _print(run_search(**kw, progress=_progress(as_json), say=say), as_json, format_search)


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (documented in every --help)."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(cli.main(args=argv, prog_name="edgebert", standalone_mode=False) or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except EdgebertError as exc:
        click.echo(f"edgebert: error: {exc}", err=True)
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort) as exc:
        # click turns any KeyboardInterrupt raised inside a command into Abort (the cause is kept).
        if isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated):
            click.echo("edgebert: terminated; nothing half-written was left behind", err=True)
            return EXIT_TERMINATED
        click.echo("edgebert: interrupted; nothing half-written was left behind", err=True)
        return 130
    except Exception as exc:  # after Abort, which is a RuntimeError
        if not is_disk_full(exc):
            raise
        # Outside an output folder's staging (a cache, a checkpoint): atomic_dir explains its own.
        click.echo(f"edgebert: error: {disk_full_message(Path(getattr(exc, 'filename', None) or '.'))}", err=True)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
