"""ExecuTorch .pte beside ONNX and TFLite, timed by edgebert's local runner (issue 16).

    python benchmarks/export_bench.py --formats onnx,tflite,executorch --specs w0.5-d0.5,w1-d1 \
        --precisions fp32,int8 --threads 1 2 --rounds 3 --no-export --keep ARTS   # convert, verify, time in-process
    python benchmarks/executorch_bench.py ARTS --threads 1 2 --rounds 5        # the local runner on those files

The second command times every file of ARTS (named SPEC-PRECISION.SUFFIX, as export_bench --keep writes
them) through `edgebert.runners.measure_local`: the bench script in a fresh process per file (batch 1, seq
128, 5 warm-up and 30 timed runs), rounds interleaved with the order rotated. Each figure is the median over
rounds of that round's p50; the spread of the round p50s is printed, as other jobs share this machine. It
ends with the issue's target: fp32 .pte within 1.2x of the TFLite fp32 latency of the same sub-network.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebert.runners import measure_local  # noqa: E402

FORMAT_OF = {".onnx": "onnx", ".tflite": "tflite", ".pte": "executorch", ".pt": "torchscript"}
TARGET = 1.2  # fp32 .pte p50 / TFLite fp32 p50 of the same sub-network


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", type=Path)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args(argv)
    files = sorted(p for p in args.artifacts.iterdir() if p.suffix in FORMAT_OF)
    print(f"edgebert executorch benchmark: python benchmarks/executorch_bench.py {' '.join(argv or sys.argv[1:])}")
    print(f"{len(files)} files; load average at start {os.getloadavg()[0]:.2f}")
    p50s: dict[tuple[str, int], list[float]] = {}
    for r in range(args.rounds):
        order = files[r % len(files) :] + files[: r % len(files)]
        if r % 2:
            order.reverse()
        for threads in args.threads:
            for f in order:
                m = measure_local(f, threads=threads, runs=args.runs, warmup=5, seq_len=128)
                p50s.setdefault((f.name, threads), []).append(m["p50_ms"])
        print(f"  round {r + 1}/{args.rounds} done, load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\n{'file':<26} {'format':<11} thr  {'p50 ms':>8}  {'spread':>6}  {'MB':>6}")
    rows = {}
    for (name, threads), xs in sorted(p50s.items()):
        med = statistics.median(xs)
        spread = (max(xs) - min(xs)) / med if len(xs) > 1 else 0.0
        f = args.artifacts / name
        rows[(name, threads)] = med
        print(
            f"{name:<26} {FORMAT_OF[f.suffix]:<11} {threads:>3}  {med:8.2f}  {spread:6.0%}  {f.stat().st_size / 1e6:6.1f}"
        )
    print("\ntarget: fp32 .pte p50 <= 1.2 x TFLite fp32 p50 of the same sub-network (local runner, median of rounds)")
    for (name, threads), med in sorted(rows.items()):
        if not name.endswith("-fp32.pte"):
            continue
        tfl = rows.get((name.replace(".pte", ".tflite"), threads))
        onnx = rows.get((name.replace(".pte", ".onnx"), threads))
        if tfl:
            ratio = med / tfl
            vs_onnx = f"; ONNX fp32 {onnx:.2f} ms" if onnx else ""
            verdict = "met" if ratio <= TARGET else "NOT met"
            print(
                f"  {name[:-9]} x{threads}: .pte {med:.2f} ms / TFLite {tfl:.2f} ms = {ratio:.2f}x: {verdict}{vs_onnx}"
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
