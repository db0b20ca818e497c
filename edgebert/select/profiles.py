"""Device profiles: what a phone or board offers, how to reach it, and its latency-model coefficients.

A profile is a YAML file (data only) in `device_profiles/`, or any file given by path. `host`
describes the machine edgebert runs on: its CPU and RAM are detected when it is loaded. A
calibration written to $EDGEBERT_CONFIG_DIR/profiles/NAME.yaml (default ~/.config/edgebert)
replaces the shipped latency-model entries it covers, and the profile says so.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import reprlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import edgebert
from edgebert.artifact import PRECISIONS
from edgebert.errors import ProfileError
from edgebert.registry import CONVERTERS
from edgebert.select.latency import KIND, LatencyEntry, LatencyModel, MemoryEntry
from edgebert.user_cache import cache_dir

__all__ = [
    "CpuCluster",
    "Cpu",
    "DeviceProfile",
    "load_profile",
    "list_profiles",
    "profile_names",
    "profiles_dir",
    "config_dir",
    "cache_dir",
    "host_machine",
    "host_calibration_path",
    "REACH",
]

REACH = ("adb", "ssh", "local")
# ISA features that matter to the kernels these runtimes pick (int8 dot products, fp16, wide SIMD).
_HOST_ISA = (
    "neon",
    "asimd",
    "asimddp",
    "i8mm",
    "fphp",
    "asimdhp",
    "sve",
    "sve2",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_int8",
    "f16c",
)


def _known_formats() -> set[str]:
    return set(CONVERTERS.names())  # names only: no converter (and no torch) is imported


@dataclass(frozen=True)
class CpuCluster:
    cores: int
    microarchitecture: str
    max_ghz: float


@dataclass(frozen=True)
class Cpu:
    clusters: tuple[CpuCluster, ...]
    isa: tuple[str, ...] = ()

    @property
    def cores(self) -> int:
        return sum(c.cores for c in self.clusters)


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    cpu: Cpu
    ram_mb: int
    model_memory_mb: float  # what an app may spend on the model
    default_threads: int
    formats: tuple[str, ...]  # preferred first
    runtime: str
    reach: str  # adb | ssh | local
    default_budget_ms: float
    latency_model: LatencyModel
    big_core_mask: str | None = None  # taskset mask of the big cores (phones)
    device_models: tuple[str, ...] = ()  # model strings the device reports (ro.product.model, /proc/device-tree/model)
    path: str = ""
    sha256: str = ""  # of the profile file as read
    provenance: tuple[str, ...] = ()  # what else shaped this profile (detection, calibration overrides)
    # host only: latency entries (format, precision, threads) fitted on another machine, not calibrated on this one
    calibration_wanted: tuple[tuple[str, str, int], ...] = ()
    extra: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        """The manifest's view: identity and the facts a reader needs, with the latency model."""
        return {
            "name": self.name,
            "path": self.path,
            "sha256": self.sha256,
            "description": self.description,
            "cpu": {"clusters": [vars(c) for c in self.cpu.clusters], "isa": list(self.cpu.isa)},
            "ram_mb": self.ram_mb,
            "model_memory_mb": self.model_memory_mb,
            "default_threads": self.default_threads,
            "formats": list(self.formats),
            "runtime": self.runtime,
            "reach": self.reach,
            "default_budget_ms": self.default_budget_ms,
            "big_core_mask": self.big_core_mask,
            "device_models": list(self.device_models),
            "provenance": list(self.provenance),
            "latency_model": self.latency_model.to_dict(),
        }


# ---- where profiles live ---------------------------------------------------------------------------


def profiles_dir() -> Path:
    """device_profiles/ at the repository root (source checkout) or inside the package (wheel)."""

    pkg = Path(edgebert.__file__).resolve().parent
    candidates = [Path(p) / "device_profiles" for p in edgebert.__path__] + [pkg.parent / "device_profiles"]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def config_dir() -> Path:
    return Path(os.environ.get("EDGEBERT_CONFIG_DIR") or Path.home() / ".config" / "edgebert")


def profile_names() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def list_profiles() -> list[DeviceProfile]:
    return [load_profile(n) for n in profile_names()]


