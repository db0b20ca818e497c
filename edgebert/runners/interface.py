"""What every runner shares: targets, the bench config, the result type, named errors, and a
bounded way to run a child process.

Only the standard library is imported here so that `import edgebert.runners` stays light.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from edgebert.errors import RunnerError, UsageError

__all__ = [
    "Target",
    "parse_target",
    "BenchConfig",
    "RunnerOptions",
    "BenchResult",
    "TargetUnreachable",
    "AuthError",
    "DeviceNotFound",
    "AmbiguousDevice",
    "DeviceOffline",
    "DeviceUnauthorized",
    "BinaryMissing",
    "RuntimeMissing",
    "UnsupportedArtifact",
    "BenchmarkCrashed",
    "BenchTimeout",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "ARTIFACT_SUFFIXES",
]

DEFAULT_TIMEOUT_S = 300.0  # a whole bench call: copy, load, warm up, runs, clean up
DEFAULT_CONNECT_TIMEOUT_S = 10.0
ARTIFACT_SUFFIXES = (".tflite", ".onnx", ".pt", ".pte")
TARGET_FORMS = "local | ssh://[user@]host[:port] | adb://[serial]"


# ---------------------------------------------------------------- errors (all exit code 5)


class TargetUnreachable(RunnerError):
    """The target could not be reached at all (network, sshd down, cable)."""


class AuthError(RunnerError):
    """The target answered but refused us (ssh key, host key)."""


class DeviceNotFound(TargetUnreachable):
    """adb lists no device, or not the one asked for."""


class AmbiguousDevice(RunnerError):
    """Several adb devices and no serial to choose one."""


class DeviceOffline(TargetUnreachable):
    pass


class DeviceUnauthorized(AuthError):
    pass


class BinaryMissing(RunnerError):
    """A program we need (adb, ssh, python3, benchmark_model) is missing or not executable."""


class RuntimeMissing(RunnerError):
    """The target's Python lacks the runtime the artifact needs; the message holds the pip line."""


class UnsupportedArtifact(RunnerError):
    """This target cannot measure this kind of artifact."""


class BenchmarkCrashed(RunnerError):
    """The benchmark ran but failed; the message ends with the last lines it printed."""


class BenchTimeout(RunnerError):
    pass


# ---------------------------------------------------------------- targets

_NAME = r"[A-Za-z0-9_][A-Za-z0-9._-]*"  # never starts with '-': it would be read as an ssh option
_SSH_RE = re.compile(rf"^ssh://(?:(?P<user>{_NAME})@)?(?P<host>{_NAME}|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d+))?/?$")
_ADB_RE = re.compile(r"^adb://(?P<serial>[A-Za-z0-9_][A-Za-z0-9._:-]*)?/?$")  # serials may be host:port


@dataclass(frozen=True)
class Target:
    kind: str  # "local" | "ssh" | "adb": the runner's name in edgebert.registry.RUNNERS
    host: str | None = None
    user: str | None = None
    port: int | None = None
    serial: str | None = None  # adb only; None: the only attached device

    @property
    def uri(self) -> str:
        if self.kind == "local":
            return "local"
        if self.kind == "adb":
            return f"adb://{self.serial or ''}"
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        host = f"[{self.host}]" if ":" in (self.host or "") else self.host  # IPv6
        return f"ssh://{user}{host}{port}"

    def __str__(self) -> str:
        return self.uri


def parse_target(text: str | Target) -> Target:
    """`local`, `ssh://[user@]host[:port]` or `adb://[serial]` -> Target; anything else is a UsageError."""
    if isinstance(text, Target):
        return text
    s = (text or "").strip()
    if s == "local":
        return Target("local")
    m = _SSH_RE.match(s)
    if m:
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 1 <= port <= 65535:
            raise UsageError(f"bad target {text!r}: port {port} is outside 1-65535; expected one of: {TARGET_FORMS}")
        return Target("ssh", host=m["host"].strip("[]"), user=m["user"], port=port)
    m = _ADB_RE.match(s)
    if m:
        return Target("adb", serial=m["serial"])
    hint = ""
    if s.startswith("ssh://") or s.startswith("adb://"):
        hint = " (user, host and serial may hold only letters, digits, '.', '_' and '-', and must not start with '-')"
    elif "@" in s or (s and "://" not in s):
        hint = f" (did you mean ssh://{s} ?)"
    raise UsageError(f"bad target {text!r}{hint}; expected one of: {TARGET_FORMS}")


# ---------------------------------------------------------------- what to run and how


