"""Fit the `host` latency and memory model from measurements on this machine.

    python benchmarks/fit_host.py                 # measure, fit, print, write device_profiles/host.yaml
    python benchmarks/fit_host.py --no-write      # measure and print only
    python benchmarks/fit_host.py --quick         # fewer static-shape conversions and fp16 left out
    python benchmarks/fit_host.py --save-raw r.json ... ; python benchmarks/fit_host.py --from-raw r.json

Most of the time goes to converting (LiteRT converts once per sequence length, 5-15 s each): on
this 2-core machine shared with other jobs the full run took 32 min (load average 3-5) and
--quick 17 min (load average ~2.5), of which timing 5 min.

Sub-networks of the packaged MiniLM are converted by edgebert's converters (each format and
precision they can produce) and timed at batch 1 for several sequence lengths at 1 and 2
threads. The model is fitted on TRAIN_SPECS only and judged on the other sub-networks of the
grid (held out). Other engineers share this machine's cores: every configuration is timed in
several rounds, separated in time, and the quietest round's median is kept as its p50.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebert.artifact import ArtifactConfig  # noqa: E402
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec  # noqa: E402
from edgebert.select.costs import costs  # noqa: E402
from edgebert.select.latency import Measurement, fit, fit_memory  # noqa: E402
from edgebert.select.profiles import host_machine  # noqa: E402

# Six of the twelve grid points, spread over widths and depths; the other six are held out.
TRAIN_SPECS = ("w0.25-d0.5", "w0.25-d1", "w0.5-d0.75", "w0.75-d0.5", "w1-d0.75", "w1-d1")
SEQ_LENS = (32, 64, 128)
STATIC_SEQ_LENS = (64, 128)  # formats with one file per length: fewer conversions (each ~5-10 s)
THREADS = (1, 2)
MEMORY_SPECS = ("w0.25-d0.5", "w0.5-d1", "w1-d0.5", "w1-d1")
# fp16 saves size, not CPU time: fewer sub-networks (3 train, 2 held out) keep conversions short.
FP16_SPECS = ("w0.25-d1", "w0.75-d0.5", "w1-d1", "w0.5-d0.5", "w0.75-d1")
QUICK_HELD_OUT = ("w0.5-d0.5", "w0.75-d1", "w1-d0.5")  # --quick: static formats judged on these
MEMORY_SEQ_LENS = (128, 512)  # two lengths separate activations from weights (dynamic formats)


def _machine_fields() -> dict:
    """CPU model name and core count as separate fields: what `host` compares with the machine it runs on."""
    model, cores = host_machine()
    return {"cpu_model": model, "cores": cores}


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = m.group(1).strip() if m else model
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        feats = [
            f
            for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
            if re.search(rf"\b{f}\b", text)
        ]
        flags = " (" + ", ".join(feats) + ")" if feats else ""
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}{flags}, {cores} cores"


# ---- artifacts ------------------------------------------------------------------------------------


def _converters(formats):
    """{format: converter} from edgebert's registry (the converters the pipeline really uses)."""
    from edgebert.registry import CONVERTERS

    out = {}
    for fmt in formats:
        try:
            out[fmt] = CONVERTERS.get(fmt)()
        except Exception as exc:  # a converter not written yet, or its extra not installed
            print(f"  skipping {fmt}: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
    return out


def _static_seqs(key: str, quick: bool) -> tuple[int, ...]:
    """Formats with one file per length convert per length (5-15 s each): fewer of them."""
    if key in TRAIN_SPECS:
        return STATIC_SEQ_LENS if not quick or key in TRAIN_SPECS[::2] else STATIC_SEQ_LENS[-1:]
    return STATIC_SEQ_LENS[-1:] if not quick or key in QUICK_HELD_OUT else ()


def _build(model, spec, converters, precisions, workdir: Path, quick: bool = False) -> list[dict]:
    from edgebert.model.slicing import slice_model

    sub = slice_model(model, spec).eval()
    arts = []
    for fmt, conv in converters.items():
        for precision in precisions:
            if precision not in conv.precisions or (precision == "fp16" and spec.key not in FP16_SPECS):
                continue
            seqs = SEQ_LENS if conv.dynamic_shapes else _static_seqs(spec.key, quick)
            if not seqs:
                continue
            files = {}
            for seq in seqs if not conv.dynamic_shapes else (max(seqs),):
                path = workdir / f"{spec.key}-{fmt}-{precision}-{seq}{conv.suffix}"
                t = time.perf_counter()
                conv.convert(sub, ArtifactConfig(fmt, precision, seq), path)
                print(f"  converted {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
                files[seq] = path
            arts.append(
                {
                    "spec": spec,
                    "format": fmt,
                    "precision": precision,
                    "seqs": seqs,
                    "files": files if not conv.dynamic_shapes else {s: files[max(seqs)] for s in seqs},
                }
            )
    return arts


# ---- timing ---------------------------------------------------------------------------------------


def _inputs(seq: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seq)
    return {
        "input_ids": rng.integers(1000, 20000, (1, seq), dtype=np.int64),
        "attention_mask": np.ones((1, seq), dtype=np.int64),
        "token_type_ids": np.zeros((1, seq), dtype=np.int64),
    }


def _times_ms(run, inputs, min_s: float, min_runs: int = 7, max_runs: int = 200) -> list[float]:
    for _ in range(2):
        run(inputs)  # warm-up: first calls allocate and pack weights
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < min_s and len(times) < max_runs):
        t = time.perf_counter()
        run(inputs)
        times.append(1e3 * (time.perf_counter() - t))
    return times


def quiet_p50(rounds: list[list[float]]) -> float:
    """The p50 of a quiet machine, estimated from rounds of runs on a shared one.

    Other processes only ever add time, so the quietest round's median is the closest to it.
    """
    return float(min(np.median(r) for r in rounds))


def measure_latency(arts, converters, rounds: int, min_s: float) -> dict[tuple, list[list[float]]]:
    """{(spec key, format, precision, threads, seq): [run times of each round, ms]}."""
    raw: dict[tuple, list[list[float]]] = {}
    for r in range(rounds):
        t0 = time.perf_counter()
        for a in arts:
            conv = converters[a["format"]]
            for threads in THREADS:
                loaded = {}
                for seq in a["seqs"]:
                    path = a["files"][seq]
                    if path not in loaded:
                        loaded[path] = conv.load(path, threads=threads)
                    key = (a["spec"].key, a["format"], a["precision"], threads, seq)
                    raw.setdefault(key, []).append(_times_ms(loaded[path], _inputs(seq), min_s))
                del loaded
        print(
            f"  round {r + 1}/{rounds}: {len(raw)} configurations in {time.perf_counter() - t0:.0f} s, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return raw


# ---- memory: a fresh process per artifact, peak RSS over a baseline with the runtime loaded ----

_MEMORY_CHILD = r"""
import json, re, sys
import numpy as np
from edgebert.registry import CONVERTERS
conv = CONVERTERS.get(sys.argv[1])()
path, seq = sys.argv[2], int(sys.argv[3])
def status(k):
    return int(re.search(rf"^{k}:\s+(\d+)", open("/proc/self/status").read(), re.M).group(1)) / 1024
feed = {"input_ids": np.full((1, seq), 1000, np.int64), "attention_mask": np.ones((1, seq), np.int64),
        "token_type_ids": np.zeros((1, seq), np.int64)}
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to now
run = conv.load(path, threads=1)
for _ in range(3):
    run(feed)
print(json.dumps({"peak_mb": (status("VmHWM") - base) * 1.048576}))
"""


def _warm_runtime(fmt: str) -> None:
    """Import the format's runtime once in a child so the first memory child is not the slowest."""
    subprocess.run(
        [sys.executable, "-c", f"from edgebert.registry import CONVERTERS; CONVERTERS.get({fmt!r})"],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def measure_memory(arts) -> dict[tuple, float]:
    out = {}
    for a in arts:
        if a["spec"].key not in MEMORY_SPECS:
            continue
        path = a["files"][max(a["seqs"])]
        dynamic = len(set(a["files"].values())) == 1 and len(a["seqs"]) > 1
        for seq in MEMORY_SEQ_LENS if dynamic else (max(a["seqs"]),):
            proc = subprocess.run(
                [sys.executable, "-c", _MEMORY_CHILD, a["format"], str(path), str(seq)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            if proc.returncode != 0:
                print(f"  memory of {a['spec'].key} {a['format']}/{a['precision']} failed: {proc.stderr[-300:]}")
                continue
            peak = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]
            out[(a["spec"].key, a["format"], a["precision"], seq)] = peak
    return out


# ---- report and profile ----------------------------------------------------------------------------


def _errors(pairs):
    rel = np.array([abs(p - m) / m for p, m in pairs])
    return (float(np.median(rel)), float(np.percentile(rel, 90)), len(rel)) if len(rel) else (float("nan"),) * 2 + (0,)


def evaluate(model, ms: list[Measurement], threads: int | None = None):
    rows = {}
    for m in ms:
        if threads is not None and m.threads != threads:
            continue
        p = model.predict_latency(m.costs, m.format, m.precision, m.threads)
        rows.setdefault((m.format, m.precision, m.threads), []).append((p.value, m.p50_ms))
    return {k: _errors(v) for k, v in rows.items()}, _errors([x for v in rows.values() for x in v])


def print_table(model, train_err, held_err, overall_train, overall_held):
    print(
        "\nformat      prec  thr   linear GMAC/s  attn GMAC/s  ms/layer  fixed ms   train med/p90   held-out med/p90 (n)"
    )
    for e in model.entries:
        k = e.key
        tr, he = train_err.get(k), held_err.get(k)
        print(
            f"{e.format:<11} {e.precision:<5} {e.threads:>3}   {e.linear_gmacs_per_s:>13.1f} {e.attention_gmacs_per_s:>12.1f}"
            f" {e.per_layer_ms:>9.3f} {e.fixed_ms:>9.3f}   {100 * tr[0]:5.1f}% {100 * tr[1]:5.1f}%"
            f"   {100 * he[0]:5.1f}% {100 * he[1]:5.1f}% ({he[2]})"
        )
    print(
        f"\nall train:    median |error| {100 * overall_train[0]:.1f}%, p90 {100 * overall_train[1]:.1f}% (n={overall_train[2]})"
    )
    print(
        f"all held-out: median |error| {100 * overall_held[0]:.1f}%, p90 {100 * overall_held[1]:.1f}% (n={overall_held[2]})"
        f"   target: median <= 10%, p90 <= 20%"
    )
    print(f"parallel efficiency (1 -> 2 threads): {model.parallel_efficiency:.2f}")


def print_by_threads(model, train, held):
    for t in THREADS:
        tr, he = evaluate(model, train, t)[1], evaluate(model, held, t)[1]
        print(
            f"{t} thread{'s' if t > 1 else ' '}: train median {100 * tr[0]:.1f}% p90 {100 * tr[1]:.1f}% (n={tr[2]}) | "
            f"held-out median {100 * he[0]:.1f}% p90 {100 * he[1]:.1f}% (n={he[2]})"
        )


def write_profile(model, memory, held_err, command, runs_note, machine, path: Path, floors=None):
    import yaml

    doc = yaml.safe_load(path.read_text()) if path.exists() else {}
    today = date.today().isoformat()
    entries = []
    for e in model.entries:
        he = held_err.get(e.key)
        d = e.to_dict()
        # Judge a prediction by how it did on sub-networks the fit never saw, when worse than the fit.
        if he and he[2]:
            # Few held-out points (static-shape formats) say little: the thread count's overall figure is the floor.
            floor = (floors or {}).get(e.threads, (0.0, 0.0)) if he[2] < 6 else (0.0, 0.0)
            d["expected_error"] = round(max(e.expected_error, he[0], floor[0]), 4)
            d["error_p90"] = round(max(e.error_p90, he[1], floor[1]), 4)
            d["provenance"]["held_out"] = {
                "median_abs_rel_error": round(he[0], 4),
                "p90_abs_rel_error": round(he[1], 4),
                "n": he[2],
            }
        for k in ("linear_gmacs_per_s", "attention_gmacs_per_s", "per_layer_ms", "fixed_ms"):
            d[k] = float(f"{d[k]:.4g}")
        d["provenance"].update({"command": command, "runs": runs_note, "machine": machine, **_machine_fields()})
        entries.append(d)
    mem = []
    for m in memory:
        d = m.to_dict()
        for k in (
            "weight_factor",
            "embedding_factor",
            "activation_factor",
            "overhead_mb",
            "expected_error",
            "error_p90",
        ):
            d[k] = float(f"{d[k]:.4g}")
        d["provenance"].update(
            {
                "command": command,
                "machine": machine,
                **_machine_fields(),
                "measured": "peak RSS over a baseline with the runtime imported, fresh process, load + 3 inferences",
            }
        )
        mem.append(d)
    doc["latency_model"] = {
        "kind": model.kind,
        "source": f"fitted on {sum(e['provenance']['n'] for e in entries)} measurements on host ({machine}), {today}",
        "parallel_efficiency": model.parallel_efficiency,
        "entries": entries,
        "memory": mem,
    }
    header = (
        "# The machine edgebert runs on. cpu and RAM are detected at load time (detect: true);\n"
        f"# latency_model is written by: {command}\n"
    )
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=120, allow_unicode=True))
    os.replace(tmp, path)  # never a half-written profile
    print(f"wrote {path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default="onnx,tflite,torchscript")
    ap.add_argument("--precisions", default="fp32,fp16,int8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=0.12, help="timing window per configuration and round")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--profile", default=str(ROOT / "device_profiles" / "host.yaml"))
    ap.add_argument("--save-raw", help="also write every run time to this JSON file")
    ap.add_argument("--from-raw", help="refit from a --save-raw file instead of measuring")
    ap.add_argument("--remeasure-memory", action="store_true", help="with --from-raw: measure memory afresh")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="fewer static-shape conversions (3 train sub-networks at 2 lengths, 3 held out), no fp16",
    )
    args = ap.parse_args(argv)
    command = " ".join(["python benchmarks/fit_host.py", *(sys.argv[1:] if argv is None else argv)])

    import torch

    from edgebert.model.bert import load_model
    from edgebert.model.packaged import default_model_dir

    torch.manual_seed(0)
    t_start = time.perf_counter()
    model = load_model(default_model_dir())
    specs = [SubnetSpec(w, d) for w in WIDTHS for d in DEPTHS]
    precisions = [p for p in args.precisions.split(",") if not (args.quick and p == "fp16")]
    raw, mem, saved = {}, {}, {}
    if args.from_raw:
        saved = json.loads(Path(args.from_raw).read_text())
        raw = {tuple(json.loads(k)): v for k, v in saved["latency"].items()}
        mem = {tuple(json.loads(k)): v for k, v in saved["memory"].items()}
    if not args.from_raw or args.remeasure_memory:
        converters = _converters(args.formats.split(","))
        if not converters:
            print("no converter is available; nothing to measure")
            return 1
        todo = specs if not args.from_raw else [s for s in specs if s.key in MEMORY_SPECS]
        with tempfile.TemporaryDirectory(prefix="edgebert-fit-") as tmp:
            print(f"converting {len(todo)} sub-networks to {', '.join(converters)} ({args.precisions})", flush=True)
            arts = [a for s in todo for a in _build(model, s, converters, precisions, Path(tmp), args.quick)]
            if not args.from_raw:
                print(f"timing {len(arts)} artifacts, threads {THREADS}", flush=True)
                raw = measure_latency(arts, converters, args.rounds, args.min_seconds)
            if not args.no_memory:
                for fmt in converters:
                    _warm_runtime(fmt)
                mem = measure_memory(arts)
        if args.save_raw:
            measured_by = saved.get("command", "") if args.from_raw else command
            Path(args.save_raw).write_text(
                json.dumps(
                    {
                        "command": measured_by,
                        "date": date.today().isoformat(),
                        "load_average": os.getloadavg()[0],
                        "latency": {json.dumps(k): v for k, v in raw.items()},
                        "memory": {json.dumps(k): v for k, v in mem.items()},
                    }
                )
            )
    if args.from_raw and saved.get("command"):
        command = f"{saved['command']} (measured {saved.get('date', '?')}); refit: {command}"
    p50 = {k: quiet_p50(v) for k, v in raw.items()}
    by_key = {s.key: s for s in specs}
    ms = [
        Measurement(costs(model.config, seq, by_key[k]), fmt, prec, thr, v, label=k)
        for (k, fmt, prec, thr, seq), v in sorted(p50.items())
    ]
    train = [m for m in ms if m.label in TRAIN_SPECS]
    held = [m for m in ms if m.label not in TRAIN_SPECS]
    machine = _machine()
    fitted = fit(
        train,
        device="host",
        source=f"fitted on {len(train)} measurements on host ({machine}), {date.today().isoformat()}",
    )
    train_err, overall_train = evaluate(fitted, train)
    held_err, overall_held = evaluate(fitted, held)
    print_table(fitted, train_err, held_err, overall_train, overall_held)
    print_by_threads(fitted, train, held)
    mem_ms = [
        Measurement(costs(model.config, seq, by_key[k]), fmt, prec, 1, 0.0, peak_mb=v, label=k)
        for (k, fmt, prec, seq), v in sorted(mem.items())
    ]
    memory = (
        fit_memory(mem_ms, source=f"fitted on {len(mem_ms)} peak-RSS measurements on host ({machine})")
        if mem_ms
        else ()
    )
    for m in memory:
        print(
            f"memory {m.format:<11} {m.precision:<5}: {m.weight_factor:.2f} x weights + {m.activation_factor:.2f} x activations "
            f"+ {m.overhead_mb:.1f} MB (tables x {m.embedding_factor:.2f})   (median |error| {100 * m.expected_error:.1f}%, p90 {100 * m.error_p90:.1f}%)"
        )
    print(f"\ntotal time {time.perf_counter() - t_start:.0f} s")
    if not args.no_write:
        rounds = max(len(v) for v in raw.values())
        note = (
            f"{rounds} rounds x >= 7 runs each; p50 = min over rounds of the "
            f"round's median (shared cores: load average {os.getloadavg()[0]:.1f} at the end)"
        )
        floors = {t: evaluate(fitted, held, t)[1][:2] for t in THREADS}
        write_profile(fitted, memory, held_err, command, note, machine, Path(args.profile), floors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
