"""edgebert.toml: what `edgebert build` builds, read and checked before any work starts.

    model = "models/my-dynabert"          # optional; omitted: the packaged MiniLM
    formats = ["onnx", "tflite", "torchscript"]
    [output]
    dir = "dist"
    folder = "{device}-{budget}"
    [matrix.pixel6]
    latency = ["40ms", "20ms"]
    search = true                         # optional: a per-layer searched sub-network (export --search)
    [[entry]]
    device = "raspberry-pi-5"
    latency = "100ms"
    target = "ssh://pi@raspberrypi.local"  # optional: also measure there
    [runner]                              # optional: how to reach and time the targets (as bench's flags)
    benchmark_binary = "tools/android_aarch64_benchmark_model"
    cooldown = 10                         # seconds of idle between artifacts on a target
    [matrix.pixel6.runner]                # a matrix device's or an [[entry]]'s own: key by key over [runner]
    adb = "/opt/platform-tools/adb"

Every mistake is a BuildConfigError (exit 2) naming the file, the key and what was expected.
Paths in the file are relative to the file. The README documents every key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from edgebert.artifact import MIN_SEQ_LEN, PRECISIONS
from edgebert.bench import MeasureSettings
from edgebert.errors import EdgebertError, UsageError
from edgebert.model.packaged import default_model_dir
from edgebert.registry import CONVERTERS
from edgebert.runners import RunnerOptions, Target, parse_target
from edgebert.select.budget import Budget
from edgebert.select.profiles import DeviceProfile, load_profile

__all__ = ["BuildConfig", "BuildEntry", "BuildConfigError", "load_build_config", "select_entries", "FOLDER_PATTERN"]

FOLDER_PATTERN = "{device}-{budget}"
_TOP_KEYS = (
    "model",
    "formats",
    "seq_len",
    "quantize",
    "threads",
    "measure",
    "runs",
    "output",
    "matrix",
    "entry",
    "runner",
)
_OUTPUT_KEYS = ("dir", "folder")
_MATRIX_KEYS = ("latency", "memory", "target", "runner", "search")
_ENTRY_KEYS = ("device", "latency", "memory", "target", "folder", "runner", "search")
_PLACEHOLDERS = ("device", "budget", "memory")
# [runner] key -> RunnerOptions field; the keys are bench's flags. These may name local files.
_RUNNER_KEYS = {
    "adb": "adb_path",
    "benchmark_binary": "benchmark_binary",
    "onnx_perf_test": "onnx_perf_test",
    "executorch_runner": "executorch_runner",
    "identity": "ssh_identity",
    "ssh_config": "ssh_config",
    "remote_python": "remote_python",
    "taskset": "taskset_mask",
}
_RUNNER_FILES = ("adb", "benchmark_binary", "onnx_perf_test", "executorch_runner", "identity", "ssh_config")
# [runner] key -> MeasureSettings field (bench's --runs, --timeout, --cooldown, --sustained), with what it takes.
_MEASURE_KEYS = {
    "runs": ("runs", "a positive integer"),
    "timeout": ("timeout_s", "a number of seconds > 0"),
    "cooldown": ("cooldown_s", "a number of seconds >= 0"),
    "sustained": ("sustained_s", "a number of seconds >= 0"),
}


class BuildConfigError(UsageError):
    """A mistake in the build config file (exit code 2)."""


@dataclass(frozen=True)
class BuildEntry:
    """One (device, budget) of the matrix; `folder` is also its name for --only and in index.json.

    The profile, budget and target are resolved once, when the config is read."""

    folder: str
    device: str  # profile name, or the resolved path of a profile .yaml
    profile: DeviceProfile = field(compare=False)
    budget: Budget
    target: Target | None = None
    profile_fingerprint: str = ""  # of the profile as loaded: calibration overrides and host detection included
    options: RunnerOptions = RunnerOptions()  # how to reach the target: [runner], then the entry's own runner
    measuring: MeasureSettings = MeasureSettings()  # runs, timeout, cooldown, sustained: the same tables
    search: bool = False  # `search = true`: the per-layer search (export --search) instead of the uniform grid

    @property
    def profile_name(self) -> str:
        return self.profile.name

    @property
    def profile_sha256(self) -> str:
        return self.profile.sha256

    @property
    def latency(self) -> str | None:  # as written ("40ms"); None: the profile's default budget
        return self.budget.latency_text

    @property
    def memory(self) -> str | None:
        return self.budget.memory_text

    @property
    def latency_ms(self) -> float:
        return self.budget.latency_ms

    @property
    def memory_mb(self) -> float:
        return self.budget.memory_mb


@dataclass(frozen=True)
class BuildConfig:
    path: Path
    model: str | None  # resolved folder; None: the packaged default
    formats: tuple[str, ...] | None  # None: each entry's selected format only
    seq_len: int
    quantize: str | None
    threads: int | None
    measure: bool  # also time every artifact on the machine running the build
    runs: int  # [runner] runs (or the top-level runs); an entry's own runner may set another
    out: Path
    folder_pattern: str
    entries: tuple[BuildEntry, ...]
    runner_options: RunnerOptions = RunnerOptions()  # [runner]: how to reach the entries' targets


class _Where:
    """Error messages that name the file and the key, e.g. `edgebert.toml: [matrix.pixel6] latency: ...`."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, key: str, expected: str, got=None) -> BuildConfigError:
        shown = "" if got is None else f", got {got!r}"
        return BuildConfigError(f"{self.path}: {key}: expected {expected}{shown}")

    def check_keys(self, table: dict, allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise BuildConfigError(f"{self.path}: {where}: unknown key {key!r}; allowed: {', '.join(allowed)}")

    def typed(self, table: dict, key: str, where: str, kind, expected: str, default=None):
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise self.error(f"{where}{key}", expected, value)
        return value

    def strings(self, table: dict, key: str, where: str, expected: str) -> list[str] | None:
        """A string or a list of strings (TOML lets one budget stand alone or be listed)."""
        if key not in table:
            return None
        value = table[key]
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
            raise self.error(f"{where}{key}", expected, value)
        return items


def _read_toml(path: Path) -> dict:
    import tomllib

    if not path.is_file():
        raise BuildConfigError(f"build config {path} does not exist; see examples/edgebert.toml")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildConfigError(f"{path} is not valid TOML: {exc}") from None


def _formats(w: _Where, doc: dict) -> tuple[str, ...] | None:

    names = w.strings(doc, "formats", "", f"a list of formats from: {', '.join(CONVERTERS.names())}")
    if names is None:
        return None
    for n in names:
        if n not in CONVERTERS.names():
            raise w.error("formats", f"formats from: {', '.join(CONVERTERS.names())}", n)
    if len(set(names)) != len(names):
        raise w.error("formats", "each format once", names)
    return tuple(names)


def _model(w: _Where, doc: dict, base: Path) -> str | None:
    text = w.typed(doc, "model", "", str, "a model folder path (omit it for the packaged MiniLM)")
    if text is None:
        default_model_dir()  # fails now (exit 2, with the pip command) if the package is missing
        return None
    path = (base / text).expanduser()
    if not path.is_dir():
        raise w.error("model", "an existing model folder (relative to the config file)", text)
    return str(path.resolve())


def _budgets(w: _Where, table: dict, where: str) -> tuple[list, list]:
    latencies = w.strings(table, "latency", where, 'a latency budget like "40ms", or a list of them') or [None]
    memories = w.strings(table, "memory", where, 'a memory limit like "150MB", or a list of them') or [None]
    return latencies, memories


def _entry(
    w: _Where,
    base: Path,
    where: str,
    device: str,
    latency,
    memory,
    target,
    folder,
    pattern,
    runner: tuple[RunnerOptions, MeasureSettings],
    search: bool = False,
) -> BuildEntry:
    if device.endswith((".yaml", ".yml")) or "/" in device:
        device = str((base / device).expanduser().resolve())
    try:
        profile = load_profile(device)  # an unknown name lists the known devices
    except EdgebertError as exc:
        raise BuildConfigError(f"{w.path}: {where}: {exc}") from None
    try:
        budget = Budget.resolve(profile, latency, memory)
        parsed_target = parse_target(target) if target is not None else None
    except UsageError as exc:
        raise BuildConfigError(f"{w.path}: {where}: {exc}") from None
    if folder is None:
        folder = pattern.format(
            device=profile.name, budget=f"{budget.latency_ms:g}ms", memory=f"{budget.memory_mb:g}MB"
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@+=-]*", folder) or folder == "index.json":
        raise w.error(f"{where} folder", "a plain folder name (letters, digits, '.', '_', '-'; no '/')", folder)
    return BuildEntry(folder, device, profile, budget, parsed_target, _fingerprint(profile), *runner, search)


def _fingerprint(profile) -> str:
    import hashlib
    import json

    facts = profile.to_dict()
    facts.pop("path")  # where the repository is checked out must not invalidate the cache
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _matrix(w: _Where, doc: dict, base: Path, pattern: str, defaults: dict) -> list[BuildEntry]:
    matrix = w.typed(doc, "matrix", "", dict, 'a table of devices: [matrix.pixel6] latency = ["40ms"]', {})
    entries = []
    for device, table in matrix.items():
        where = f"[matrix.{device}] "
        if not isinstance(table, dict):
            raise w.error(f"matrix.{device}", 'a table such as {latency = ["40ms"], memory = "150MB"}', table)
        w.check_keys(table, _MATRIX_KEYS, f"[matrix.{device}]")
        target = w.typed(table, "target", where, str, "a target: local, ssh://user@host, adb://serial")
        own = _runner_values(w, table, f"[matrix.{device}.runner]", base)
        runner = _runner_objects(w, {**defaults, **own}, f"[matrix.{device}.runner]" if own else "[runner]")
        latencies, memories = _budgets(w, table, where)
        search = w.typed(table, "search", where, bool, "true or false", False)
        for lat in latencies:
            for mem in memories:
                entries.append(_entry(w, base, where.strip(), device, lat, mem, target, None, pattern, runner, search))
    return entries


def _explicit(w: _Where, doc: dict, base: Path, pattern: str, defaults: dict) -> list[BuildEntry]:
    raw = w.typed(doc, "entry", "", list, "an array of tables: [[entry]] device = ... latency = ...", [])
    entries = []
    for i, table in enumerate(raw):
        where = f"[[entry]] #{i + 1} "
        if not isinstance(table, dict):
            raise w.error(f"entry[{i}]", "a table", table)
        w.check_keys(table, _ENTRY_KEYS, where.strip())
        device = w.typed(table, "device", where, str, "a device profile name or .yaml path")
        if device is None:
            raise BuildConfigError(f"{w.path}: {where}device: missing; expected a device profile name or .yaml path")
        lat = w.typed(table, "latency", where, str, 'a latency budget like "40ms"')
        mem = w.typed(table, "memory", where, str, 'a memory limit like "150MB"')
        target = w.typed(table, "target", where, str, "a target: local, ssh://user@host, adb://serial")
        folder = w.typed(table, "folder", where, str, "a folder name")
        search = w.typed(table, "search", where, bool, "true or false", False)
        own = _runner_values(w, table, f"[[entry]] #{i + 1} runner", base)
        runner = _runner_objects(w, {**defaults, **own}, f"[[entry]] #{i + 1} runner" if own else "[runner]")
        entries.append(_entry(w, base, where.strip(), device, lat, mem, target, folder, pattern, runner, search))
    return entries


def _pattern(w: _Where, output: dict) -> str:
    pattern = w.typed(
        output, "folder", "[output] ", str, 'a folder name pattern such as "{device}-{budget}"', FOLDER_PATTERN
    )
    for name in re.findall(r"{([^}]*)}", pattern):
        if name not in _PLACEHOLDERS:
            raise w.error("[output] folder", f"placeholders from {{{'}, {'.join(_PLACEHOLDERS)}}}", "{" + name + "}")
    return pattern


def _runner_values(w: _Where, table: dict, where: str, base: Path) -> dict:
    """The runner table inside `table` ([runner] at the top, `runner` in a matrix device or an [[entry]]),
    checked key by key: {RunnerOptions or MeasureSettings field: value}, only the keys it sets.

    A file that exists relative to the config is that file; any other string is used as written
    (benchmark_model may be a path on the device, adb a name on PATH)."""
    runner = table.get("runner", {})
    if not isinstance(runner, dict):
        raise w.error(where, 'a table such as {benchmark_binary = "tools/benchmark_model", cooldown = 10}', runner)
    w.check_keys(runner, (*_RUNNER_KEYS, *_MEASURE_KEYS), where)
    values = {}
    for key, field_name in _RUNNER_KEYS.items():
        value = w.typed(runner, key, f"{where} ", str, "a string")
        if value is not None and key in _RUNNER_FILES and (base / value).expanduser().is_file():
            value = str((base / value).expanduser().resolve())
        if value is not None:
            values[field_name] = value
    for key, (field_name, expected) in _MEASURE_KEYS.items():
        value = w.typed(runner, key, f"{where} ", int if key == "runs" else (int, float), expected)
        if value is None:
            continue
        if not math.isfinite(value) or value < (1 if key == "runs" else 0) or (key == "timeout" and value == 0):
            raise w.error(f"{where} {key}", expected, value)
        values[field_name] = value
    return values


def _runner_objects(w: _Where, values: dict, where: str) -> tuple[RunnerOptions, MeasureSettings]:
    """RunnerOptions and MeasureSettings from checked values (merged: [runner], then an entry's own)."""
    measure = {k: values[k] for k in ("runs", "timeout_s", "cooldown_s", "sustained_s") if k in values}
    try:
        options = RunnerOptions(**{k: v for k, v in values.items() if k not in measure})
    except UsageError as exc:
        raise BuildConfigError(f"{w.path}: {where}: {exc}") from None
    try:
        settings = MeasureSettings(**measure)
    except UsageError as exc:  # what no single key shows: --sustained must fit in --timeout
        raise BuildConfigError(f"{w.path}: {where} sustained/timeout: {exc}") from None
    return options, settings


def _runner_defaults(w: _Where, doc: dict, base: Path) -> dict:
    """[runner], with the top-level `runs` of older configs as its runs."""
    w.typed(doc, "runner", "", dict, 'a table: [runner] benchmark_binary = "path"', {})
    values = _runner_values(w, doc, "[runner]", base)
    runs = w.typed(doc, "runs", "", int, "a positive integer")
    if runs is not None:
        if "runs" in values:
            raise BuildConfigError(f"{w.path}: runs: given both at the top level and in [runner]; keep one")
        if runs < 1:
            raise w.error("runs", "a positive integer", runs)
        values["runs"] = runs
    return values


def load_build_config(path: str | Path, out: str | Path | None = None) -> BuildConfig:
    """Read and check the whole file; `out` (the --out flag) replaces [output] dir."""

    path = Path(path)
    doc = _read_toml(path)
    w, base = _Where(path), path.resolve().parent
    w.check_keys(doc, _TOP_KEYS, "top level")
    output = w.typed(doc, "output", "", dict, 'a table: [output] dir = "dist"', {})
    w.check_keys(output, _OUTPUT_KEYS, "[output]")
    pattern = _pattern(w, output)
    seq_len = w.typed(doc, "seq_len", "", int, f"an integer >= {MIN_SEQ_LEN}", 128)
    if seq_len < MIN_SEQ_LEN:
        raise w.error("seq_len", f"an integer >= {MIN_SEQ_LEN}", seq_len)
    quantize = w.typed(doc, "quantize", "", str, f"one of {', '.join(PRECISIONS)} (omit it to let edgebert choose)")
    if quantize is not None and quantize not in PRECISIONS:
        raise w.error("quantize", f"one of {', '.join(PRECISIONS)}", quantize)
    threads = w.typed(doc, "threads", "", int, "a positive integer")
    if threads is not None and threads < 1:
        raise w.error("threads", "a positive integer", threads)
    defaults = _runner_defaults(w, doc, base)
    options, settings = _runner_objects(w, defaults, "[runner]")
    formats = _formats(w, doc)
    model = _model(w, doc, base)
    entries = _matrix(w, doc, base, pattern, defaults) + _explicit(w, doc, base, pattern, defaults)
    if not entries:
        raise BuildConfigError(
            f"{path}: no entries: add a [matrix.DEVICE] table or an [[entry]] (see examples/edgebert.toml)"
        )
    seen: dict[str, BuildEntry] = {}
    for e in entries:
        if e.folder in seen:
            raise BuildConfigError(
                f"{path}: two entries would write folder {e.folder!r} ({seen[e.folder].device} and "
                f"{e.device}); add {{memory}} to [output] folder or give the entries a folder"
            )
        seen[e.folder] = e
    dir_text = w.typed(output, "dir", "[output] ", str, "an output folder path", "dist")
    return BuildConfig(
        path=path,
        model=model,
        formats=formats,
        seq_len=seq_len,
        quantize=quantize,
        threads=threads,
        measure=w.typed(doc, "measure", "", bool, "true or false", False),
        runs=settings.runs,
        out=Path(out) if out is not None else base / dir_text,
        folder_pattern=pattern,
        entries=tuple(entries),
        runner_options=options,
    )


def select_entries(cfg: BuildConfig, only: list[str] | None) -> tuple[BuildEntry, ...]:
    """--only NAME: an entry's folder name or a device name (all of its budgets); repeat or comma-separate."""
    if not only:
        return cfg.entries
    wanted = [n.strip() for item in only for n in item.split(",") if n.strip()]
    known = {e.folder for e in cfg.entries} | {e.profile_name for e in cfg.entries}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise UsageError(
            f"--only {', '.join(unknown)}: no such entry or device in {cfg.path}; entries: "
            f"{', '.join(e.folder for e in cfg.entries)}"
        )
    return tuple(e for e in cfg.entries if e.folder in wanted or e.profile_name in wanted)
