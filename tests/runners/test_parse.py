"""Parsing what the measuring tools really print.

Samples and where they come from:
  * LITERT_ANDROID, LITERT_FAILED: a user's terminal log of the nightly
    android_aarch64_benchmark_model on a phone (public GitHub notes found by code search),
    copied line for line. The format matches LiteRT tflite/tools/benchmark/benchmark_model.cc
    (StatWithPercentiles: "... p5=.. median=.. p95=..") and tools/logging.h ("INFO: ").
  * FROM_SOURCE: reconstructed from that source for flags edgebert passes (--num_threads,
    --use_xnnpack, --input_layer*, --report_peak_memory_footprint): LogParams order and
    wording (benchmark_model.cc, benchmark_tflite_model.cc, default_execution_provider.cc,
    xnnpack_delegate_provider.cc), OnBenchmarkEnd's memory lines, Stat's all-same form
    "count=N curr=X". Figures are made up.
  * TF_README_LEGACY: tensorflow/lite/tools/benchmark/README.md (op-profiling example of
    the older tool: no "INFO: " prefix, "Average inference timings in us: Warmup: ..").
  * ORT_PERF_*: onnxruntime_perf_test summaries quoted in Arm's SME2 learning path and in
    SpacemiT's Bianbu AI docs (format of onnxruntime/test/perftest/performance_runner.cc).
"""

from __future__ import annotations

import json
import subprocess
from types import SimpleNamespace

import pytest

from edgebert.runners import BenchmarkCrashed
from edgebert.runners.parse import OutputFormatError, parse_benchmark_model, parse_perf_test, parse_script_output
from edgebert.runners.results import result_from_benchmark_model, result_from_perf_test

LITERT_ANDROID = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [5]
INFO: Min warmup runs: [5]
INFO: Graph: [./models/tiny_muaalem_int4.tflite]
INFO: Signature to run: []
INFO: Loaded model ./models/tiny_muaalem_int4.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 2136 out of 2168 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 65 partitions for subgraph 0.
INFO: The input model file size (MB): 8.45746
INFO: Initialized session in 207.799ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=11 first=90710 curr=42743 min=42209 max=90710 avg=48230.2 std=13845 p5=42209 median=42611 p95=90710

INFO: Running benchmark for at least 5 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=24 first=42468 curr=41938 min=41938 max=42840 avg=42394.8 std=188 p5=42133 median=42419 p95=42671

INFO: Inference timings in us: Init: 207799, First inference: 90710, Warmup (avg): 48230.2, Inference (avg): 42394.8
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=23.5938 overall=26.6797
"""

LITERT_FAILED = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [5]
INFO: Min warmup runs: [5]
INFO: Graph: [./models/tiny_muaalem_int8.tflite]
INFO: Signature to run: []
INFO: Loaded model ./models/tiny_muaalem_int8.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 2136 out of 2168 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 65 partitions for subgraph 0.
ERROR: tensorflow/lite/kernels/batch_matmul.cc:353 (lhs_data->type == kTfLiteFloat32 && rhs_data->type == kTfLiteInt8) || lhs_data->type == rhs_data->type was not true.
ERROR: Node number 57 (BATCH_MATMUL) failed to prepare.
ERROR: Failed to allocate tensors!
ERROR: Benchmarking failed.
"""

FROM_SOURCE = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [50]
INFO: Num threads: [4]
INFO: Min warmup runs: [1]
INFO: Report the peak memory footprint: [1]
INFO: Graph: [/data/local/tmp/edgebert/3f2a9c/model.tflite]
INFO: Signature to run: []
INFO: Input layers: [serving_default_args_0,serving_default_args_1,serving_default_args_2]
INFO: Input shapes: [1,128:1,128:1,128]
INFO: Input value ranges: [serving_default_args_0,1,99:serving_default_args_1,1,1:serving_default_args_2,0,0]
INFO: #threads used for CPU inference: [4]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/edgebert/3f2a9c/model.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be completely executed by the delegate.
INFO: The input model file size (MB): 22.9934
INFO: Initialized session in 61.042ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=1 curr=18211

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=61 first=16410 curr=16233 min=15980 max=17893 avg=16389.9 std=301 p5=16012 median=16301 p95=17011

