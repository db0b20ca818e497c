"""`ssh://[user@]host[:port]`: a Raspberry Pi or any Linux board, through the system OpenSSH client.

Using the user's `ssh`/`scp` means ~/.ssh/config, keys and agents work as they expect. A bench
call is three connections: make a temp dir (and read the board's name), copy the artifact and
the bench script (or benchmark_model), run it there; the temp dir is removed by the remote
shell's exit trap and, if the run never got that far, by a last `rm -rf` from here.

Nothing the user names is ever pasted into a remote command unquoted: the artifact is copied
under a fixed name, and every other argument goes through shlex.quote.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from edgebert.registry import RUNNERS
from edgebert.runners.interface import (
    AuthError,
    BenchConfig,
    BenchResult,
    BinaryMissing,
    RunnerError,
    RunnerOptions,
    Target,
    TargetUnreachable,
    UnsupportedArtifact,
    run_process,
    tail,
)
from edgebert.runners.parse import THERMAL_MARK, parse_sys_thermal
from edgebert.runners.results import (
    BENCH_SCRIPT,
    benchmark_model_input_flags,
    benchmark_model_run_flags,
    check_artifact,
    companion_files,
    model_warning,
    result_from_benchmark_model,
    result_from_script,
    script_args,
)

__all__ = ["SshRunner"]

# One fixed script, no user input: makes the temp dir and says what the board is.
_PREPARE = (
    'd=$(mktemp -d "${TMPDIR:-/tmp}/edgebert.XXXXXX") || exit 3; echo "dir=$d"; '
    'echo "arch=$(uname -m)"; echo "cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"; '
    "if [ -r /proc/device-tree/model ]; then echo \"model=$(tr -d '\\000' </proc/device-tree/model)\"; "
    "else echo \"model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)\"; fi"
)
_SAFE_DIR = re.compile(r"^/[A-Za-z0-9._/-]+$")
# Where a Linux board shows its temperatures (a module constant: tests point it at a fake tree).
THERMAL_ROOT = "/sys/class/thermal"
_UNREACHABLE = (
    "Connection refused",
    "timed out",
    "No route to host",
    "Network is unreachable",
    "Could not resolve hostname",
    "Name or service not known",
    "Connection reset",
    "Connection closed",
    "kex_exchange_identification",
    "Temporary failure in name resolution",
)


@RUNNERS.register("ssh")
class SshRunner:
    def __init__(self, target: Target, options: RunnerOptions | None = None):
        self.target = target
        self.options = options or RunnerOptions()

    # ------------------------------------------------------------ ssh / scp command lines

    def _common_opts(self) -> list[str]:
        o = self.options
        opts = [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={int(o.connect_timeout_s + 0.999)}",
            "-o",
            "StrictHostKeyChecking=accept-new",
            # a board that dies mid-run is noticed in ~15 s instead of hanging until --timeout
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]
        if o.ssh_config:
            opts += ["-F", o.ssh_config]
        if o.ssh_identity:
            opts += ["-i", o.ssh_identity]
        return opts + list(o.ssh_options)

    def _dest(self) -> str:
        t = self.target
        return f"{t.user}@{t.host}" if t.user else t.host

    def _ssh(self, remote_cmd: str, *, timeout_s: float, what: str):
        port = ["-p", str(self.target.port)] if self.target.port else []
        # Through `sh -c`: the login shell may be fish or csh; our command lines are POSIX sh.
        argv = ["ssh", *self._common_opts(), *port, "--", self._dest(), f"sh -c {shlex.quote(remote_cmd)}"]
        proc = run_process(argv, timeout_s=timeout_s, what=what)
        if proc.returncode == 255:  # ssh's own failures; the remote command's codes are 0-254
            raise self._connection_error(proc.stderr)
        return proc

    def _scp(self, files: list[Path], remote_dir: str, *, timeout_s: float) -> None:
        port = ["-P", str(self.target.port)] if self.target.port else []
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        dest = f"{self.target.user}@{host}" if self.target.user else host
        # Absolute local paths: scp would read "a:b" as host "a".
        argv = [
            "scp",
            "-q",
            *self._common_opts(),
            *port,
            "--",
            *[str(f.resolve()) for f in files],
            f"{dest}:{remote_dir}/",
        ]
        proc = run_process(argv, timeout_s=timeout_s, what=f"copying to {self.target.uri}")
        if proc.returncode != 0:
            if any(s in proc.stderr for s in _UNREACHABLE + ("Permission denied (publickey",)):
                raise self._connection_error(proc.stderr)
            raise RunnerError(
                f"copying files to {self.target.uri}:{remote_dir} failed (exit {proc.returncode}); "
                f"is the board's disk full, or its SFTP subsystem off (scp uses SFTP since OpenSSH 9)? scp said:\n{tail(proc.stderr)}"
            )

    def _connection_error(self, stderr: str) -> RunnerError:
        where, msg = self.target.uri, tail(stderr, 4)
        if "Permission denied" in stderr:
            return AuthError(
                f"{where} refused the login: {msg}\nCheck the user name, that your public key is in the board's "
                f"~/.ssh/authorized_keys (ssh-copy-id {self._dest()}), or point at the key with --ssh-key. edgebert "
                f"runs ssh with BatchMode=yes, so it never asks for a password."
            )
        if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
            return AuthError(
                f"{where}: the host key does not match the one in known_hosts: {msg}\nIf the board was "
                f"re-flashed, remove the old key with  ssh-keygen -R {self.target.host}"
            )
        port = f" (port {self.target.port})" if self.target.port else ""
        try_cmd = f"ssh {'-p ' + str(self.target.port) + ' ' if self.target.port else ''}{self._dest()} true"
        return TargetUnreachable(
            f"cannot reach {where}{port}: {msg or 'ssh failed with no message'}\nIs the board on and on this "
            f"network, is sshd running, and are the host name and port right? (try: {try_cmd})"
        )

    # ------------------------------------------------------------ the bench call

    def bench(self, artifact: str | Path, config: BenchConfig) -> BenchResult:
        path = check_artifact(artifact)
        binary = self.options.benchmark_binary
        if binary and path.suffix.lower() != ".tflite":
            raise UnsupportedArtifact(
                f"benchmark_model measures .tflite files only, not {path.name}; leave out "
                f"--benchmark-binary to use the board's Python runtime instead"
            )
        start = time.perf_counter()
        deadline = start + config.timeout_s
        left = lambda: max(1.0, deadline - time.perf_counter())  # noqa: E731
        info = self._prepare(left())
        finished = False
        try:
            with tempfile.TemporaryDirectory(prefix="edgebert-ssh-") as stage:
                files, model_name = _stage(path, Path(stage), binary)
                self._scp(files, info["dir"], timeout_s=left())
            flags, seq_len, note = benchmark_model_input_flags(path, config.vocab_size) if binary else ([], None, None)
            argv = self._command(info["dir"], model_name, config, binary, flags, left())
            # benchmark_model reads no temperatures: the same remote shell reads the zones around it.
            remote = _in_dir(info["dir"], argv, thermal=bool(binary))
            proc = self._ssh(remote, timeout_s=left(), what=f"the benchmark on {self.target.uri}")
            finished = True  # the remote shell's exit trap has removed the dir
        finally:
            if not finished:  # copy failed, connection lost, timeout, Ctrl-C
                self._remove(info["dir"])
        self._check_launch(proc, argv[2] if self.options.taskset_mask else argv[0])
        where, wall = self.target.uri, time.perf_counter() - start
        if binary:
            proc, thermal = _split_thermal(proc)
            result = result_from_benchmark_model(
                proc,
                where=where,
                artifact=path.name,
                device=info["model"],
                device_info=_device_info(info),
                runtime_version=_binary_version(binary),
                wall_s=wall,
                runs_on=where,
                notes=(note,) if note else (),
                seq_len=seq_len,
            )
            result = replace(result, sustained_s=config.sustained_s or None, **thermal)
        else:
            result = result_from_script(proc, where=where, artifact=path.name, wall_s=wall, runs_on=where)
            result = replace(
                result, device=result.device or info["model"], device_info={**_device_info(info), **result.device_info}
            )
        warning = model_warning(result.device, self.options.expected_models)
        return replace(result, warnings=result.warnings + ((warning,) if warning else ()))

    def _prepare(self, timeout_s: float) -> dict:
        proc = self._ssh(_PREPARE, timeout_s=timeout_s, what=f"connecting to {self.target.uri}")
        info = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
        if proc.returncode != 0 or not _SAFE_DIR.match(info.get("dir", "")):
            raise RunnerError(
                f"could not make a temp dir on {self.target.uri} with mktemp (exit {proc.returncode}):"
                f"\n{tail(proc.stdout + proc.stderr)}"
            )
        info.setdefault("model", "")
        return info

    def _command(
        self,
        remote_dir: str,
        model_name: str,
        config: BenchConfig,
        binary: str | None,
        input_flags: list[str],
        time_left_s: float,
    ) -> list[str]:
        o = self.options
        prefix = ["taskset", o.taskset_mask] if o.taskset_mask else []
        if binary:
            exe = f"{remote_dir}/benchmark_model" if Path(binary).is_file() else binary
            return prefix + [
                exe,
                f"--graph={remote_dir}/{model_name}",
                *benchmark_model_run_flags(config, o.use_xnnpack),
                *input_flags,
            ]
        # Absolute paths: the temp dir's name in the command line is how _remove finds the process.
        return prefix + [
            o.remote_python or "python3",
            f"{remote_dir}/bench_script.py",
            *script_args(f"{remote_dir}/{model_name}", config, time_left_s),
        ]

    def _check_launch(self, proc, exe: str) -> None:
        """126/127 from the remote shell: the program is not there or not executable."""
        if proc.returncode in (126, 127):
            hint = (
                "install python3 on the board or pass --remote-python PATH (e.g. a venv's bin/python)"
                if not self.options.benchmark_binary
                else "pass --benchmark-binary with a benchmark_model built for the board's CPU "
                "(linux_aarch64 for a 64-bit Raspberry Pi OS)"
            )
            raise BinaryMissing(
                f"{exe!r} could not be run on {self.target.uri} (exit {proc.returncode}): "
                f"{tail(proc.stderr, 3)}\n{hint}"
            )

    def _remove(self, remote_dir: str) -> None:
        """Stop what still runs from the temp dir (after a timeout or Ctrl-C) and delete the dir."""
        # "edgebert[.]XXXXXX" does not match pkill's own command line; this shell's line does hold
        # the plain name, so pkill may end it too: hence rm first.
        pattern = shlex.quote(Path(remote_dir).name.replace(".", "[.]", 1))
        try:
            self._ssh(
                f"rm -rf -- {shlex.quote(remote_dir)}; pkill -f {pattern} 2>/dev/null; true",
                timeout_s=self.options.connect_timeout_s + 10,
                what=f"removing {remote_dir} on {self.target.uri}",
            )
        except RunnerError:
            pass  # best effort: the original error is the one worth showing


def _in_dir(remote_dir: str, argv: list[str], thermal: bool = False) -> str:
    """The remote command line: run argv in the temp dir, which the shell removes however it exits;
    `thermal`: read the thermal zones just before and just after it (argv's exit status is kept)."""
    q = shlex.quote(remote_dir)
    run = shlex.join(argv)
    if thermal:
        run = f"{{ {_read_zones('before')}; {run}; rc=$?; {_read_zones('after')}; exit $rc; }}"
    return f"cd {q} && trap {shlex.quote('rm -rf -- ' + q)} EXIT HUP INT TERM && {run}"


def _read_zones(phase: str) -> str:
    """POSIX sh (dash, busybox ash) printing one THERMAL_MARK line per zone whose temp reads; a zone whose
    driver refuses the read (EINVAL or ENODATA while a sensor sleeps) is left out, as read_thermal does."""
    root = shlex.quote(THERMAL_ROOT)
    return (
        f'for z in {root}/thermal_zone*; do t=$(cat "$z/temp" 2>/dev/null) || continue; '
        f'case "$t" in ""|*[!0-9-]*) continue;; esac; '
        f'echo "{THERMAL_MARK} {phase} ${{z##*/}} $t $(cat "$z/type" 2>/dev/null)"; done'
    )


def _split_thermal(proc):
    """(the process with the zone lines taken out of its stdout, {"thermal_before", "thermal_after"})."""
    lines = (proc.stdout or "").splitlines(keepends=True)
    marks = "".join(ln for ln in lines if ln.startswith(THERMAL_MARK))
    rest = "".join(ln for ln in lines if not ln.startswith(THERMAL_MARK))
    thermal = {f"thermal_{p}": parse_sys_thermal(marks, p, THERMAL_ROOT) for p in ("before", "after")}
    return subprocess.CompletedProcess(proc.args, proc.returncode, rest, proc.stderr), thermal


def _stage(path: Path, stage: Path, binary: str | None) -> tuple[list[Path], str]:
    """Links under the names the remote side will see: fixed names, so none needs quoting there."""
    model_name = "model" + path.suffix.lower()
    files = [(path, model_name)] + [(c, c.name) for c in companion_files(path)]
    if binary and Path(binary).is_file():
        files.append((Path(binary), "benchmark_model"))
    elif not binary:
        files.append((BENCH_SCRIPT, "bench_script.py"))
    out = []
    for src, name in files:
        dst = stage / name
        if name == "benchmark_model":
            shutil.copy2(src, dst)  # a copy, not a link: chmod must not touch the user's file
            dst.chmod(0o755)  # scp keeps the mode bits
        else:
            try:
                os.link(src, dst)  # no copy of a large model when on the same filesystem
            except OSError:
                shutil.copy2(src, dst)
        out.append(dst)
    return out, model_name


def _binary_version(binary: str) -> str:
    if Path(binary).is_file():
        with open(binary, "rb") as f:
            return "benchmark_model sha256:" + hashlib.sha256(f.read()).hexdigest()[:16]
    return "unknown (benchmark_model prints no version)"


def _device_info(info: dict) -> dict:
    cores = info.get("cores", "")
    return {"arch": info.get("arch") or None, "cpus": int(cores) if cores.isdigit() else None}