def load_profile(name_or_path: str | os.PathLike, host_calibration: bool = True) -> DeviceProfile:
    """A shipped profile by name (`pixel6`), or a profile file by path (`./my-board.yaml`).

    host_calibration=False: a `detect: true` profile ignores this machine's cached quick calibration
    (`--no-calibrate`: the shipped coefficients, widened when they were fitted elsewhere)."""
    text = str(name_or_path)
    looks_like_path = text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text or Path(text).is_file()
    if looks_like_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ProfileError(
                f"device profile file {path} does not exist; give a .yaml profile path or one of: "
                f"{', '.join(profile_names())}"
            )
    else:
        path = profiles_dir() / f"{text}.yaml"
        if not path.is_file():
            raise ProfileError(
                f"unknown device {text!r}; known devices: {', '.join(profile_names())} "
                f"(or give the path of a profile .yaml file)"
            )
    profile = _read_profile(path, host_calibration)
    return _apply_override(profile)


# ---- reading and validating ------------------------------------------------------------------------


class _Reader:
    """Typed field access that names the file, the field and what was expected when it fails."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, expected: str, got=None) -> ProfileError:
        shown = "" if got is None else f", got {_SHORT.repr(got)}"  # never echo a huge value back
        return ProfileError(f"{self.path}: field '{where}' must be {expected}{shown}")

    def get(self, d: dict, key: str, where: str, kind, expected: str, required: bool = True, default=None):
        full = f"{where}.{key}" if where else key
        if key not in d or d[key] is None:
            if required:
                raise ProfileError(f"{self.path}: field '{full}' is missing; expected {expected}")
            return default
        v = d[key]
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
            raise self.fail(full, expected, v)
        return v

    def positive(self, d, key, where, kind=float, required=True, default=None, allow_zero=False, allow_inf=False):
        word = "a number >= 0" if allow_zero else "a number > 0"
        if not required and d.get(key) is None:
            return default
        v = self.get(d, key, where, kind, word, required, default)
        full = f"{where}.{key}" if where else key
        if isinstance(v, float) and (math.isnan(v) or (math.isinf(v) and not allow_inf)):
            raise self.fail(full, word + (" (or .inf)" if allow_inf else ""), v)
        if v < 0 or (v == 0 and not allow_zero):
            raise self.fail(full, word, v)
        return v

    def mapping(self, d, key, where, required=True) -> dict:
        return self.get(d, key, where, dict, "a mapping (key: value lines)", required, {})

    def seq(self, d, key, where, required=True) -> list:
        return self.get(d, key, where, list, "a list", required, [])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# A shipped profile holds ~300 values; an alias bomb (each level repeating the last nine times) would hold
# billions once walked or printed, so a profile is refused past this many.
_MAX_NODES = 100_000
_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxdict = 6
_SHORT.maxlevel = 2


def _expanded_size(value, budget: int) -> int:
    """How many values `value` holds once every YAML alias is expanded, counting no further than budget + 1."""
    count = 0
    stack = [value]
    while stack and count <= budget:
        v = stack.pop()
        count += 1
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return count


def _load_yaml(path: Path) -> tuple[dict, str]:
    import yaml

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"cannot read device profile {path}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProfileError(
            f"{path} is not valid YAML: {str(exc).splitlines()[0]}; fix the file or regenerate it"
        ) from None
    if _expanded_size(doc, _MAX_NODES) > _MAX_NODES:
        raise ProfileError(
            f"{path} expands to more than {_MAX_NODES:,} values through YAML aliases (*name); a device profile "
            "holds a few hundred: write the values out instead of nesting aliases"
        )
    if not isinstance(doc, dict):
        raise ProfileError(
            f"{path}: a device profile must be a YAML mapping (name: ..., cpu: ...), got {type(doc).__name__}"
        )
    return doc, _sha256(data)


def _read_profile(path: Path, host_calibration: bool = True) -> DeviceProfile:
    doc, sha = _load_yaml(path)
    r = _Reader(path)
    name = r.get(doc, "name", "", str, "the device name, a string")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise r.fail("name", "letters, digits, '-', '_' or '.'", name)
    detect = r.get(doc, "detect", "", bool, "true or false", required=False, default=False)
    cpu = _read_cpu(r, r.mapping(doc, "cpu", "", required=not detect))
    formats = r.seq(doc, "formats", "")
    known = _known_formats()
    for i, f in enumerate(formats):
        if f not in known:
            raise r.fail(f"formats[{i}]", f"one of {', '.join(sorted(known))}", f)
    if not formats:
        raise r.fail("formats", "a non-empty list of formats, preferred first")
    reach = r.get(doc, "reach", "", str, f"one of {', '.join(REACH)}")
    if reach not in REACH:
        raise r.fail("reach", f"one of {', '.join(REACH)}", reach)
    mask = r.get(doc, "big_core_mask", "", str, "a hex CPU mask such as '0xc0'", required=False)
    if mask is not None and not re.fullmatch(r"0x[0-9a-fA-F]+", mask):
        raise r.fail("big_core_mask", "a hex CPU mask such as '0xc0'", mask)
    profile = DeviceProfile(
        name=name,
        description=r.get(doc, "description", "", str, "a one-line description"),
        cpu=cpu,
        ram_mb=r.positive(doc, "ram_mb", "", int, required=not detect, default=0),
        model_memory_mb=r.positive(doc, "model_memory_mb", ""),
        default_threads=r.positive(doc, "default_threads", "", int),
        formats=tuple(formats),
        runtime=r.get(doc, "runtime", "", str, "the runtime the device runs, e.g. 'LiteRT 2.x (XNNPACK)'"),
        reach=reach,
        default_budget_ms=r.positive(doc, "default_budget_ms", ""),
        big_core_mask=mask,
        device_models=tuple(str(m) for m in r.seq(doc, "device_models", "", required=False)),
        latency_model=_read_latency_model(r, r.mapping(doc, "latency_model", ""), name),
        path=str(path.resolve()),
        sha256=sha,
        extra={k: v for k, v in doc.items() if k in ("notes", "sources")},
    )
    if detect:
        profile = _detect_host(profile, host_calibration)
    return profile


def _read_cpu(r: _Reader, d: dict) -> Cpu:
    if not d:
        return Cpu(clusters=())
    clusters = []
    raw = r.seq(d, "clusters", "cpu")
    if not raw:
        raise r.fail("cpu.clusters", "a non-empty list of {cores, microarchitecture, max_ghz}")
    for i, c in enumerate(raw):
        where = f"cpu.clusters[{i}]"
        if not isinstance(c, dict):
            raise r.fail(where, "a mapping with cores, microarchitecture, max_ghz", c)
        clusters.append(
            CpuCluster(
                cores=r.positive(c, "cores", where, int),
                microarchitecture=r.get(c, "microarchitecture", where, str, "a core name, e.g. 'Cortex-A76'"),
                max_ghz=r.positive(c, "max_ghz", where),
            )
        )
    isa = r.seq(d, "isa", "cpu", required=False)
    for i, f in enumerate(isa):
        if not isinstance(f, str):
            raise r.fail(f"cpu.isa[{i}]", "an ISA feature name such as 'dotprod'", f)
    return Cpu(clusters=tuple(clusters), isa=tuple(isa))


def _provenance(r: _Reader, d: dict, where: str) -> dict:
    p = r.mapping(d, "provenance", where)
    r.get(p, "source", f"{where}.provenance", str, "where the numbers came from (a figure or a measurement)")
    date = p.get("date")
    if date is None:
        raise ProfileError(
            f"{r.path}: field '{where}.provenance.date' is missing; expected the date (YYYY-MM-DD) "
            "of the figure or measurement"
        )
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in p.items()}


def _read_latency_model(r: _Reader, d: dict, device: str) -> LatencyModel:
    kind = r.get(d, "kind", "latency_model", str, f"'{KIND}'", required=False, default=KIND)
    if kind != KIND:
        raise r.fail("latency_model.kind", f"'{KIND}' (the only model this edgebert knows)", kind)
    entries = []
    for i, e in enumerate(r.seq(d, "entries", "latency_model")):
        where = f"latency_model.entries[{i}]"
        if not isinstance(e, dict):
            raise r.fail(where, "a mapping of format, precision, threads and coefficients", e)
        fmt = r.get(e, "format", where, str, "a format name")
        if fmt not in _known_formats():
            raise r.fail(f"{where}.format", f"one of {', '.join(sorted(_known_formats()))}", fmt)
        precision = r.get(e, "precision", where, str, f"one of {', '.join(PRECISIONS)}")
        if precision not in PRECISIONS:
            raise r.fail(f"{where}.precision", f"one of {', '.join(PRECISIONS)}", precision)
        err = r.positive(e, "expected_error", where, allow_zero=True)
        entries.append(
            LatencyEntry(
                format=fmt,
                precision=precision,
                threads=r.positive(e, "threads", where, int),
                linear_gmacs_per_s=r.positive(e, "linear_gmacs_per_s", where, allow_inf=True),
                attention_gmacs_per_s=r.positive(e, "attention_gmacs_per_s", where, allow_inf=True),
                per_layer_ms=r.positive(e, "per_layer_ms", where, allow_zero=True),
                fixed_ms=r.positive(e, "fixed_ms", where, allow_zero=True),
                expected_error=err,
                error_p90=r.positive(e, "error_p90", where, allow_zero=True, required=False, default=2 * err),
                provenance=_provenance(r, e, where),
            )
        )
    keys = [e.key for e in entries]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup:
        raise r.fail("latency_model.entries", "one entry per (format, precision, threads)", f"{dup} twice")
    memory = []
    for i, m in enumerate(r.seq(d, "memory", "latency_model", required=False)):
        where = f"latency_model.memory[{i}]"
        if not isinstance(m, dict):
            raise r.fail(where, "a mapping of format, weight_factor, activation_factor, overhead_mb", m)
        err = r.positive(m, "expected_error", where, allow_zero=True)
        weight_factor = r.positive(m, "weight_factor", where, allow_zero=True)
        precision = r.get(m, "precision", where, str, f"one of {', '.join(PRECISIONS)}", required=False, default="")
        if precision and precision not in PRECISIONS:
            raise r.fail(f"{where}.precision", f"one of {', '.join(PRECISIONS)} (or left out: any)", precision)
        memory.append(
            MemoryEntry(
                format=r.get(m, "format", where, str, "a format name"),
                precision=precision,
                weight_factor=weight_factor,
                embedding_factor=r.positive(
                    m, "embedding_factor", where, allow_zero=True, required=False, default=weight_factor
                ),
                activation_factor=r.positive(m, "activation_factor", where, allow_zero=True),
                overhead_mb=r.positive(m, "overhead_mb", where, allow_zero=True),
                expected_error=err,
                error_p90=r.positive(m, "error_p90", where, allow_zero=True, required=False, default=2 * err),
                provenance=_provenance(r, m, where),
            )
        )
    eff = r.positive(d, "parallel_efficiency", "latency_model", required=False, default=0.8, allow_zero=True)
    if eff > 1:
        raise r.fail("latency_model.parallel_efficiency", "a number in [0, 1]", eff)
    return LatencyModel(
        entries=tuple(entries),
        memory=tuple(memory),
        parallel_efficiency=eff,
        device=device,
        source=r.get(d, "source", "latency_model", str, "a one-line summary of where the coefficients come from"),
    )


# ---- host detection and calibration overrides ------------------------------------------------------


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or platform.machine(), set()
    model = re.search(r"^(?:model name|Hardware|CPU part)\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
    return (model.group(1).strip() if model else "unknown"), set(flags.group(1).split() if flags else ())


def _ram_mb() -> int:
    try:
        m = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        return int(m.group(1)) // 1024 if m else 0
    except OSError:
        return 0


def host_machine() -> tuple[str, int]:
    """This machine as a fit records it: CPU model name and the cores edgebert may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return _cpuinfo()[0], cores


