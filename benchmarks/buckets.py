"""Issue 13 item 5's benchmark: one .tflite with a signature per sequence length vs padding to 128.

Exports MiniLM w0.5-d0.5 (fp32 by default) with `--formats tflite --seq-len 32,64,128` through edgebert's
export (each signature parity-checked at its own length), then times each signature of that one file on this
machine, 1 thread, each in a fresh process (edgebert's local runner, bench_script.py --signature). Prints
p50/p90 per signature and the speed-up of a 32-token input run in seq_32 over the same input padded to 128.

    python benchmarks/buckets.py --runs 200 [--quantize int8] [--out /tmp/buckets]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgebert.commands.export import run_export
from edgebert.export.manifest import read_manifest

BUCKETS = (32, 64, 128)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--quantize", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--out", help="export folder (default: a temporary one)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="edgebert-buckets-")) / "minilm-w50-d50-buckets"
    run_export(
        width=0.5,
        depth=0.5,
        formats=("tflite",),
        quantize=args.quantize,
        seq_len=BUCKETS,
        threads=1,
        out=str(out),
        force=True,
        runs=args.runs,
        progress=False,
    )
    art = read_manifest(out)["artifacts"][0]
    rows = []
    for b in art["buckets"]:
        m = b["latency"]["measured"][-1]
        rows.append(
            {"signature": b["signature"], "seq_len": b["seq_len"], "p50_ms": m["p50_ms"], "p90_ms": m["p90_ms"]}
        )
    p50 = {r["seq_len"]: r["p50_ms"] for r in rows}
    result = {
        "file": str(out / art["file"]),
        "size_bytes": art["size_bytes"],
        "precision": art["precision"],
        "threads": 1,
        "runs": args.runs,
        "where": art["latency"]["measured"][-1]["where"],
        "device": art["latency"]["measured"][-1].get("device"),
        "signatures": rows,
        "speedup_32_vs_padded_128": p50[128] / p50[32],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['file']} ({art['precision']}, {art['size_bytes'] / 1e6:.1f} MB), 1 thread, {args.runs} runs")
    print(f"{'signature':<10}{'seq_len':>8}{'p50 ms':>9}{'p90 ms':>9}{'vs seq_128':>12}")
    for r in rows:
        print(
            f"{r['signature']:<10}{r['seq_len']:>8}{r['p50_ms']:>9.2f}{r['p90_ms']:>9.2f}{p50[128] / r['p50_ms']:>11.2f}x"
        )
    print(f"a 32-token input: {result['speedup_32_vs_padded_128']:.2f}x faster in seq_32 than padded to 128")


if __name__ == "__main__":
    main()