def _positive(name: str, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise UsageError(f"{name} must be a number >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class BenchConfig:
    threads: int = 1
    runs: int = 50
    warmup: int = 5
    seq_len: int = 128  # for dynamic-shape artifacts (.onnx, .pt); .tflite files carry their own
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Token ids are drawn below this: every vocabulary has them, and latency does not depend on them.
    vocab_size: int = 100
    # Time runs for at least this long (and at least `runs`): shows throttling as drift_pct. 0: off.
    sustained_s: float = 0.0
    # A multi-signature .tflite (sequence-length buckets): the signature to time. None: the file's only one.
    signature: str | None = None

    def __post_init__(self):
        _positive("--threads", self.threads, 1)
        _positive("--sustained", self.sustained_s, 0)
        if self.sustained_s and self.sustained_s >= 0.8 * self.timeout_s:
            raise UsageError(
                f"--sustained {self.sustained_s:g} s does not fit in --timeout {self.timeout_s:g} s (model load and "
                f"copying need time too); raise --timeout to at least {self.sustained_s / 0.8 + 30:.0f}"
            )
        _positive("--runs", self.runs, 1)
        _positive("--warmup", self.warmup, 0)
        _positive("--seq-len", self.seq_len, 1)
        _positive("--timeout", self.timeout_s, 0.001)
        _positive("vocab_size", self.vocab_size, 2)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunnerOptions:
    """How to reach a target and what to run there; each runner reads the fields it needs."""

    adb_path: str | None = None  # default: `adb` on PATH
    # A local file (pushed/copied, chmod 755) or a path that already exists on the target.
    benchmark_binary: str | None = None
    onnx_perf_test: str | None = None  # adb: onnxruntime_perf_test, same local-or-remote rule
    executorch_runner: str | None = None  # adb: ExecuTorch's executor_runner for .pte, same rule
    remote_python: str | None = None  # ssh: default python3
    ssh_identity: str | None = None  # ssh -i
    ssh_config: str | None = None  # ssh -F (tests use their own; users normally rely on ~/.ssh/config)
    ssh_options: tuple[str, ...] = ()  # extra raw ssh/scp arguments, e.g. ("-o", "ProxyJump=gw")
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    taskset_mask: str | None = None  # hex CPU mask, e.g. "f0" for the big cores of a 4+4 phone
    expected_models: tuple[str, ...] = ()  # device model names the profile was made for
    use_xnnpack: bool = True

    def __post_init__(self):
        _positive("--connect-timeout", self.connect_timeout_s, 1)
        if self.taskset_mask is not None and not re.fullmatch(r"(0x)?[0-9A-Fa-f]+", self.taskset_mask):
            raise UsageError(f"taskset mask {self.taskset_mask!r} is not a hex CPU mask such as f0")
        object.__setattr__(self, "ssh_options", tuple(self.ssh_options))
        object.__setattr__(self, "expected_models", tuple(self.expected_models))

    def to_dict(self) -> dict:
        return asdict(self)

    def with_device_defaults(self, taskset_mask: str | None, device_models: tuple[str, ...]) -> "RunnerOptions":
        """What the user did not set comes from the device profile (its big cores, its model names)."""
        return replace(
            self,
            taskset_mask=self.taskset_mask or taskset_mask,
            expected_models=self.expected_models or tuple(device_models),
        )


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class BenchResult:
    """One measurement of one artifact on one target. Every figure here was measured, none predicted."""

    p50_ms: float
    mean_ms: float
    runs: int  # timed runs actually done (benchmark_model may do more than asked, see its min_secs)
    warmup: int
    threads: int
    where: str  # the target URI, with the adb serial filled in
    device: str  # model string the device reports, e.g. "Pixel 6" or "Raspberry Pi 4 Model B Rev 1.4"
    runtime: str
    runtime_version: str
    tool: str  # "edgebert bench script" | "benchmark_model" | "onnxruntime_perf_test"
    artifact: str
    p90_ms: float | None = None  # benchmark_model prints p5/median/p95 only
    p95_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    seq_len: int | None = None
    init_ms: float | None = None  # load + prepare, before the first inference
    first_inference_ms: float | None = None
    peak_rss_mb: float | None = None  # whole measuring process (runtime included), not the model alone
    memory_delta_mb: float | None = None  # benchmark_model's footprint growth since its start
    iqr_ms: float | None = None  # spread: p75 - p25 of the timed runs (tools that print no quartiles: None)
    # 95 % CI of the median from order statistics (binomial method); None without per-run times
    p50_ci95_ms: tuple[float, float] | None = None
    drift_pct: float | None = None  # median of the last third of the runs vs the first third, in %
    sustained_s: float | None = None  # --sustained: the timed runs lasted at least this long
    cooldown_s: float | None = None  # idle seconds before this measurement (--cooldown)
    # Temperatures just before the warm-up and just after the last timed run, as the target reports
    # them ({"source", "max_c", "zones": {name: C}}, Android adds "status"); None: the target shows none.
    thermal_before: dict | None = None
    thermal_after: dict | None = None
    timed_s: float | None = None  # seconds spent inside warm-up and timed runs
    wall_s: float | None = None  # seconds the whole bench call took, copying and cleanup included
    timestamp: str = field(default_factory=now_iso)
    device_info: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    raw_tail: str = ""

    @property
    def overhead_s(self) -> float | None:
        """What a bench call costs beyond the runs themselves (connect, copy, load, clean up)."""
        if self.wall_s is None or self.timed_s is None:
            return None
        return self.wall_s - self.timed_s

    def to_dict(self) -> dict:
        d = {"kind": "measured", **asdict(self)}
        d["warnings"], d["notes"] = list(self.warnings), list(self.notes)
        d["p50_ci95_ms"] = list(self.p50_ci95_ms) if self.p50_ci95_ms is not None else None
        return d


# ---------------------------------------------------------------- child processes


def tail(text: str, lines: int = 15) -> str:
    kept = [ln for ln in (text or "").rstrip().splitlines()]
    return "\n".join(kept[-lines:])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_process(
    argv: list[str], *, timeout_s: float, what: str, env: dict | None = None, cwd: str | Path | None = None
) -> subprocess.CompletedProcess:
    """Run argv (never through a local shell) and return its CompletedProcess with text output.

    The child gets its own process group so that a timeout or Ctrl-C kills it and anything it
    started, then BenchTimeout / KeyboardInterrupt propagate (the caller's `finally` cleans up).
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise BinaryMissing(f"cannot run {what}: {argv[0]!r} was not found; install it or give its full path") from None
    except PermissionError:
        raise BinaryMissing(f"cannot run {what}: {argv[0]!r} is not executable (chmod 755 it)") from None
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise BenchTimeout(
            f"{what} did not finish within {timeout_s:g} s and was stopped; raise --timeout if the target is "
            f"just slow.\nLast output:\n{tail((out or '') + (err or ''))}"
        ) from None
    except BaseException:  # Ctrl-C included: never leave the child running
        _kill_group(proc)
        proc.wait()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)
