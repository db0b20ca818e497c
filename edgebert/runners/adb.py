"""`adb://[serial]`: an Android phone, through the user's `adb` and TFLite's `benchmark_model`.

The phone has no Python, so .tflite files are timed by benchmark_model (pushed from
--benchmark-binary, or one already on the device), .onnx files by onnxruntime_perf_test
and .pte files by ExecuTorch's executor_runner when the user provides them. Everything goes under /data/local/tmp/edgebert/<unique>/, which is
removed afterwards, also on failure, timeout and Ctrl-C.

`adb shell` hands its arguments to the device's shell as one string, so every argument we
build is shlex-quoted, and the artifact is pushed under a fixed name.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path

from edgebert.registry import RUNNERS
from edgebert.runners.executor_runner import executor_runner_argv, pte_seq_len, result_from_executor_runner
from edgebert.runners.interface import (
    AmbiguousDevice,
    BenchConfig,
    BenchResult,
    BenchTimeout,
    BinaryMissing,
    DeviceNotFound,
    DeviceOffline,
    DeviceUnauthorized,
    RunnerError,
    RunnerOptions,
    Target,
    UnsupportedArtifact,
    run_process,
    tail,
)
from edgebert.runners.parse import parse_thermalservice
from edgebert.runners.results import (
    benchmark_model_input_flags,
    benchmark_model_run_flags,
    check_artifact,
    companion_files,
    model_warning,
    result_from_benchmark_model,
    result_from_perf_test,
)

__all__ = ["AdbRunner", "DEVICE_ROOT"]

DEVICE_ROOT = "/data/local/tmp/edgebert"
_NIGHTLY = "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
_NIGHTLY_NAME = {"arm64-v8a": "android_aarch64_benchmark_model", "armeabi-v7a": "android_arm_benchmark_model"}
_FREQS = (
    'for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do [ -r "$f" ] && echo "$f $(cat "$f")"; done'
)


@RUNNERS.register("adb")
class AdbRunner:
    def __init__(self, target: Target, options: RunnerOptions | None = None):
        self.target = target
        self.options = options or RunnerOptions()
        self.serial: str | None = None
        self._adb: str | None = None

    # ------------------------------------------------------------ adb plumbing

    def _run(self, *args: str, timeout_s: float = 60, what: str = "adb") -> "object":
        argv = [self._adb, *(["-s", self.serial] if self.serial else []), *args]
        proc = run_process(argv, timeout_s=timeout_s, what=what)
        if proc.returncode != 0:
            self._raise_if_device_gone(proc.stderr)
        return proc

    def shell(self, command: str, *, timeout_s: float = 60, what: str = "adb shell"):
        """Run one device-shell command line (already quoted) and return the CompletedProcess."""
        return self._run("shell", command, timeout_s=timeout_s, what=what)

    def _raise_if_device_gone(self, stderr: str) -> None:
        # Only adb's own messages ("adb: ..." / "error: ..."), not what the program on the phone printed.
        s = "\n".join(ln for ln in stderr.lower().splitlines() if ln.startswith(("adb:", "error:")))
        if "unauthorized" in s:
            raise DeviceUnauthorized(_UNAUTHORIZED.format(serial=self.serial))
        if "device offline" in s:
            raise DeviceOffline(_OFFLINE.format(serial=self.serial))
        if "no devices/emulators found" in s or re.search(r"device '.*' not found", s):
            raise DeviceNotFound(f"Android device {self.serial} went away: {tail(stderr, 2)}; reconnect it")

    def _find_adb(self) -> str:
        adb = self.options.adb_path or shutil.which("adb")
        if not adb or not Path(adb).is_file():
            raise BinaryMissing(
                f"adb was not found{' at ' + self.options.adb_path if self.options.adb_path else ' on PATH'}: "
                f"install Android platform-tools (e.g. apt install adb) or pass --adb PATH"
            )
        if not os.access(adb, os.X_OK):
            raise BinaryMissing(f"{adb} is not executable (chmod 755 it)")
        return adb

    def _pick_device(self) -> str:
        proc = run_process([self._adb, "devices"], timeout_s=30, what="adb devices")
        devices = _parse_devices(proc.stdout)
        wanted = self.target.serial or os.environ.get("ANDROID_SERIAL") or None
        listing = ", ".join(f"{s} ({st})" for s, st in devices) or "none"
        if wanted:
            match = [st for s, st in devices if s == wanted]
            if not match:
                raise DeviceNotFound(
                    f"no Android device {wanted!r} is attached (adb devices lists: {listing}); "
                    f"check the cable or `adb connect HOST:PORT`, and the serial"
                )
            state = match[0]
        elif not devices:
            raise DeviceNotFound(
                "no Android device is attached: connect one over USB with USB debugging on "
                "(Settings > Developer options), then check `adb devices`"
            )
        elif len(devices) > 1:
            raise AmbiguousDevice(
                f"{len(devices)} Android devices are attached ({listing}); choose one with --target adb://SERIAL"
            )
        else:
            wanted, state = devices[0]
        if state == "unauthorized":
            raise DeviceUnauthorized(_UNAUTHORIZED.format(serial=wanted))
        if state == "offline":
            raise DeviceOffline(_OFFLINE.format(serial=wanted))
        if state.startswith("no permissions"):
            raise DeviceUnauthorized(
                f"adb has no permission to use device {wanted}: {state}. On Linux add a udev "
                f"rule for the phone (or install the android-sdk-platform-tools-common "
                f"package), then replug it"
            )
        if state != "device":
            raise DeviceOffline(
                f"device {wanted} is in state {state!r}, not 'device'; boot it normally and check `adb devices`"
            )
        return wanted

    # ------------------------------------------------------------ what the phone is

    def device_info(self) -> dict:
        getprop = lambda key: self.shell(f"getprop {key}", timeout_s=30).stdout.strip()  # noqa: E731
        info = {
            "model": getprop("ro.product.model"),
            "abi": getprop("ro.product.cpu.abi"),
            "android_serial": self.serial,
        }
        possible = self.shell("cat /sys/devices/system/cpu/possible", timeout_s=30).stdout.strip()
        cores = _count_cpus(possible)
        if cores is None:
            n = self.shell("nproc", timeout_s=30).stdout.strip()
            cores = int(n) if n.isdigit() else None
        freqs = {}
        for line in self.shell(_FREQS, timeout_s=30).stdout.splitlines():
            m = re.search(r"cpu(\d+)/cpufreq/cpuinfo_max_freq (\d+)", line)
            if m:
                freqs[int(m[1])] = int(m[2])
        info.update(cores=cores, max_freq_khz=[freqs[k] for k in sorted(freqs)])
        return info

    # ------------------------------------------------------------ the bench call

    def bench(self, artifact: str | Path, config: BenchConfig) -> BenchResult:
        path = check_artifact(artifact)
        suffix = path.suffix.lower()
        if suffix == ".pt":
            raise UnsupportedArtifact(
                f"{path.name}: TorchScript (.pt) cannot be measured over adb: edgebert has no on-device PyTorch "
                f"runner. Measure the .tflite export (benchmark_model) or the .pt on a Linux board or locally"
            )
        if suffix == ".onnx" and not self.options.onnx_perf_test:
            raise UnsupportedArtifact(
                f"{path.name}: measuring .onnx over adb needs onnxruntime_perf_test built for Android; pass it "
                f"with --onnx-perf-test PATH, or measure the .tflite export with benchmark_model"
            )
        if suffix == ".pte" and not self.options.executorch_runner:
            raise UnsupportedArtifact(
                f"{path.name}: measuring .pte over adb needs ExecuTorch's executor_runner (or xnn_executor_runner) "
                f"built for Android with the XNNPACK backend; pass it with --executorch-runner PATH"
            )
        start = time.perf_counter()
        deadline = start + config.timeout_s
        left = lambda: max(1.0, deadline - time.perf_counter())  # noqa: E731
        self._adb = self._find_adb()
        self.serial = self._pick_device()
        info = self.device_info()
        uid = uuid.uuid4().hex[:12]
        workdir = f"{DEVICE_ROOT}/{uid}"
        try:
            self.shell(f"mkdir -p {shlex.quote(workdir)}", timeout_s=left())
            model = f"{workdir}/model{suffix}"
            self._push(path, model, left())
            for c in companion_files(path):  # ONNX external weights keep the name the model records
                self._push(c, f"{workdir}/{c.name}", left())
            argv, version, seq_len, notes = self._command(path, model, workdir, config, info, left())
            thermal_before = self._thermal()
            proc = self._run_tool(argv, uid, left())
            thermal_after = self._thermal()
            if proc.returncode in (126, 127):
                raise BinaryMissing(
                    f"{argv[0]} could not be run on {self.serial} (exit {proc.returncode}): "
                    f"{tail(proc.stdout + proc.stderr, 3)}"
                )
            common = dict(
                where=f"adb://{self.serial}",
                artifact=path.name,
                device=info["model"],
                device_info=info,
                runtime_version=version,
                wall_s=time.perf_counter() - start,
                runs_on=f"{info['model']} ({self.serial})",
            )
            warning = model_warning(info["model"], self.options.expected_models)
            common["warnings"] = (warning,) if warning else ()
            if suffix == ".tflite":
                result = result_from_benchmark_model(proc, notes=notes, seq_len=seq_len, **common)
            elif suffix == ".pte":
                result = result_from_executor_runner(proc, config=config, notes=notes, seq_len=seq_len, **common)
            else:
                result = result_from_perf_test(proc, threads=config.threads, seq_len=seq_len, **common)
            sustained = config.sustained_s if suffix == ".tflite" else 0.0
            if config.sustained_s and not sustained:
                result = replace(result, warnings=result.warnings + (f"--sustained is not applied to {result.tool}",))
            return replace(
                result, thermal_before=thermal_before, thermal_after=thermal_after, sustained_s=sustained or None
            )
        finally:
            self._remove(workdir)

    def _command(
        self, path: Path, model: str, workdir: str, config: BenchConfig, info: dict, timeout_s: float
    ) -> tuple[list[str], str, int | None, tuple[str, ...]]:
        """The tool's command line for this artifact: (argv, tool version, sequence length, notes)."""
        o = self.options
        if path.suffix.lower() == ".tflite":
            exe, version = self._tool(o.benchmark_binary, "benchmark_model", workdir, info, timeout_s)
            input_flags, seq_len, note = benchmark_model_input_flags(path, config.vocab_size, config.signature)
            # One signature per run (an early-exit segment): benchmark_model's --signature_to_run_for
            # (LiteRT tflite/tools/benchmark/benchmark_tflite_model.cc); without it a file of several fails there.
            which = [f"--signature_to_run_for={config.signature}"] if config.signature else []
            argv = [
                exe,
                f"--graph={model}",
                *which,
                *benchmark_model_run_flags(config, o.use_xnnpack),
                *input_flags,
            ]
            notes = (note,) if note else ()
        elif path.suffix.lower() == ".pte":
            exe, version = self._tool(o.executorch_runner, "executor_runner", workdir, info, timeout_s)
            argv = executor_runner_argv(exe, model, config)
            seq_len, note = pte_seq_len(path)
            notes = (note,) if note else ()
        else:
            exe, version = self._tool(o.onnx_perf_test, "onnxruntime_perf_test", workdir, info, timeout_s)
            argv = [
                exe,
                "-e",
                "cpu",
                "-m",
                "times",
                "-r",
                str(config.runs),
                "-x",
                str(config.threads),
                "-I",
                *_free_dims(path, config.seq_len),
                model,
            ]
            seq_len, notes = config.seq_len, ()
        if o.taskset_mask:  # pin to the cores the profile names (e.g. the big cluster)
            argv = ["taskset", _toybox_mask(o.taskset_mask), *argv]
        return argv, version, seq_len, notes

    def _thermal(self) -> dict | None:
        """The phone's temperatures and thermal status (Android 10+); None where dumpsys shows none."""
        try:
            proc = self.shell("dumpsys thermalservice", timeout_s=30, what="dumpsys thermalservice")
        except BenchTimeout:
            return None
        return parse_thermalservice(proc.stdout) if proc.returncode == 0 else None

    def _push(self, local: Path, remote: str, timeout_s: float) -> None:
        proc = self._run("push", str(local), remote, timeout_s=timeout_s, what=f"adb push {local.name}")
        if proc.returncode != 0:
            raise RunnerError(
                f"adb push of {local.name} to {self.serial} failed: {tail(proc.stderr, 3)}; "
                f"is the phone's storage full?"
            )

    def _tool(self, given: str | None, name: str, workdir: str, info: dict, timeout_s: float) -> tuple[str, str]:
        """The program to run: pushed from a local file, or already on the device. Returns (path, version)."""
        if given and Path(given).is_file():
            remote = f"{workdir}/{name}"
            self._push(Path(given), remote, timeout_s)
            self.shell(f"chmod 755 {shlex.quote(remote)}", timeout_s=timeout_s)
            with open(given, "rb") as f:
                return remote, f"{name} sha256:{hashlib.sha256(f.read()).hexdigest()[:16]}"
        candidates = [given] if given else [f"/data/local/tmp/{name}", name]
        for c in candidates:
            q = shlex.quote(c)
            found = self.shell(f"[ -x {q} ] && echo {q} || command -v {q}", timeout_s=timeout_s).stdout.strip()
            if found:
                return found.splitlines()[-1], f"unknown ({name} prints no version)"
        if given:
            raise BinaryMissing(f"{given!r} is neither a file here nor an executable on device {self.serial}")
        url = _NIGHTLY + _NIGHTLY_NAME.get(info.get("abi", ""), "android_aarch64_benchmark_model")
        raise BinaryMissing(
            f"no {name} on device {self.serial} (looked for /data/local/tmp/{name} and on PATH). "
            f"Download the build for its ABI ({info.get('abi') or 'unknown'}), e.g. {url}, and pass "
            f"--benchmark-binary FILE (edgebert pushes it and makes it executable)"
        )

    def _run_tool(self, argv: list[str], uid: str, timeout_s: float):
        try:
            return self.shell(shlex.join(argv), timeout_s=timeout_s, what=f"{Path(argv[0]).name} on {self.serial}")
        except (BenchTimeout, KeyboardInterrupt):
            # Killing adb here does not stop the program on the phone; stop it by its unique folder.
            # "[x]yz": the pattern does not match the pkill command line itself.
            pattern = shlex.quote(f"edgebert/[{uid[0]}]{uid[1:]}")
            try:
                self.shell(f"pkill -f {pattern}", timeout_s=15)
            except RunnerError:
                pass
            raise

    def _remove(self, workdir: str) -> None:
        try:
            self.shell(f"rm -rf {shlex.quote(workdir)}", timeout_s=30, what=f"removing {workdir}")
        except RunnerError:
            pass  # best effort: the error that got us here is the one worth showing


