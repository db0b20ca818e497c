"""A real OpenSSH server on 127.0.0.1 for tests and benchmarks: own host key, own client key,
a free port, a client config file pointing at all of it. Nothing outside `workdir` is used
except /run/sshd, the privilege-separation directory sshd insists on (created when root)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by absolute path


def unavailable_reason() -> str | None:
    """Why a loopback sshd cannot run here, or None when it can."""
    if not Path(SSHD).is_file():
        return f"{SSHD} is absent (apt-get install openssh-server)"
    for tool in ("ssh", "scp", "ssh-keygen"):
        if not shutil.which(tool):
            return f"{tool} is absent (apt-get install openssh-client)"
    if not Path("/run/sshd").is_dir() and os.geteuid() != 0:
        return "/run/sshd is missing and only root can create it"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgebert-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


class LoopbackSshd:
    def __init__(self, workdir: Path):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.client_key = keygen(self.dir / "client_key")
        self.client_config = self.dir / "ssh_config"

    def start(self, timeout_s: float = 15) -> "LoopbackSshd":
        host_key = keygen(self.dir / "host_key")
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        cfg = self.dir / "sshd_config"
        cfg.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin yes",
                    "Subsystem sftp internal-sftp",
                    "AcceptEnv TMPDIR",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        # The client side: our key, our known_hosts, nothing from ~/.ssh.
        self.client_config.write_text(
            "\n".join(
                [
                    "Host *",
                    f"  IdentityFile {self.client_key}",
                    "  IdentitiesOnly yes",
                    f"  UserKnownHostsFile {self.dir / 'known_hosts'}",
                    "  GlobalKnownHostsFile /dev/null",
                    "  LogLevel ERROR",
                    "",
                ]
            )
        )
        if not Path("/run/sshd").is_dir():
            Path("/run/sshd").mkdir(mode=0o755)
        self._log = open(self.dir / "sshd.log", "w")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(cfg)], stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {(self.dir / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on port {self.port} within {timeout_s} s")

    @property
    def uri(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
