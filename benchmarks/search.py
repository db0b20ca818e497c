"""Per-layer search vs DynaBERT's uniform grid (issue 17): quality at equal predicted budget, the searched points
exported and timed here (host), and the latency model's error on non-uniform sub-networks.

    python benchmarks/search.py                                  # host and pixel6, 5 budgets each
    python benchmarks/search.py --devices host --budgets 5 --population 24 --generations 8
    python benchmarks/search.py --measure-exports 50             # + host's searched points exported, 50 runs each
    python benchmarks/search.py --latency-check 10               # + 10 random per-layer configs timed here
    python benchmarks/search.py --devices none --latency-check 10 --workdir /tmp/check  # the check alone

On the packaged MiniLM with the embedding proxy as quality (select/proxy.py: mean cosine of the sub-network's
sentence embedding to the full model's on 88 held-out calibration texts; no labels), for each device the
budgets are spread geometrically from 0.8x the fastest grid point's p90 bound to the slowest one's, and
`edgebert search`'s code (search/run.py: search_model) runs once for all of them at the profile's preferred
format, fp32, sequence 128 and default threads. Per budget it prints the best uniform grid point within the
budget (grid quality, measured), the searched choice (search quality, measured: the search ranks by a ridge
predictor and measures its best before choosing), and both predicted latencies (p90 bound, ms).

--measure-exports RUNS (devices edgebert runs on: host): each budget's searched point is exported as `export
--search` exports it (slice, convert, parity check; export/pipeline.py) and timed by edgebert's local runner
(the bench script in a fresh process, RUNS runs, as `export` measures): measured p50 vs the prediction and
the budget.

--latency-check N: N random per-layer configurations (seeded) and the grid points are converted to ONNX fp32
(--check-format: the format host's search uses), timed in this process at 1 thread and 128 tokens (quietest
of 3 rounds' medians: other engineers share these cores and only add time), and compared with the host
profile's predictions: as shipped, refitted here on the grid points alone (all four coefficients, as
`edgebert calibrate` fits), and the shipped coefficients rescaled on the grid points (a x compute + b x
overhead, the quick calibration's shape). The refits' median |relative error| on the non-uniform
configurations, which they never saw, is what issue 17 item 5 asks about (target <= 10%). --workdir keeps
the converted files, so that a second run only times (conversion takes ~4 min on 2 cores).

Measured 2026-11-30 18:37 UTC on this 2-core machine, quiet (load average 0.8-1.5, nobody else running):
`python benchmarks/search.py --latency-check 10 --measure-exports 50 --workdir /tmp/eb17/check`
  host    budget 4.38 / 7.64 / 13.3 / 23.2 / 40.5 ms: grid -, 0.2927, 0.4986, 0.6767, 0.9071;
          search 0.3357, 0.4332, 0.6512, 0.7730, 0.9730 (+14.0, +15.3, +9.6, +6.6 pt where the grid has a point)
          predicted 3.73 / 6.66 / 11.92 / 20.48 / 34.15 ms (p90 bound 4.15 / 7.41 / 13.26 / 22.79 / 38.00);
          exported and measured (50 runs, parity passed): p50 3.87 / 7.40 / 13.06 / 23.07 / 33.28 ms: 5/5
          within the budget, median |error| 8.8%. At load 6-8 (18:07, nice-10 jobs on both cores, this script
          at nice -5): 4.93 / 11.72 / 19.50 / 28.67 / 50.52 ms, none within the budget.
  pixel6  budget 6.3 / 11 / 19.2 / 33.6 / 58.8 ms: grid -, 0.2927, 0.4986, 0.6767, 0.9071;
          search 0.3357, 0.4530, 0.6517, 0.7599, 0.9730 (+16.0, +15.3, +8.3, +6.6 pt)
  search 4 s on host, under 1 s on pixel6 (proxy measurements cached by earlier runs); with an empty
  $EDGEBERT_CACHE_DIR (load 7.8, an earlier run): 83 s on host, then 21 s on pixel6. Predictor: Spearman
  0.958 on 12 held-out configurations.
  Caveat: the proxy is the cosine to the full model's final embedding, which rewards keeping the last layer
  (DynaBERT's depth rule drops it: layers 0, 2, 4 at d0.5); every searched choice keeps layer 5. The gains
  are on that proxy, not on a task's accuracy.
  latency check (onnx, load 1.4-1.5): on the 10 per-layer configurations, median |error| 5.1% (p90 13.4%)
  shipped, 2.0% (p90 5.2%) refitted on the grid, 2.5% (p90 6.4%) shipped-rescaled (grid: 4.8%, 0.7%, 0.9%).
  At load 6-8 (18:07): refit 4.3% (p90 12.0%), rescaled 5.5% (p90 8.9%). The earlier 12.7% (TorchScript at
  load 9) was load and format, not shape: single MatMuls in ONNX Runtime at 1 thread run 52-55 GMAC/s for
  every FFN width 192..1536 (1344 is not slower per MAC than 1536), and the shipped fit errs alike on grid
  and per-layer points.

Targets (issue 17): search >= best uniform at every budget and >= 1 pt better at two of five; search time
<= 2 min per device on 2 cores; latency-model median error on non-uniform sub-networks <= 10% on host.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fit_host import _inputs, _times_ms, quiet_p50  # noqa: E402

from edgebert.model.loaded import load  # noqa: E402
from edgebert.model.slicing import slice_model  # noqa: E402
from edgebert.model.spec import SubnetSpec  # noqa: E402
from edgebert.search.evolution import EvolutionConfig, Limits  # noqa: E402
from edgebert.search.pick import search_target  # noqa: E402
from edgebert.search.run import Efficiency, search_model  # noqa: E402
from edgebert.search.space import SearchSpace  # noqa: E402
from edgebert.select.costs import costs  # noqa: E402
from edgebert.select.latency import Measurement, fit, nnls  # noqa: E402
from edgebert.select.profiles import load_profile  # noqa: E402

SEQ = 128


def budgets_for(space: SearchSpace, eff: Efficiency, memory_mb: float, n: int) -> list[float]:
    uppers = []
    for s in space.grid():
        lat, mem = eff(s)
        if lat is not None and (mem is None or mem.upper <= memory_mb):
            uppers.append(lat.upper)
    return [float(f"{x:.3g}") for x in np.geomspace(0.8 * min(uppers), max(uppers), n)]


def run_device(
    loaded, device: str, n_budgets: int, cfg: EvolutionConfig, sample: int, measure_runs: int = 0
) -> list[dict]:
    profile = load_profile(device)
    fmt, precision = search_target(profile, None, None)
    threads = profile.default_threads
    eff = Efficiency(profile, loaded.full.config, fmt, precision, SEQ, threads)
    budgets = budgets_for(SearchSpace.for_config(loaded.full.config), eff, profile.model_memory_mb, n_budgets)
    t0 = time.perf_counter()
    result, est, _ = search_model(
        loaded,
        lambda config: eff,
        [Limits(b, profile.model_memory_mb) for b in budgets],
        cfg=cfg,
        n_sample=sample,
    )
    seconds = time.perf_counter() - t0
    p = est.predictor
    print(
        f"\n{device}: {fmt}/{precision}, {threads} thread(s), seq {SEQ}; search {seconds:.0f} s "
        f"(rewiring and measuring included; {len(est.measured)} configurations measured, predictor Spearman "
        f"{p.held_out_spearman:.3f} on {p.n_held_out} held out, MAE {p.held_out_mae:.3f})"
    )
    print(
        f"{'budget ms':>10}{'grid q':>9}{'search q':>10}{'gain pt':>9}{'grid p90 ms':>13}{'search p90 ms':>15}  search spec / grid spec"
    )
    rows = []
    for b in result.budgets:
        g, c = b.grid, b.chosen
        gain = None if g is None or c is None else 100 * (c.quality - g.quality)
        print(
            f"{b.limits.latency_ms:>10g}{_f(g and g.quality, '.4f'):>9}{_f(c and c.quality, '.4f'):>10}"
            f"{_f(gain, '+.1f'):>9}{_f(g and g.latency.upper, '.2f'):>13}{_f(c and c.latency.upper, '.2f'):>15}"
            f"  {c.spec.key if c else b.why} / {g.spec.key if g else '-'}"
        )
        rows.append({"device": device, "budget": b.limits.latency_ms, "gain": gain, "seconds": seconds})
    if measure_runs and profile.reach == "local":
        measured = measure_exports(loaded, result, fmt, precision, threads, measure_runs)
        for r in rows:
            r["measured_p50"] = measured.get(r["budget"])
    return rows


def _f(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def measure_exports(loaded, result, fmt: str, precision: str, threads: int, runs: int) -> dict[float, float]:
    """Export each budget's searched point as `export --search` does (slice, convert, parity check) and time it
    with edgebert's local runner (the bench script in a fresh process, as `export` measures): measured p50 vs
    the budget and vs the prediction the search judged it by."""
    from edgebert.bench import MeasureSettings, local_measurer
    from edgebert.export.pipeline import ExportConfig, export

    print(
        f"\nsearched points exported ({fmt}/{precision}, seq {SEQ}) and measured here by edgebert's local runner "
        f"({runs} runs, {threads} thread(s), load average {os.getloadavg()[0]:.1f}):"
    )
    print(
        f"{'budget ms':>10}{'pred ms':>9}{'p90 bound':>10}{'measured p50':>13}{'err %':>7}{'IQR ms':>8}  within budget"
    )
    errors, measured = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, b in enumerate(result.budgets):
            c = b.chosen
            if c is None:
                continue
            cfg = ExportConfig(
                out=f"{tmp}/{i}",
                model=str(loaded.model_dir),
                spec=c.spec,
                formats=(fmt,),
                precision=precision,
                seq_len=SEQ,
                threads=threads,
            )
            m = export(cfg, progress=False, loaded=loaded, measure=local_measurer(threads, SEQ, MeasureSettings(runs)))
            (art,) = m["artifacts"]
            got = art["latency"]["measured"][0]
            p50, pred = got["p50_ms"], c.latency.value
            measured[b.limits.latency_ms] = p50
            errors.append(abs(pred - p50) / p50)
            print(
                f"{b.limits.latency_ms:>10g}{pred:>9.2f}{c.latency.upper:>10.2f}{p50:>13.2f}"
                f"{100 * (pred - p50) / p50:>+7.1f}{_f(got.get('iqr_ms'), '.2f'):>8}  "
                f"{'yes' if p50 <= b.limits.latency_ms else 'NO'} (parity {'passed' if art['parity']['passed'] else 'FAILED'})"
            )
    if errors:
        print(f"  median |error| of the predictions: {100 * np.median(errors):.1f}% over {len(errors)} exports")
    return measured


def latency_check(loaded, n: int, seed: int = 0, fmt: str = "onnx", workdir: str | None = None) -> dict:
    """Time n random per-layer configurations (+ the grid) in `fmt` fp32 here; compare with host's predictions."""
    import torch

    from edgebert.artifact import ArtifactConfig
    from edgebert.registry import CONVERTERS

    torch.set_num_threads(1)
    profile = load_profile("host")
    model, _ = loaded.for_slicing(SubnetSpec(0.5, 1.0), True, False)
    space = SearchSpace.for_config(model.config)
    rng = random.Random(seed)
    specs = [("per-layer", space.spec(space.sample(rng))) for _ in range(n)] + [("grid", s) for s in space.grid()]
    eff = Efficiency(profile, model.config, fmt, "fp32", SEQ, 1)
    conv = CONVERTERS.get(fmt)()
    runs, rounds = {}, 3
    with tempfile.TemporaryDirectory() as tmp:
        # --workdir keeps the files: a second run times without converting (a short quiet window)
        paths = [Path(workdir or tmp) / f"{fmt}-{SEQ}-{spec.key}" / f"model{conv.suffix}" for _, spec in specs]
        for path, (_, spec) in zip(paths, specs):
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                conv.convert(slice_model(model, spec).eval(), ArtifactConfig(fmt, "fp32", SEQ), path)
        print(f"\n{len(specs)} {fmt} files converted; timing (load average {os.getloadavg()[0]:.1f})", flush=True)
        for _ in range(rounds):
            for i in range(len(specs)):
                run = conv.load(paths[i], threads=1)
                runs.setdefault(i, []).append(_times_ms(run, _inputs(SEQ), min_s=1.0))
    meas = {i: quiet_p50(runs[i]) for i in range(len(specs))}
    cs = {i: costs(model.config, SEQ, spec) for i, (_, spec) in enumerate(specs)}
    # Refit here on the grid points alone, then predict the per-layer ones, which the fit never saw: their error
    # is the held-out error on non-uniform sub-networks. Two refits: all four coefficients (as `edgebert
    # calibrate` does; at one length the attention and linear MACs of grid points are proportional, so the fit
    # cannot split them), and the shipped coefficients rescaled (a·compute + b·overhead, the quick calibration's
    # shape, calibrate/quick.py), which keeps the shipped split.
    grid = [i for i, (kind, _) in enumerate(specs) if kind == "grid"]
    here = fit([Measurement(cs[i], fmt, "fp32", 1, meas[i]) for i in grid])
    e = profile.latency_model.entry(fmt, "fp32", 1)[0]
    parts = {i: (e.compute_ms(cs[i]), e.fixed_ms + e.per_layer_ms * cs[i].layers) for i in cs}
    w = np.array([1 / meas[i] for i in grid])  # relative error, as the fits weigh it
    a, b = nnls(np.array([parts[i] for i in grid]) * w[:, None], np.array([meas[i] for i in grid]) * w)
    print(
        f"\nlatency model on this machine ({fmt}/fp32, 1 thread, seq {SEQ}; quietest of {rounds} rounds' medians, "
        f"load average {os.getloadavg()[0]:.1f}): the host profile as shipped, refitted here on the {len(grid)} "
        f"grid points only, and the shipped one rescaled on them (compute x{a:.3f}, overhead x{b:.3f})"
    )
    print(
        f"{'kind':<10}{'measured ms':>12}{'shipped ms':>11}{'err %':>7}{'refit ms':>9}{'err %':>7}{'rescaled':>9}{'err %':>7}  spec"
    )
    errors = {"per-layer": ([], [], []), "grid": ([], [], [])}
    for i, (kind, spec) in enumerate(specs):
        preds = (
            eff(spec)[0].value,
            here.predict_latency(cs[i], fmt, "fp32", 1).value,
            a * parts[i][0] + b * parts[i][1],
        )
        line = f"{kind:<10}{meas[i]:>12.2f}"
        for k, (p, width) in enumerate(zip(preds, (11, 9, 9))):
            errors[kind][k].append(abs(p - meas[i]) / meas[i])
            line += f"{p:>{width}.2f}{100 * (p - meas[i]) / meas[i]:>+7.1f}"
        print(f"{line}  {spec.key}")
    summary = {}
    for kind, errs in errors.items():
        what = "held out from the refits" if kind == "per-layer" else "the refits' own points"
        cells = [
            f"{name} {100 * np.median(x):.1f}% (p90 {100 * np.percentile(x, 90):.1f}%)"
            for name, x in zip(("shipped", "refit", "rescaled"), errs)
        ]
        print(f"{kind} ({what}), median |error| over {len(errs[0])}: " + ", ".join(cells))
        summary[kind] = [float(np.median(x)) for x in errs]
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="host,pixel6")
    ap.add_argument("--budgets", type=int, default=5)
    ap.add_argument("--sample", type=int, default=48)
    ap.add_argument("--population", type=int, default=40)
    ap.add_argument("--generations", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latency-check", type=int, default=0, metavar="N")
    ap.add_argument("--check-format", default="onnx", help="format the latency check times (default: host's search)")
    ap.add_argument("--workdir", default=None, help="keep the latency check's converted files here and reuse them")
    ap.add_argument(
        "--measure-exports",
        type=int,
        default=0,
        metavar="RUNS",
        help="export each searched point of devices edgebert runs on (host) and time it here with RUNS runs",
    )
    ap.add_argument("--model", default=None, help="model folder (default: packaged MiniLM)")
    a = ap.parse_args()
    cfg = EvolutionConfig(population=a.population, generations=a.generations, seed=a.seed)
    print(f"benchmarks/search.py: {' '.join(sys.argv[1:]) or '(defaults)'}; load average {os.getloadavg()[0]:.1f}")
    loaded = load(a.model)
    global SEQ
    SEQ = min(SEQ, loaded.full.config.max_position_embeddings)  # a tiny test model takes fewer tokens
    rows = []
    for device in [d.strip() for d in a.devices.split(",") if d.strip() not in ("", "none")]:
        rows += run_device(loaded, device, a.budgets, cfg, a.sample, a.measure_exports)
    judged = [r for r in rows if r["gain"] is not None]
    never_below = all(r["gain"] >= -1e-9 for r in judged)
    if rows:
        print("\ntargets:")
    for device in dict.fromkeys(r["device"] for r in rows):
        mine = [r for r in judged if r["device"] == device]
        better = sum(r["gain"] >= 1.0 for r in mine)
        secs = next(r["seconds"] for r in rows if r["device"] == device)
        print(
            f"  {device}: >= grid at {sum(r['gain'] >= -1e-9 for r in mine)}/{len(mine)} budgets with a grid point; "
            f">= 1 pt better at {better} (target 2); search {secs:.0f} s (target <= 120 s)"
        )
        timed = [r for r in rows if r["device"] == device and r.get("measured_p50") is not None]
        if timed:
            within = sum(r["measured_p50"] <= r["budget"] for r in timed)
            print(f"  {device}: measured p50 of the searched exports within the budget at {within}/{len(timed)}")
    if rows:
        print(f"  never below the grid: {'yes' if never_below else 'NO'}")
    if a.latency_check:
        summary = latency_check(loaded, a.latency_check, a.seed, a.check_format, a.workdir)
        med = summary["per-layer"]
        print(
            f"  latency model on {a.latency_check} non-uniform sub-networks, median |error| (target <= 10%): "
            f"refitted on the grid {100 * med[1]:.1f}%, shipped rescaled on the grid {100 * med[2]:.1f}%, "
            f"shipped as is {100 * med[0]:.1f}%"
        )


if __name__ == "__main__":
    main()
