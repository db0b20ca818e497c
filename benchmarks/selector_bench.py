"""Does the selector keep its promise on `host`? Select for many budgets, then measure every candidate.

    python benchmarks/selector_bench.py                                   # onnx,tflite x fp32,int8, 11 budgets
    python benchmarks/selector_bench.py --formats onnx,tflite --precisions fp32,int8 --budgets 11 --rounds 4
    python benchmarks/selector_bench.py --workdir /tmp/selbench --rounds 10 --gap-seconds 10   # keep the artifacts
    python benchmarks/selector_bench.py --save-raw sel.json ... ; python benchmarks/selector_bench.py --from-raw sel.json

On the packaged MiniLM and the `host` profile (its default threads, sequence 128), the
selector's grid is enumerated exactly as `edgebert export --device host` does it
(`select.quality.quality_for`: the proxy quality of the rewired model; `enumerate_candidates` with
int8/fp16 quality measured as `choose.measured_quality` does it; `select` on each prediction's p90 bound), limited to --formats and
--precisions to keep the run short (fp16 and torchscript cost conversions and add no new
trade-off on this CPU). Budgets are spread geometrically from just above the fastest candidate's
p90 bound to above the slowest one's.

Then every candidate of the grid is exported once (edgebert's converters, from the same rewired
model the export slices) and timed in this process at the profile's thread count, in several
interleaved rounds (--gap-seconds apart); a candidate's measured p50 is the quietest round's
median, as benchmarks/fit_host.py measures (other engineers share this machine's cores and only
ever add time). Exporting takes most of the time (48 artifacts: about 10 min at load average
3-4); --workdir keeps them, so a second run only times. Per budget it reports the chosen candidate, its measured p50 and whether that is within
the budget, and the best candidate that truly fits by measurement (highest quality whose measured
p50 is within the budget; ties to the faster). The chosen one's quality is "within one grid step"
of that true best when its spec is the true best's spec or adjacent to it in the width or the
depth grid (one step, the other multiplier equal), or when its quality is at least that of the
true best's best next-lower grid neighbour (one step narrower or one step shallower, at the true
best's format and precision).

Targets (issue 3): chosen measured p50 <= budget in >= 95% of budgets; quality within one grid step.

Measured 2026-11-21 (2 shared cores, load average 2.3-4.0 from other jobs), with
`--rounds 10 --gap-seconds 10 --workdir ...`: 11/11 budgets within budget, 11/11 within one grid
step (7 exactly the true best; the others gave up 0.005-0.14 of proxy quality to the p90 margin);
12 min in all (exporting 48 artifacts 7-10 min, timing 4 min). With 4 back-to-back rounds at load
average ~3.6 the timings were too noisy to judge the predictor (16 of 48 measured above their p90
bound, against 6 of 48 with rounds spread over 4 min).

Measured 2026-11-30 for issue 12 (AMD EPYC, 2 shared cores, load average 4-7 throughout), two runs with
`--rounds 6 --gap-seconds 10 --workdir DIR --save-raw RAW`, judged again with `--from-raw RAW` under
`EDGEBERT_CACHE_DIR=C` after `edgebert calibrate --device host --quick --formats onnx,tflite --precisions
fp32,int8` wrote C's host calibration: shipped fit median |error| 38.9% / 48.7%, within budget 8/11 /
4/11; after the quick calibration (59 s, all 4 pairs, load noise 71%) 26.8% / 39.9%, within budget 11/11
/ 11/11, within one grid step 7/11 / 11/11. The two runs' own figures differ by a median 24% (p90 61%),
so no predictor can be shown within 10% at that load: the 10% target needs a quiet machine.

Measured again 2026-11-30 17:10-17:19 UTC on the same AMD EPYC, quiet (load average 0.4-1.1):
`EDGEBERT_CACHE_DIR=/tmp/eb12q/calQ edgebert calibrate --device host --quick --formats onnx,tflite
--precisions fp32,int8` (60 s, 4 pairs, 10 measurements, its own held-out error 6.8%), then
`--rounds 6 --gap-seconds 10 --workdir DIR --save-raw RAW` (470 s) and `--from-raw RAW` under that cache:
shipped fit median |error| 3.5% / p90 13.8% (6 of 48 above the p90 bound); after the quick calibration
2.3% / 10.3% (0 of 48 above the bound), within budget 11/11, within one grid step 11/11 (8 exactly the
true best; the shipped fit 9). The issue-12 target (quick calibration's median |error| <= 10%, within
budget >= 95%) holds on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fit_host import _inputs, _machine, _times_ms, quiet_p50  # noqa: E402

from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec  # noqa: E402


def _key(c) -> str:
    return f"{c.spec.key} {c.format}/{c.precision}"


def candidates(loaded, profile, formats, precisions, seq_len, threads, quality):
    """The selector's grid, as select.choose builds it, limited to `precisions`; int8/fp16 quality as choose
    gives it (issue 16): measured for the quantized candidates that could beat the best fp32 one with no
    budget, derived from those measured drops for the rest."""
    from edgebert.select.choose import allowed as _allowed
    from edgebert.select.choose import measured_quality
    from edgebert.select.quantized import QuantizedQuality
    from edgebert.select.selector import enumerate_candidates

    formats, allowed = _allowed(profile, formats, None)
    cands = []
    for f in formats:
        precs = tuple(p for p in allowed[f] if p in precisions)
        if precs:
            cands += enumerate_candidates(loaded.full.config, profile, [f], precs, seq_len, quality, threads=threads)
    cands = measured_quality(cands, float("inf"), None, QuantizedQuality(loaded, quality))
    return [c for c in cands if c.latency is not None and c.quality is not None]


def budgets_for(cands, memory_mb: float, n: int) -> list[float]:
    uppers = [c.latency.upper for c in cands if c.memory is None or c.memory.upper <= memory_mb]
    lo, hi = min(uppers) * 1.03, max(uppers) * 1.10
    return [float(f"{x:.3g}") for x in np.geomspace(lo, hi, n)]


# ---- export and time every candidate once --------------------------------------------------------


def build(loaded, cands, seq_len: int, folder: Path) -> dict[str, Path]:
    """Export each (spec, format, precision) once; a file already in `folder` (from --workdir) is reused."""
    from edgebert.artifact import ArtifactConfig
    from edgebert.model.slicing import slice_model
    from edgebert.registry import CONVERTERS

    paths, subs = {}, {}
    for c in cands:
        k = _key(c)
        if k in paths:
            continue
        if c.spec.key not in subs:
            source, _ = loaded.for_slicing(c.spec, True, False)  # the rewired model, as export slices it
            subs[c.spec.key] = slice_model(source, c.spec).eval()
        conv = CONVERTERS.get(c.format)()
        path = folder / f"{c.spec.key}-{c.format}-{c.precision}-{seq_len}{conv.suffix}"
        paths[k] = path
        if path.exists():
            continue
        t = time.perf_counter()
        tmp = path.with_name(f".partial-{path.name}")
        conv.convert(subs[c.spec.key], ArtifactConfig(c.format, c.precision, seq_len), tmp)
        os.replace(tmp, path)  # an interrupted run leaves no half-written file to reuse
        print(f"  converted {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
    return paths


def measure(cands, paths: dict[str, Path], threads: int, seq_len: int, rounds: int, min_s: float, gap_s: float):
    """{candidate key: [run times of each round, ms]}, rounds interleaved over all candidates."""
    from edgebert.registry import CONVERTERS

    by_key = {_key(c): c for c in cands}
    order = list(paths)
    raw: dict[str, list[list[float]]] = {}
    loads = []
    for r in range(rounds):
        if r:
            time.sleep(gap_s)  # rounds spread in time catch more of the machine's quiet stretches
        t0 = time.perf_counter()
        # Alternate the order so that a slow stretch of the machine does not always hit the same candidates.
        for k in order if r % 2 == 0 else order[::-1]:
            conv = CONVERTERS.get(by_key[k].format)()
            run = conv.load(paths[k], threads=threads)
            raw.setdefault(k, []).append(_times_ms(run, _inputs(seq_len), min_s))
            del run
        loads.append(os.getloadavg()[0])
        print(
            f"  round {r + 1}/{rounds}: {len(order)} artifacts in {time.perf_counter() - t0:.0f} s, "
            f"load average {loads[-1]:.2f}",
            flush=True,
        )
    return raw, loads


# ---- judging ---------------------------------------------------------------------------------------


def _neighbours(spec: SubnetSpec, lower_only: bool) -> list[tuple[float, float]]:
    wi, di = WIDTHS.index(spec.width), DEPTHS.index(spec.depth)
    out = []
    for dw, dd in ((-1, 0), (0, -1)) if lower_only else ((-1, 0), (1, 0), (0, -1), (0, 1)):
        if 0 <= wi + dw < len(WIDTHS) and 0 <= di + dd < len(DEPTHS):
            out.append((WIDTHS[wi + dw], DEPTHS[di + dd]))
    return out


def judge(cands, p50: dict[str, float], budget: float, memory_mb: float) -> dict:
    from edgebert.errors import BudgetError
    from edgebert.select.selector import select

    try:
        ch = select(cands, budget, memory_mb).chosen
    except BudgetError:
        ch = None
    fits = [c for c in cands if p50[_key(c)] <= budget and (c.memory is None or c.memory.value <= memory_mb)]
    best = min(fits, key=lambda c: (-c.quality, p50[_key(c)])) if fits else None
    row = {"budget_ms": budget, "chosen": _key(ch) if ch else None, "best": _key(best) if best else None}
    if ch is not None:
        row.update(
            pred_ms=ch.latency.value,
            bound_ms=ch.latency.upper,
            measured_ms=p50[_key(ch)],
            within_budget=p50[_key(ch)] <= budget,
            q_chosen=ch.quality,
        )
    if best is not None:
        row.update(best_ms=p50[_key(best)], q_best=best.quality)
    if ch is not None and best is not None:
        same_or_adjacent = (ch.spec.width, ch.spec.depth) == (best.spec.width, best.spec.depth) or (
            ch.spec.width,
            ch.spec.depth,
        ) in _neighbours(best.spec, lower_only=False)
        lower = [
            c
            for c in cands
            if (c.spec.width, c.spec.depth) in _neighbours(best.spec, lower_only=True)
            and (c.format, c.precision) == (best.format, best.precision)
        ]
        q_floor = max((c.quality for c in lower), default=-math.inf)
        row.update(
            adjacent=same_or_adjacent,
            q_lower_neighbour=q_floor if lower else None,
            within_step=same_or_adjacent or ch.quality >= q_floor or ch.quality >= best.quality,
        )
    return row


def print_candidates(cands, p50):
    print("\nevery candidate: predicted vs measured p50 (quietest round's median)")
    print(f"{'candidate':<28}{'quality':>9}{'pred ms':>9}{'p90 bnd':>9}{'meas ms':>9}{'error':>8}")
    errs = []
    for c in sorted(cands, key=lambda c: p50[_key(c)]):
        m = p50[_key(c)]
        e = (c.latency.value - m) / m
        errs.append(abs(e))
        print(f"{_key(c):<28}{c.quality:>9.4f}{c.latency.value:>9.2f}{c.latency.upper:>9.2f}{m:>9.2f}{100 * e:>+7.1f}%")
    print(
        f"prediction |error| over all {len(errs)}: median {100 * np.median(errs):.1f}%, "
        f"p90 {100 * np.percentile(errs, 90):.1f}%; measured above the p90 bound: "
        f"{sum(p50[_key(c)] > c.latency.upper for c in cands)} of {len(cands)}"
    )


def print_budgets(rows):
    print(
        f"\n{'budget':>7}  {'chosen':<26}{'bound':>7}{'meas':>7} {'<=bud':<6}{'true best (measured)':<26}{'meas':>7}"
        f"{'q chosen':>9}{'q best':>8}{'dq':>8}  step"
    )
    for r in rows:
        if r["chosen"] is None:
            print(f"{r['budget_ms']:>7.3g}  nothing fits (selector)")
            continue
        best = r["best"] or "-"
        print(
            f"{r['budget_ms']:>7.3g}  {r['chosen']:<26}{r['bound_ms']:>7.2f}{r['measured_ms']:>7.2f} "
            f"{'yes' if r['within_budget'] else 'NO':<6}{best:<26}{r.get('best_ms', float('nan')):>7.2f}"
            f"{r['q_chosen']:>9.4f}{r.get('q_best', float('nan')):>8.4f}"
            f"{r['q_chosen'] - r.get('q_best', float('nan')):>+8.4f}  "
            f"{'-' if 'within_step' not in r else ('same' if r['chosen'] == r['best'] else ('ok' if r['within_step'] else 'NO'))}"
        )
    chosen = [r for r in rows if r["chosen"] is not None]
    n_in = sum(r["within_budget"] for r in chosen)
    judged = [r for r in chosen if "within_step" in r]
    n_step = sum(r["within_step"] for r in judged)
    n_same = sum(r["chosen"] == r["best"] for r in judged)
    print(
        f"\nwithin budget (measured p50 <= budget): {n_in}/{len(chosen)} = {100 * n_in / max(len(chosen), 1):.0f}%"
        f"   target >= 95%"
    )
    print(
        f"quality within one grid step of the true best: {n_step}/{len(judged)} = "
        f"{100 * n_step / max(len(judged), 1):.0f}% (exactly the true best: {n_same}/{len(judged)})"
        f"   target: all"
    )
    if judged:
        print(
            f"quality given up vs the true best: median {np.median([r['q_best'] - r['q_chosen'] for r in judged]):.4f}, "
            f"max {max(r['q_best'] - r['q_chosen'] for r in judged):.4f}"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="host")
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--budgets", type=int, default=11, help="how many budgets across the feasible range")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--threads", type=int, help="default: the profile's default_threads")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--min-seconds", type=float, default=0.12, help="timing window per artifact and round")
    ap.add_argument("--gap-seconds", type=float, default=0.0, help="pause between timing rounds")
    ap.add_argument("--workdir", help="keep the exported artifacts here and reuse them (default: a temp dir)")
    ap.add_argument("--save-raw", help="write quality, run times and load averages to this JSON file")
    ap.add_argument("--from-raw", help="judge a --save-raw file again instead of measuring")
    args = ap.parse_args(argv)

    import torch

    from edgebert.model.loaded import load
    from edgebert.select.profiles import load_profile
    from edgebert.select.quality import quality_for

    torch.manual_seed(0)
    t_start = time.perf_counter()
    profile = load_profile(args.device)
    threads = args.threads or profile.default_threads
    memory_mb = profile.model_memory_mb
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    print(
        f"device {profile.name} ({_machine()}), threads {threads}, seq {args.seq_len}, formats {','.join(formats)}, "
        f"precisions {','.join(precisions)}; load average {os.getloadavg()}",
        flush=True,
    )
    loaded = load(None)
    saved = json.loads(Path(args.from_raw).read_text()) if args.from_raw else {}
    if saved:
        quality = {k: tuple(v) for k, v in saved["quality"].items()}
        source = saved["quality_source"]
    else:
        t = time.perf_counter()
        quality, source = quality_for(loaded, progress=False)
        print(f"quality: {source} ({time.perf_counter() - t:.0f} s)", flush=True)
    cands = candidates(loaded, profile, formats, precisions, args.seq_len, threads, quality)
    budgets = budgets_for(cands, memory_mb, args.budgets)
    print(f"{len(cands)} candidates; budgets (ms): {', '.join(f'{b:g}' for b in budgets)}", flush=True)

    if saved:
        raw, loads = saved["latency"], saved["load_averages"]
    else:
        with tempfile.TemporaryDirectory(prefix="edgebert-selbench-") as tmp:
            folder = Path(args.workdir or tmp)
            folder.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            paths = build(loaded, cands, args.seq_len, folder)
            print(
                f"exported {len(paths)} artifacts in {time.perf_counter() - t:.0f} s; timing {args.rounds} rounds "
                f"at {threads} thread(s)",
                flush=True,
            )
            raw, loads = measure(cands, paths, threads, args.seq_len, args.rounds, args.min_seconds, args.gap_seconds)
        if args.save_raw:
            Path(args.save_raw).write_text(
                json.dumps(
                    {
                        "command": " ".join(
                            ["python benchmarks/selector_bench.py", *(sys.argv[1:] if argv is None else argv)]
                        ),
                        "date": date.today().isoformat(),
                        "machine": _machine(),
                        "threads": threads,
                        "quality": quality,
                        "quality_source": source,
                        "latency": raw,
                        "load_averages": loads,
                    }
                )
            )
    p50 = {k: quiet_p50(v) for k, v in raw.items()}
    print_candidates(cands, p50)
    rows = [judge(cands, p50, b, memory_mb) for b in budgets]
    print_budgets(rows)
    print(f"\nload average per timing round: {', '.join(f'{x:.2f}' for x in loads)}; now {os.getloadavg()}")
    print(f"total time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
