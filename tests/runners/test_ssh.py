"""`ssh://`: against a real OpenSSH server on 127.0.0.1 (conftest's `sshd`), the system ssh/scp client."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import threading
import time

import pytest

from edgebert.runners import (
    AuthError,
    BenchConfig,
    BenchmarkCrashed,
    BenchTimeout,
    BinaryMissing,
    RuntimeMissing,
    TargetUnreachable,
    UnsupportedArtifact,
    run_bench,
)

from .conftest import SEQ, processes_mentioning
from .sshd_server import free_port, keygen

FAST = BenchConfig(threads=1, runs=20, warmup=2, seq_len=SEQ, timeout_s=120)


def leftovers(remote_tmp):
    """Our remote temp dirs still there (onnxruntime itself keeps a `.ses` file in $TMPDIR; not ours)."""
    return sorted(p.name for p in remote_tmp.iterdir() if p.name.startswith("edgebert."))


@pytest.mark.parametrize(
    "fixture,runtime",
    [("tflite_artifact", "ai-edge-litert"), ("onnx_artifact", "onnxruntime"), ("pt_artifact", "torch")],
)
def test_measures_real_artifacts_and_cleans_up(request, fixture, runtime, sshd, ssh_options, remote_tmp):
    artifact = request.getfixturevalue(fixture)
    r = run_bench(sshd.uri, artifact, FAST, ssh_options)
    assert r.where == sshd.uri and r.tool == "edgebert bench script" and r.runtime == runtime
    assert r.runs == 20 and r.warmup == 2 and r.seq_len == SEQ and 0 < r.p50_ms <= r.p90_ms
    assert r.device and r.device_info["arch"] and r.peak_rss_mb > 10
    assert leftovers(remote_tmp) == []


def test_wrong_port_is_unreachable_within_the_timeout(sshd, ssh_options, tflite_artifact):
    port = free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(TargetUnreachable) as e:
        run_bench(f"ssh://{sshd.user}@127.0.0.1:{port}", tflite_artifact, FAST, ssh_options)
    assert time.monotonic() - start < ssh_options.connect_timeout_s + 5
    assert "Connection refused" in str(e.value) and f"port {port}" in str(e.value)
    assert e.value.exit_code == 5


def test_unroutable_host_times_out_at_the_connect_timeout(sshd, ssh_options, tflite_artifact):
    options = dataclasses.replace(ssh_options, connect_timeout_s=2)
    start = time.monotonic()
    with pytest.raises(TargetUnreachable):
        run_bench("ssh://root@10.255.255.1", tflite_artifact, FAST, options)  # non-routable: no answer at all
    assert time.monotonic() - start < 2 + 5


def test_wrong_key_is_an_auth_error(sshd, ssh_options, tflite_artifact, tmp_path):
    stranger = keygen(tmp_path / "stranger_key")
    cfg = tmp_path / "stranger_config"
    cfg.write_text(open(ssh_options.ssh_config).read().replace(str(sshd.client_key), str(stranger)))
    with pytest.raises(AuthError) as e:
        run_bench(sshd.uri, tflite_artifact, FAST, dataclasses.replace(ssh_options, ssh_config=str(cfg)))
    assert "Permission denied" in str(e.value) and "ssh-copy-id" in str(e.value)


def test_names_and_arguments_cannot_inject_commands(
    sshd, ssh_options, tflite_artifact, tmp_path, remote_tmp, weird_name, monkeypatch
):
    """Spaces, $(...), backticks, ';' and quotes in the artifact name and in --remote-python stay data."""
    monkeypatch.chdir(tmp_path)  # a stray `touch PWNED_*` would land here (local) or in $HOME (remote)
    folder = tmp_path / "dir with $(touch PWNED_D) ; spaces"
    folder.mkdir()
    artifact = folder / (weird_name + ".tflite")
    shutil.copy(tflite_artifact, artifact)
    r = run_bench(sshd.uri, artifact, FAST, ssh_options)
    assert r.artifact == artifact.name and r.p50_ms > 0

    canary = tmp_path / "PWNED_E"
    evil_python = f"{sys.executable}; touch {canary}; echo $(touch {canary}x)"
    with pytest.raises(BinaryMissing, match="could not be run"):
        run_bench(sshd.uri, artifact, FAST, dataclasses.replace(ssh_options, remote_python=evil_python))
    home = os.path.expanduser("~")
    pwned = [p for d in (tmp_path, folder, remote_tmp, home) for p in os.listdir(d) if p.startswith("PWNED")]
    assert pwned == [] and leftovers(remote_tmp) == []


def test_missing_remote_runtime_names_the_pip_line(sshd, ssh_options, tflite_artifact, tmp_path, remote_tmp):
    bare = tmp_path / "python-without-packages"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')  # -S: no site-packages
    bare.chmod(0o755)
    with pytest.raises(RuntimeMissing) as e:
        run_bench(sshd.uri, tflite_artifact, FAST, dataclasses.replace(ssh_options, remote_python=str(bare)))
    assert "pip install numpy ai-edge-litert==2.3.0" in str(e.value)
    assert leftovers(remote_tmp) == []


def test_missing_remote_python(sshd, ssh_options, tflite_artifact, remote_tmp):
    options = dataclasses.replace(ssh_options, remote_python="/nonexistent/bin/python3")
    with pytest.raises(BinaryMissing, match="--remote-python"):
        run_bench(sshd.uri, tflite_artifact, FAST, options)
    assert leftovers(remote_tmp) == []


def test_crash_shows_the_runtime_error_and_cleans_up(sshd, ssh_options, corrupt_tflite, remote_tmp):
    with pytest.raises(BenchmarkCrashed) as e:
        run_bench(sshd.uri, corrupt_tflite, FAST, ssh_options)
    assert "could not load" in str(e.value)
    assert leftovers(remote_tmp) == []


def test_timeout_and_cleanup(sshd, ssh_options, tflite_artifact, remote_tmp):
    start = time.monotonic()
    with pytest.raises(BenchTimeout):
        run_bench(sshd.uri, tflite_artifact, BenchConfig(runs=10**9, seq_len=SEQ, timeout_s=6), ssh_options)
    assert time.monotonic() - start < 6 + 10
    assert leftovers(remote_tmp) == []
    time.sleep(0.5)
    assert processes_mentioning(str(remote_tmp)) == []


def test_ctrl_c_cleans_up_and_propagates(sshd, ssh_options, tflite_artifact, remote_tmp):
    timer = threading.Timer(4.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_bench(sshd.uri, tflite_artifact, BenchConfig(runs=10**9, seq_len=SEQ, timeout_s=60), ssh_options)
    finally:
        timer.cancel()
    assert leftovers(remote_tmp) == []
    time.sleep(0.5)
    assert processes_mentioning(str(remote_tmp)) == []  # the remote benchmark was stopped too


def test_benchmark_model_on_the_board(sshd, ssh_options, tflite_artifact, pt_artifact, python_wrapper, remote_tmp):
    """--benchmark-binary over ssh: copied, made executable, run with BERT-safe input ranges, parsed."""
    binary = python_wrapper("benchmark_model")
    options = dataclasses.replace(ssh_options, benchmark_binary=str(binary), taskset_mask="1")
    r = run_bench(sshd.uri, tflite_artifact, BenchConfig(threads=1, runs=5, warmup=1), options)
    assert r.tool == "benchmark_model" and r.threads == 1 and r.runs >= 5 and r.seq_len == SEQ
    assert r.runtime_version.startswith("benchmark_model sha256:") and r.p50_ms > 0
    assert oct(binary.stat().st_mode & 0o777) == "0o755"
    assert leftovers(remote_tmp) == []
    with pytest.raises(UnsupportedArtifact, match=".tflite files only"):
        run_bench(sshd.uri, pt_artifact, FAST, options)