INFO: Inference timings in us: Init: 61042, First inference: 18211, Warmup (avg): 18211, Inference (avg): 16389.9
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=31.2422 overall=33.9805
INFO: Overall peak memory footprint (MB) via periodic monitoring: 61.2109
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 58 MB
INFO: + RssAnnon           : 35 MB
INFO: + RssFile + RssShmem : 23 MB
"""

TF_README_LEGACY = """\
Number of nodes executed: 31
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t                 CONV_2D\t       15\t     1.406\t    89.270%\t    89.270%\t     0.000\t        0
\t       DEPTHWISE_CONV_2D\t       13\t     0.169\t    10.730%\t   100.000%\t     0.000\t        0

Timings (microseconds): count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929
Memory (bytes): count=0
31 nodes observed


Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9
"""

ORT_PERF_SME2 = """\
Setting intra_op_num_threads to 1
Disabling intra-op thread spinning between runs
Session creation time cost: 0.217932 s
First inference time cost: 196 ms
Total inference time cost: 0.49481 s
Total inference requests: 5
Average inference time cost total: 98.961997 ms
Total inference run time: 0.494854 s
Number of inferences per second: 10.104
Avg CPU usage: 11 %
Peak working set size: 271122432 bytes
Avg CPU usage:11
Peak working set size:271122432
Runs:5
Min Latency: 0.0958204 s
Max Latency: 0.101519 s
P50 Latency: 0.0995086 s
P90 Latency: 0.101519 s
P95 Latency: 0.101519 s
P99 Latency: 0.101519 s
P999 Latency: 0.101519 s
"""

ORT_PERF_SPACEMIT = """\
using SpaceMITExecutionProvider
Session creation time cost: 2.74716 s
First inference time cost: 85 ms
Total inference time cost: 6.22935 s
Total inference requests: 100
Average inference time cost: 62.2935 ms
Total inference run time: 6.23146 s
Number of inferences per second: 16.0476
Total CPU usage: 382 %
Peak working set size: 114634752 bytes
Min Latency: 0.0529422 s
Max Latency: 0.0912857 s
P50 Latency: 0.0603562 s
P90 Latency: 0.0741593 s
P95 Latency: 0.0837052 s
P99 Latency: 0.0912857 s
P999 Latency: 0.0912857 s
"""


def proc(text: str, rc: int = 0):
    return SimpleNamespace(returncode=rc, stdout=text, stderr="")


COMMON = dict(
    where="adb://R58M123ABC",
    artifact="model.tflite",
    device="Pixel 6",
    device_info={},
    runtime_version="unknown",
    wall_s=3.0,
    runs_on="Pixel 6",
)


def test_litert_android_log():
    b = parse_benchmark_model(LITERT_ANDROID)
    assert (b["init_us"], b["first_us"], b["warmup_avg_us"], b["avg_us"]) == (207799, 90710, 48230.2, 42394.8)
    assert b["warmup"]["count"] == 11 and b["warmup"]["median"] == 42611
    assert b["timed"] == {
        "count": 24,
        "first": 42468,
        "curr": 41938,
        "min": 41938,
        "max": 42840,
        "avg": 42394.8,
        "std": 188,
        "p5": 42133,
        "median": 42419,
        "p95": 42671,
    }
    assert (b["mem_init_mb"], b["mem_overall_mb"], b["peak_mb"]) == (23.5938, 26.6797, None)
    assert b["params"]["Min num runs"] == "5" and b["params"]["Graph"] == "./models/tiny_muaalem_int4.tflite"

    r = result_from_benchmark_model(proc(LITERT_ANDROID), **COMMON)
    assert r.p50_ms == pytest.approx(42.419) and r.mean_ms == pytest.approx(42.3948)
    assert r.p95_ms == pytest.approx(42.671) and r.std_ms == pytest.approx(0.188) and r.p90_ms is None
    assert (r.runs, r.warmup, r.threads) == (24, 11, -1)  # -1: the log shows no --num_threads (tool default)
    assert r.init_ms == pytest.approx(207.799) and r.first_inference_ms == pytest.approx(90.71)
    assert r.memory_delta_mb == pytest.approx(26.6797) and r.peak_rss_mb is None
    assert r.to_dict()["kind"] == "measured"


def test_reconstructed_output_with_threads_and_peak_memory():
    b = parse_benchmark_model(FROM_SOURCE)
    assert b["warmup"] == {
        "count": 1,
        "curr": 18211,
        "min": 18211,
        "max": 18211,
        "avg": 18211,
        "std": 0,
        "first": 18211,
    }  # Stat's all-same form
    assert b["params"]["Num threads"] == "4" and b["params"]["Use xnnpack"] == "1"
    assert b["params"]["Input shapes"] == "1,128:1,128:1,128"
    r = result_from_benchmark_model(proc(FROM_SOURCE), **COMMON)
    assert (r.threads, r.runs, r.warmup) == (4, 61, 1)
    assert r.p50_ms == pytest.approx(16.301)
    assert r.peak_rss_mb == pytest.approx(61.2109) and r.memory_delta_mb == pytest.approx(33.9805)
    assert r.timed_s == pytest.approx((61 * 16389.9 + 18211) / 1e6)


def test_legacy_tf_readme_output_falls_back_to_the_mean():
    b = parse_benchmark_model(TF_README_LEGACY)
    assert (b["init_us"], b["warmup_avg_us"], b["avg_us"], b["first_us"]) == (38467, 83235, 79760.9, None)
    assert b["timed"]["count"] == 50 and b["warmup"] is None
    r = result_from_benchmark_model(proc(TF_README_LEGACY), **COMMON)
    assert r.p50_ms == pytest.approx(79.7609)
    assert any("mean" in n for n in r.notes)


def test_failed_run_raises_with_its_last_lines():
    with pytest.raises(OutputFormatError):
        parse_benchmark_model(LITERT_FAILED)
    with pytest.raises(BenchmarkCrashed) as e:
        result_from_benchmark_model(proc(LITERT_FAILED, rc=1), **COMMON)
    assert "Failed to allocate tensors!" in str(e.value) and "BATCH_MATMUL" in str(e.value)
    assert e.value.exit_code == 5


def test_old_adb_that_exits_0_on_failure_is_still_a_crash():
    with pytest.raises(BenchmarkCrashed, match="Benchmarking failed"):
        result_from_benchmark_model(proc(LITERT_FAILED, rc=0), **COMMON)


@pytest.mark.parametrize(
    "text,avg,p50,runs,peak",
    [
        (ORT_PERF_SME2, 98.961997, 99.5086, 5, 271122432),
        (ORT_PERF_SPACEMIT, 62.2935, 60.3562, 100, 114634752),
    ],
)
def test_onnxruntime_perf_test(text, avg, p50, runs, peak):
    r = parse_perf_test(text)
    assert (r["avg_ms"], r["requests"], r["peak_bytes"]) == (avg, runs, peak)
    res = result_from_perf_test(proc(text), threads=1, seq_len=128, **COMMON)
    assert res.p50_ms == pytest.approx(p50) and res.mean_ms == pytest.approx(avg) and res.runs == runs
    assert res.peak_rss_mb == pytest.approx(peak / 2**20) and res.tool == "onnxruntime_perf_test"


def test_script_output_is_the_last_json_line():
    out = 'some warning from a runtime\n{"ok": true, "p50_ms": 1.5}\n'
    assert parse_script_output(out) == {"ok": True, "p50_ms": 1.5}
    with pytest.raises(OutputFormatError):
        parse_script_output("Segmentation fault\n")


def test_the_test_double_prints_what_the_parser_reads(doubles, tflite_artifact, python_on_path):
    """tests/doubles/benchmark_model output goes through the same parser (and echoes flags as the tool does)."""
    out = subprocess.run(
        [
            str(doubles / "benchmark_model"),
            f"--graph={tflite_artifact}",
            "--num_threads=2",
            "--warmup_runs=2",
            "--num_runs=5",
            "--min_secs=0",
            "--warmup_min_secs=0",
            "--use_xnnpack=true",
            "--input_layer=a,b,c",
            "--input_layer_shape=1,16:1,16:1,16",
            "--input_layer_value_range=a,1,99:b,1,1:c,0,0",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    b = parse_benchmark_model(out)
    assert b["params"]["Num threads"] == "2" and b["params"]["#threads used for CPU inference"] == "2"
    assert b["timed"]["count"] == 5 and b["warmup"]["count"] == 2
    assert out.splitlines()[0] == "INFO: STARTING!" and "INFO: Use xnnpack: [1]" in out
    json.dumps(b)  # plain data
