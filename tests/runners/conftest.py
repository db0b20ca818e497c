"""Real artifacts of a tiny BERT (made once per session) and a real loopback sshd for the runner tests.

The artifacts are made here, straight from torch / litert-torch, so the runner tests do not
depend on edgebert's converters: they test measuring, not converting.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from edgebert.model.bert import Bert, BertConfig
from edgebert.runners import RunnerOptions

from .sshd_server import LoopbackSshd, unavailable_reason

DOUBLES = Path(__file__).resolve().parent.parent / "doubles"
SEQ = 16


def processes_mentioning(marker: str) -> list[str]:
    """Pids of live processes whose command line contains `marker` (to check nothing was left running)."""
    found = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and marker in (p / "cmdline").read_bytes().decode(errors="replace"):
                found.append(p.name)
        except OSError:
            pass
    return found


def _tiny_bert() -> Bert:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=200, hidden_size=48, heads=(3, 3), ffn=(64, 64), head_dim=16, max_position_embeddings=64
    )
    return Bert(cfg).eval()


def _inputs(dtype=torch.long):
    return (
        torch.randint(1, 200, (1, SEQ), dtype=dtype),
        torch.ones(1, SEQ, dtype=dtype),
        torch.zeros(1, SEQ, dtype=dtype),
    )


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def tflite_artifact(artifacts_dir) -> Path:
    litert_torch = pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
    path = artifacts_dir / "model.tflite"
    litert_torch.convert(_tiny_bert(), _inputs(torch.int32)).export(str(path))
    return path


@pytest.fixture(scope="session")
def onnx_artifact(artifacts_dir) -> Path:
    """Dynamic sequence length and external weights (model.onnx + model.onnx.data), as the dynamo exporter makes."""
    path = artifacts_dir / "onnx" / "model.onnx"
    path.parent.mkdir()
    seq = torch.export.Dim("seq", min=2, max=64)
    torch.onnx.export(
        _tiny_bert(),
        _inputs(),
        str(path),
        dynamo=True,
        external_data=True,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        dynamic_shapes={"input_ids": {1: seq}, "attention_mask": {1: seq}, "token_type_ids": {1: seq}},
    )
    return path


@pytest.fixture(scope="session")
def pt_artifact(artifacts_dir) -> Path:
    path = artifacts_dir / "model.pt"
    torch.jit.freeze(torch.jit.trace(_tiny_bert(), _inputs())).save(str(path))
    return path


@pytest.fixture(scope="session")
def pte_artifact(artifacts_dir) -> Path:
    """One layer (lowering to XNNPACK is slow), sequence length 8..SEQ: the runners time it at the bound."""
    exir = pytest.importorskip("executorch.exir", reason="executorch is not installed (converters/executorch.py)")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=200, hidden_size=48, heads=(3,), ffn=(64,), head_dim=16, max_position_embeddings=64)
    seq = torch.export.Dim("seq", min=8, max=SEQ)
    program = torch.export.export(Bert(cfg).eval(), _inputs(), dynamic_shapes=tuple({1: seq} for _ in range(3)))
    path = artifacts_dir / "model.pte"
    path.write_bytes(
        exir.to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    )
    return path


@pytest.fixture
def corrupt_tflite(tmp_path) -> Path:
    path = tmp_path / "corrupt.tflite"
    path.write_bytes(b"this is not a flatbuffer" * 40)
    return path


@pytest.fixture
def weird_name() -> str:
    """A file name that would run commands if it ever reached a shell unquoted."""
    return "we ird $(touch PWNED_A) ; touch PWNED_B ; 'q\" `touch PWNED_C`"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no loopback sshd: {reason}")
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture
def remote_tmp(sshd, tmp_path) -> Path:
    """Where this test's remote temp dirs go (the client sends TMPDIR, the server accepts it)."""
    d = tmp_path / "remote-tmp"
    d.mkdir()
    return d


@pytest.fixture
def ssh_options(sshd, remote_tmp) -> RunnerOptions:
    cfg = remote_tmp.parent / "ssh_config"
    cfg.write_text(sshd.client_config.read_text() + f"  SetEnv TMPDIR={remote_tmp}\n")
    # The "board" is this machine: its python with the runtimes is the remote interpreter.
    return RunnerOptions(ssh_config=str(cfg), remote_python=sys.executable, connect_timeout_s=5)


@pytest.fixture
def python_on_path(monkeypatch):
    """Test doubles start with `#!/usr/bin/env python3`: make that this interpreter (it has the runtimes)."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


@pytest.fixture
def doubles() -> Path:
    return DOUBLES


@pytest.fixture
def python_wrapper(tmp_path):
    """Copy a test double with its first line naming this interpreter (remote shells have another PATH)."""

    def make(name: str) -> Path:
        dst = tmp_path / "wrapped" / name
        dst.parent.mkdir(exist_ok=True)
        dst.write_text(f"#!{sys.executable}\n" + (DOUBLES / name).read_text().split("\n", 1)[1])
        dst.chmod(0o755)
        return dst

    return make