def host_calibration_path(cpu_model: str, cores: int) -> Path:
    """Where this machine's quick calibration is cached (one file per CPU model and core count)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", cpu_model).strip("-").lower() or "unknown"
    return cache_dir() / "host-calibration" / f"{slug}-{cores}c.yaml"


def _fitted_on(provenance: dict) -> tuple[str, int] | None:
    """(cpu model, cores) an entry was fitted on: separate fields, or parsed from an older `machine` string.

    benchmarks/fit_host.py once wrote only "MODEL (cpu flags), N cores"; the flags are dropped here,
    the model name and core count are compared each on its own."""
    if provenance.get("cpu_model") is not None and provenance.get("cores") is not None:
        return str(provenance["cpu_model"]).strip(), int(provenance["cores"])
    m = re.fullmatch(r"(.+?)(?: \([^)]*\))?, (\d+) cores?", str(provenance.get("machine") or "").strip())
    return (m.group(1).strip(), int(m.group(2))) if m else None


def _detect_host(p: DeviceProfile, host_calibration: bool = True) -> DeviceProfile:
    model, cores = host_machine()
    flags = _cpuinfo()[1]
    ghz = 0.0
    try:
        ghz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e6
    except (OSError, ValueError):
        pass
    cpu = Cpu(clusters=(CpuCluster(cores, model, ghz),), isa=tuple(f for f in _HOST_ISA if f in flags))
    notes = [f"cpu and RAM detected at load time: {cores} cores of {model}"]
    here = (model, cores)

    def _elsewhere(e) -> bool:  # an entry with no machine recorded is taken as it is (a hand-made profile)
        on = _fitted_on(e.provenance)
        return on is not None and on != here

    model_, keys, wanted = p.latency_model, set(), ()
    cached = host_calibration_path(model, cores)
    if host_calibration and cached.is_file():
        doc, sha = _load_yaml(cached)
        r = _Reader(cached)
        override = _read_latency_model(r, r.mapping(doc, "latency_model", ""), p.name)
        keys = {e.key for e in override.entries}
        model_ = model_.merged(override, f"quick calibration of this machine: {cached}")
        notes.append(
            f"latency_model entries {[list(k) for k in sorted(keys)]} from this machine's quick calibration "
            f"{cached} (sha256 {sha[:12]})"
        )
    elsewhere = [e for e in p.latency_model.entries if e.key not in keys and _elsewhere(e)]
    if elsewhere:
        # Coefficients from another machine still rank candidates, but their error is unknown here.
        wanted = tuple(sorted(e.key for e in elsewhere))
        on = _fitted_on(elsewhere[0].provenance)
        notes.append(
            f"latency model entries fitted on {on[0]!r} with {on[1]} cores, not on this machine ({model!r} with "
            f"{cores} cores): errors widened to +-50% (p90 +-100%); `edgebert export --device host` calibrates this "
            "machine (about a minute), `edgebert calibrate --device host` more thoroughly"
        )
        widen = {e.key for e in elsewhere}
        model_ = replace(
            model_,
            entries=tuple(
                replace(e, expected_error=max(e.expected_error, 0.5), error_p90=max(e.error_p90, 1.0))
                if e.key in widen
                else e
                for e in model_.entries
            ),
            source=model_.source + " (fitted on another machine)",
        )
    return replace(
        p,
        cpu=cpu,
        ram_mb=p.ram_mb or _ram_mb(),
        default_threads=min(p.default_threads, cores),
        latency_model=model_,
        provenance=p.provenance + tuple(notes),
        calibration_wanted=wanted,
    )


def _apply_override(p: DeviceProfile) -> DeviceProfile:
    path = config_dir() / "profiles" / f"{p.name}.yaml"
    if not path.is_file() or (p.path and path.resolve() == Path(p.path)):
        return p
    doc, sha = _load_yaml(path)
    r = _Reader(path)
    if doc.get("name", p.name) != p.name:
        raise r.fail("name", f"'{p.name}' (the file name says which profile it calibrates)", doc.get("name"))
    override = _read_latency_model(r, r.mapping(doc, "latency_model", ""), p.name)
    note = f"latency_model entries {[list(e.key) for e in override.entries]} overridden by {path} (sha256 {sha[:12]})"
    return replace(
        p,
        latency_model=p.latency_model.merged(override, f"calibrated: {path}"),
        provenance=p.provenance + (note,),
        calibration_wanted=tuple(k for k in p.calibration_wanted if k not in {e.key for e in override.entries}),
    )
