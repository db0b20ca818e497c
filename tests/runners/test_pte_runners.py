"""ExecuTorch .pte files on every target: the bench script (local, ssh) and executor_runner over adb.

The adb tests run tests/doubles/executor_runner, which really runs the pushed .pte with executorch.runtime
and prints what ExecuTorch's executor_runner prints (its source: examples/portable/executor_runner)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from edgebert.runners import BenchConfig, BenchmarkCrashed, RunnerOptions, UnsupportedArtifact, run_bench
from edgebert.runners.executor_runner import parse_executor_runner, result_from_executor_runner
from edgebert.runners.parse import OutputFormatError

from .conftest import SEQ

FAST = BenchConfig(threads=1, runs=20, warmup=2, seq_len=SEQ, timeout_s=120)
# A recent build's log (ET_LOG prefix, per-execution lines), as the runner's source prints it.
RECENT = """I 00:00:00.000513 executorch:executor_runner.cpp:222] Resetting threadpool with num threads = 4
I 00:00:00.003100 executorch:executor_runner.cpp:393] Model file /data/local/tmp/model.pte is loaded.
I 00:00:00.004200 executorch:executor_runner.cpp:500] Model loaded in 3.250000 ms.
I 00:00:00.010000 executorch:executor_runner.cpp:610] Iteration 1 of 4: 9.500000 ms
I 00:00:00.015000 executorch:executor_runner.cpp:610] Iteration 2 of 4: 5.000000 ms
I 00:00:00.020000 executorch:executor_runner.cpp:610] Iteration 3 of 4: 4.000000 ms
I 00:00:00.025000 executorch:executor_runner.cpp:610] Iteration 4 of 4: 6.000000 ms
I 00:00:00.025100 executorch:executor_runner.cpp:620] Model executed successfully 4 time(s) in 24.500000 ms.
OutputX 0: tensor(sizes=[1, 384], [0.1, ...])
"""


def test_parse_recent_and_older_runner_output():
    r = parse_executor_runner(RECENT)
    assert r == {"executions": 4, "total_ms": 24.5, "per_run_ms": [9.5, 5.0, 4.0, 6.0], "load_ms": 3.25, "threads": 4}
    old = "I 00:00:01.0 executorch:executor_runner.cpp:270] Model executed successfully 10 time(s) in 50.0 ms.\n"
    assert parse_executor_runner(old)["per_run_ms"] == [] and parse_executor_runner(old)["total_ms"] == 50.0
    with pytest.raises(OutputFormatError, match="prints no execution time"):
        parse_executor_runner("I 00:00:00 executorch:executor_runner.cpp:1] Model executed successfully 10 time(s).\n")
    with pytest.raises(OutputFormatError, match="did not finish"):
        parse_executor_runner("E 00:00:00 executorch:executor_runner.cpp:391] Failed to parse model file m.pte\n")


def _result(text: str, config: BenchConfig, rc: int = 0):
    common = dict(where="adb://X", artifact="model.pte", device="Pixel 6", device_info={}, runtime_version="v")
    proc = SimpleNamespace(stdout="", stderr=text, returncode=rc)
    return result_from_executor_runner(proc, config=config, wall_s=1.0, runs_on="Pixel 6 (X)", seq_len=128, **common)


def test_warm_up_executions_are_dropped_and_a_total_only_build_says_so():
    r = _result(RECENT, BenchConfig(runs=3, warmup=1))
    assert r.runs == 3 and r.warmup == 1 and r.p50_ms == 5.0 and r.first_inference_ms == 9.5 and r.init_ms == 3.25
    assert r.threads == 4 and r.tool == "executor_runner" and r.p90_ms is not None
    total_only = "\n".join(line for line in RECENT.splitlines() if "Iteration" not in line)
    r = _result(total_only, BenchConfig(runs=3, warmup=1))
    assert r.p50_ms == pytest.approx(24.5 / 4) and r.p90_ms is None and r.drift_pct is None
    assert any("first (cold) ones included" in n for n in r.notes)
    with pytest.raises(BenchmarkCrashed, match="exit 1"):
        _result(RECENT, BenchConfig(), rc=1)


def test_local_bench_script_runs_the_pte_at_its_bound(pte_artifact):
    r = run_bench("local", pte_artifact, dataclasses.replace(FAST, seq_len=4 * SEQ))
    assert r.tool == "edgebert bench script" and r.runtime == "executorch" and r.runtime_version == "1.5.1"
    assert r.runs == 20 and r.seq_len == SEQ  # capped at the sequence length its buffers are planned for
    assert 0 < r.min_ms <= r.p50_ms <= r.p90_ms and r.peak_rss_mb > 10


def test_ssh_board_measures_the_pte(sshd, ssh_options, pte_artifact):
    r = run_bench(sshd.uri, pte_artifact, FAST, ssh_options)
    assert r.where == sshd.uri and r.runtime == "executorch" and r.seq_len == SEQ and r.runs == 20


@pytest.fixture
def adb_options(fake_phone, doubles) -> RunnerOptions:
    return RunnerOptions(adb_path=str(doubles / "adb"), executorch_runner=str(doubles / "executor_runner"))


def test_adb_without_executorch_runner_says_which_flag(fake_phone, doubles, pte_artifact):
    with pytest.raises(UnsupportedArtifact, match="--executorch-runner"):
        run_bench("adb://", pte_artifact, FAST, RunnerOptions(adb_path=str(doubles / "adb")))


def test_adb_runs_executor_runner_with_its_real_flags(fake_phone, adb_options, pte_artifact):
    r = run_bench("adb://", pte_artifact, BenchConfig(threads=2, runs=10, warmup=3), adb_options)
    assert r.tool == "executor_runner" and r.where == "adb://FAKE0123456789" and r.device == "Pixel 6"
    assert r.runs == 10 and r.warmup == 3 and r.threads == 2 and r.seq_len == SEQ and r.p90_ms >= r.p50_ms > 0
    assert r.runtime_version.startswith("executor_runner sha256:") and r.init_ms > 0
    calls = [json.loads(x) for x in (fake_phone.parent / "adb.log").read_text().splitlines()]
    run = [c[3] for c in calls if c[2:3] == ["shell"] and "--model_path=" in c[3]][0]
    assert "--num_executions=13" in run and "--cpu_threads=2" in run and run.startswith("taskset") is False
    assert not list((fake_phone / "data/local/tmp/edgebert").iterdir())  # cleaned up
