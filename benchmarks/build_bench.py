"""`edgebert build` wall time: a 4-entry MiniLM matrix (2 devices x 2 budgets, onnx + tflite + torchscript),
built cold and then rebuilt with nothing changed, each as a user runs it (a fresh `edgebert build` process).

    python benchmarks/build_bench.py [--out DIR] [--measure]

Targets (issue 6): cold <= 4 min on 2 cores, no-change rebuild <= 10 s. The second figure is mostly
Python + torch start-up and hashing the model and artifacts (the cache check reads every byte).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """# benchmarks/build_bench.py: packaged MiniLM, 2 devices x 2 budgets, every format
formats = ["onnx", "tflite", "torchscript"]
seq_len = 128
measure = {measure}
runs = 20

[output]
dir = "dist"

[matrix.pixel6]
latency = ["40ms", "20ms"]

[matrix.raspberry-pi-5]
latency = ["60ms", "30ms"]
"""
TARGETS = {"cold": 240.0, "no-change": 10.0}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(config: Path) -> tuple[float, float, dict]:
    """(wall s, CPU s, index) of one `edgebert build` process. On a shared machine both grow with the
    other jobs' load: wall time because they take cores away, CPU time because OpenMP threads spin
    while they wait for a core (the same cold build measured 150 and 237 CPU s at load ~3 and ~4)."""
    t0, c0 = time.perf_counter(), _cpu_seconds()
    r = subprocess.run(
        [sys.executable, "-m", "edgebert.cli", "build", str(config), "--json"], cwd=ROOT, capture_output=True, text=True
    )
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    if r.returncode not in (0, 3):
        sys.exit(f"edgebert build exited {r.returncode}:\n{r.stderr[-3000:]}")
    return seconds, cpu, json.loads(r.stdout)


def _table(rows: list[tuple], head: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="work folder (default: a temporary one, removed at the end)")
    ap.add_argument("--measure", action="store_true", help="also time every artifact locally (measure = true)")
    args = ap.parse_args()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgebert-build-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    config = work / "edgebert.toml"
    config.write_text(CONFIG.format(measure=str(args.measure).lower()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f} at start (shared machine: other jobs may run)")
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, config: {config}\n")

    phases = []
    for phase in ("cold", "no-change"):
        phases.append((phase, *_run(config)))
    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = [
        (
            p,
            f"{s:.1f}",
            f"{c:.1f}",
            f"{TARGETS[p]:.0f}",
            "yes" if s <= TARGETS[p] else "NO",
            ", ".join(f"{n} {k}" for k, n in sorted(i["counts"].items())),
        )
        for p, s, c, i in phases
    ]
    print(_table(rows, ("build", "wall s", "cpu s", "target s", "met", "entries")))
    print(f"load average at the end: {end_load:.2f}")
    cold = phases[0][3]
    rows = [
        (
            e["name"],
            e["status"],
            (e["chosen"] or {}).get("spec", "-"),
            f"{(e['chosen'] or {}).get('format', '-')}/{(e['chosen'] or {}).get('precision', '-')}",
            "-" if e["seconds"] is None else f"{e['seconds']:.1f}",
            " ".join(f"{a['format']}:{a['size_bytes'] / 1e6:.1f}" for a in e["artifacts"]),
        )
        for e in cold["entries"]
    ]
    print("\ncold build, per entry (the first also loads, rewires and scores the model):")
    print(_table(rows, ("entry", "status", "spec", "chosen", "s", "artifacts (MB)")))
    if not args.out:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