_UNAUTHORIZED = (
    "device {serial} has not authorized this computer: unlock the phone and accept the "
    "'Allow USB debugging?' dialog (revoke authorizations in Developer options if it does not appear)"
)
_OFFLINE = (
    "device {serial} is offline: reconnect the cable, or run `adb kill-server && adb start-server`, "
    "then check `adb devices`"
)


def _parse_devices(stdout: str) -> list[tuple[str, str]]:
    """`adb devices` output -> [(serial, state)], skipping the header and daemon start-up chatter."""
    out = []
    for line in stdout.splitlines():
        if not line.strip() or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split("\t") if "\t" in line else line.split(None, 1)
        if len(parts) >= 2:
            out.append((parts[0].strip(), parts[1].strip()))
    return out


def _toybox_mask(mask: str) -> str:
    """'0xf0' -> 'f0'. Android's taskset is toybox's, which reads bare hex only: `taskset 0xf0 ...`
    fails there with "bad mask '0xf0'" (Debian's toybox 0.8.9 does the same), while profiles write 0x."""
    return mask[2:] if mask[:2].lower() == "0x" else mask


def _count_cpus(possible: str) -> int | None:
    """'0-3,4-7' -> 8 (the kernel's list of possible CPUs)."""
    total = 0
    for part in possible.split(","):
        a, _, b = part.strip().partition("-")
        if not a.isdigit() or (b and not b.isdigit()):
            return None
        total += (int(b) - int(a) + 1) if b else 1
    return total or None


def _free_dims(path: Path, seq_len: int) -> list[str]:
    """onnxruntime_perf_test -f overrides: batch 1 and our sequence length for named dynamic dims."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    flags = {}
    for i in g.input:
        for axis, d in enumerate(i.type.tensor_type.shape.dim):
            if d.dim_param:
                flags[d.dim_param] = 1 if axis == 0 else seq_len
    return [x for name, v in flags.items() for x in ("-f", f"{name}:{v}")]
