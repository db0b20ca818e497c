"""Time one model artifact and print one JSON line. Self-contained on purpose.

This file is copied as-is to boards (Raspberry Pi, any Linux over SSH) and run with their
python3, so it imports nothing from edgebert: only the standard library, numpy and the one
runtime the artifact needs (ai-edge-litert for .tflite, onnxruntime for .onnx, torch for .pt, executorch
for .pte).

    python3 bench_script.py model.tflite --threads 4 --warmup 5 --runs 50 [--seq-len 128] [--sustained 60]

Inputs are batch 1: random token ids, an all-ones attention mask, zero token types. Each
run is timed with perf_counter around the inference call alone; warm-up runs are never in the
statistics. The board's thermal zones (Linux /sys/class/thermal) are read just before the
warm-up and just after the last timed run.
"""

import argparse
import json
import math
import os
import platform
import signal
import sys
import time

EXIT_MISSING_RUNTIME = 42  # the runner turns this into "pip install ..." advice
EXIT_LOAD_FAILED = 43
EXIT_TIMEOUT = 44
EXIT_USAGE = 2

RUNTIMES = {  # suffix -> (module to import, distribution name, pip line)
    ".tflite": ("ai_edge_litert.interpreter", "ai-edge-litert", "ai-edge-litert==2.3.0"),
    ".onnx": ("onnxruntime", "onnxruntime", "onnxruntime==1.31.1"),
    ".pt": ("torch", "torch", "torch"),
    # executorch's declared dependencies would upgrade packages beside torch: install it without them
    ".pte": ("executorch.runtime", "executorch", "--no-deps executorch==1.5.1 ruamel.yaml==0.19.1"),
}


def emit(payload, code=0):
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def fail(kind, message, code, **extra):
    emit(dict(ok=False, error=kind, message=message, **extra), code)


def import_runtime(suffix):
    """Import numpy and the artifact's runtime, or exit naming exactly what to pip install."""
    import importlib

    module, dist, pip_spec = RUNTIMES[suffix]
    missing, loaded = [], {}
    for name, spec in (("numpy", "numpy"), (module, pip_spec)):
        try:
            loaded[name] = importlib.import_module(name)
        except ImportError:
            missing.append(spec)
    if missing:
        line = "pip install " + " ".join(missing)
        fail(
            "missing_runtime",
            "this Python (%s) lacks %s; run on the target:  %s" % (sys.executable, ", ".join(missing), line),
            EXIT_MISSING_RUNTIME,
            pip=line,
            python=sys.executable,
        )
    return loaded["numpy"], loaded[module], dist


def dist_version(dist, mod):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - a version string is nice to have, never worth failing for
        return getattr(mod, "__version__", "unknown")


def device_model():
    """The board's own name where Linux exposes one, else the CPU model."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            with open(path, "rb") as f:
                text = f.read().replace(b"\x00", b"").decode(errors="replace").strip()
            if text:
                return text
        except OSError:
            pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def input_role(name, position):
    """Which BERT input a tensor is: by name when it says, else by the canonical order."""
    n = name.lower()
    if "mask" in n:
        return "mask"
    if "type" in n or "segment" in n:
        return "types"
    if "ids" in n or ("input" in n and "args" not in n):
        return "ids"
    return ("ids", "mask", "types")[position] if position < 3 else "types"


def make_input(np, role, shape, dtype, vocab, rng):
    if role == "mask":
        return np.ones(shape, dtype=dtype)
    if role == "types":
        return np.zeros(shape, dtype=dtype)
    return rng.integers(1, vocab, size=shape).astype(dtype)


def load_tflite_signature(it, np, args, rng):
    """One signature of a multi-signature file (a sequence-length bucket), run through its SignatureRunner.

    Each timed call also sets the three small inputs and copies the output out (LiteRT's public API has no
    bare invoke of a signature): tens of microseconds, the same for every bucket of the file."""
    runner = it.get_signature_runner(args.signature)
    details = runner.get_input_details()
    feeds, seq = {}, None
    for pos, (name, d) in enumerate(sorted(details.items(), key=lambda kv: kv[1]["index"])):
        shape = [int(x) for x in d["shape"]]
        seq = shape[1] if len(shape) > 1 else seq
        feeds[name] = make_input(np, input_role(name, pos), shape, d["dtype"], args.vocab_size, rng)
    return (lambda: runner(**feeds)), seq


def load_tflite(rt, np, path, args, rng):
    it = rt.Interpreter(model_path=path, num_threads=args.threads)
    if args.signature:
        return load_tflite_signature(it, np, args, rng)
    it.allocate_tensors()
    details = sorted(it.get_input_details(), key=lambda d: d["index"])
    seq = None
    for pos, d in enumerate(details):
        shape = [int(x) for x in d["shape"]]  # static: the file fixes batch and sequence length
        seq = shape[1] if len(shape) > 1 else seq
        it.set_tensor(d["index"], make_input(np, input_role(d["name"], pos), shape, d["dtype"], args.vocab_size, rng))
    return it.invoke, seq


def load_onnx(ort, np, path, args, rng):
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = {}
    for pos, i in enumerate(sess.get_inputs()):
        shape = [
            1 if k == 0 and not isinstance(d, int) else (d if isinstance(d, int) else args.seq_len)
            for k, d in enumerate(i.shape)
        ]
        # float inputs: an early-exit segment's hidden state (its values do not change the time)
        dtype = np.float32 if "float" in i.type else (np.int32 if "int32" in i.type else np.int64)
        feeds[i.name] = make_input(np, input_role(i.name, pos), shape, dtype, args.vocab_size, rng)
    seq = next((v.shape[1] for v in feeds.values() if v.ndim > 1), None)
    return (lambda: sess.run(None, feeds)), seq


def load_torchscript(torch, np, path, args, rng):
    torch.set_num_threads(args.threads)
    # An early-exit segment file says its inputs (a float hidden state among them) in an extra file.
    extra = {"edgebert_inputs.json": ""}
    model = torch.jit.load(path, map_location="cpu", _extra_files=extra).eval()
    n_inputs = max(1, len(model.forward.schema.arguments) - 1)  # minus `self`
    names = [a.name for a in model.forward.schema.arguments[1:]]
    specs = json.loads(extra["edgebert_inputs.json"] or "null") or [
        dict(name=names[k] if k < len(names) else "input_%d" % k, dtype="int64", shape=["batch", "sequence"])
        for k in range(n_inputs)
    ]
    sizes = dict(batch=1, sequence=args.seq_len)
    tensors = [
        torch.from_numpy(
            make_input(
                np,
                input_role(d["name"], k),
                tuple(sizes.get(x, x) for x in d["shape"]),
                np.float32 if d["dtype"] == "float32" else np.int64,
                args.vocab_size,
                rng,
            )
        )
        for k, d in enumerate(specs)
    ]

    def call():
        with torch.inference_mode():
            model(*tensors)

    return call, args.seq_len


def load_executorch(rt, np, path, args, rng):
    """ExecuTorch's Python runtime; the .pte fixes batch 1 and bounds the sequence length (its buffers are
    planned for the bound), so --seq-len is capped there, as ExecuTorch's executor_runner runs it."""
    import torch  # the pybindings take and return torch tensors

    try:  # XNNPACK's thread pool is process-wide; older builds lack the hook (then: all cores)
        from executorch.extension.pybindings import portable_lib

        if portable_lib._threadpool_get_thread_count() != args.threads:
            portable_lib._unsafe_reset_threadpool(args.threads)  # before anything runs: see converters/executorch.py
    except (ImportError, AttributeError):
        pass
    program = rt.Runtime.get().load_program(path)  # kept alive by the closure: the method points into it
    method = program.load_method("forward")
    meta = method.metadata
    bound = [int(x) for x in meta.input_tensor_meta(0).sizes()]
    seq = min(args.seq_len, bound[1]) if len(bound) > 1 else None
    shape = (1, seq) if seq else tuple(bound)
    roles = ("ids", "mask", "types")
    tensors = [
        torch.from_numpy(make_input(np, roles[min(k, 2)], shape, np.int64, args.vocab_size, rng))
        for k in range(meta.num_inputs())
    ]
    return (lambda: (program, method.execute(tensors))), seq


def median_ci95(values):
    """95 % confidence interval of the median from order statistics (distribution-free).

    With B ~ Binomial(n, 1/2) the number of runs below the true median, [x(l), x(n+1-l)] (1-based,
    sorted) covers it with probability 1 - 2 P(B <= l-1); l is the largest index keeping that
    >= 0.95. Exact integer sums up to n = 2000, the normal approximation beyond. None below n = 6,
    where even [min, max] covers less than 95 %.
    """
    x = sorted(values)
    n = len(x)
    if n < 6:
        return None
    if n <= 2000:
        total, cum, k = 2**n, 0, 0
        while 40 * (cum + math.comb(n, k)) <= total:  # P(B <= k) <= 0.025
            cum += math.comb(n, k)
            k += 1
        # k terms fit: P(B <= k-1) <= 0.025, so x(k) (1-based) is the lower bound
    else:
        k = int(math.floor(n / 2.0 - 1.959964 * math.sqrt(n) / 2.0))
    return [x[k - 1], x[n - k]]


def drift_pct(values):
    """How much slower the last third of the runs was than the first third, in % of the first's median."""
    t = len(values) // 3
    if t < 1:
        return None
    first, last = _median(values[:t]), _median(values[-t:])
    return (last / first - 1.0) * 100.0 if first > 0 else None


def _median(values):
    x = sorted(values)
    n = len(x)
    return x[n // 2] if n % 2 else (x[n // 2 - 1] + x[n // 2]) / 2.0


def stats(np, ms):
    a = np.asarray(ms, dtype=np.float64)
    q1, q3 = np.percentile(a, [25, 75])
    return dict(
        p50_ms=float(np.percentile(a, 50)),
        p90_ms=float(np.percentile(a, 90)),
        p95_ms=float(np.percentile(a, 95)),
        mean_ms=float(a.mean()),
        std_ms=float(a.std()),
        min_ms=float(a.min()),
        max_ms=float(a.max()),
        iqr_ms=float(q3 - q1),
        p50_ci95_ms=median_ci95([float(v) for v in ms]),
        drift_pct=drift_pct(ms),
    )


def read_thermal(root="/sys/class/thermal"):
    """{"source", "max_c", "zones": {name: degrees C}} from Linux thermal zones; None when there are none.

    A zone's `temp` is in millidegrees Celsius; zones whose driver refuses the read (some report
    EINVAL or ENODATA while a sensor sleeps) are left out rather than guessed.
    """
    zones = {}
    try:
        names = sorted(n for n in os.listdir(root) if n.startswith("thermal_zone"))
    except OSError:
        return None
    for zone in names:
        try:
            with open(os.path.join(root, zone, "temp")) as f:
                milli = int(f.read().strip())
        except (OSError, ValueError):
            continue
        try:
            with open(os.path.join(root, zone, "type")) as f:
                kind = f.read().strip() or zone
        except OSError:
            kind = zone
        key = kind if kind not in zones else "%s (%s)" % (kind, zone)
        zones[key] = milli / 1000.0
    if not zones:
        return None
    return dict(source=root, max_c=max(zones.values()), zones=zones)


def peak_rss_mb():
    # Linux: VmHWM is this process image's own peak. getrusage's ru_maxrss is not: Linux carries
    # it across fork+exec, so a child of a large parent (edgebert with torch loaded) would
    # report the parent's peak.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0  # macOS reports bytes


class _Deadline(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Deadline()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifact")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--vocab-size", type=int, default=100)
    p.add_argument("--sustained", type=float, default=0, help="time runs for at least this many seconds")
    p.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
    p.add_argument("--signature", help=".tflite with several signatures (sequence-length buckets): the one to time")
    args = p.parse_args(argv)

    suffix = os.path.splitext(args.artifact)[1].lower()
    if suffix not in RUNTIMES:
        fail("usage", "unknown artifact type %r; expected one of %s" % (suffix, ", ".join(RUNTIMES)), EXIT_USAGE)
    if args.timeout > 0 and hasattr(signal, "setitimer"):
        # Bounds the run on the board itself, even when the connection that started it is gone.
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
    try:
        np, rt, dist = import_runtime(suffix)
        loader = {".tflite": load_tflite, ".onnx": load_onnx, ".pt": load_torchscript, ".pte": load_executorch}[suffix]
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        try:
            run, seq = loader(rt, np, args.artifact, args, rng)
        except _Deadline:
            raise
        except Exception as exc:  # noqa: BLE001 - reported as JSON, the runner names the error
            fail(
                "load_failed",
                "%s could not load %s: %s: %s" % (dist, args.artifact, type(exc).__name__, exc),
                EXIT_LOAD_FAILED,
            )
        init_ms = (time.perf_counter() - t0) * 1e3
        thermal_before = read_thermal()
        timed = time.perf_counter()
        first_ms = None
        for k in range(args.warmup):
            s = time.perf_counter()
            run()
            first_ms = (time.perf_counter() - s) * 1e3 if k == 0 else first_ms
        ms = []
        # As benchmark_model does: at least --runs runs and at least --sustained seconds.
        phase = time.perf_counter()
        while len(ms) < args.runs or time.perf_counter() - phase < args.sustained:
            s = time.perf_counter()
            run()
            ms.append((time.perf_counter() - s) * 1e3)
        timed_s = time.perf_counter() - timed
        thermal_after = read_thermal()
    except _Deadline:
        fail("timeout", "gave up after %g s (--timeout)" % args.timeout, EXIT_TIMEOUT)
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)
    emit(
        dict(
            ok=True,
            runtime=dist,
            runtime_version=dist_version(dist, rt),
            threads=args.threads,
            warmup=args.warmup,
            runs=len(ms),
            sustained_s=args.sustained or None,
            thermal_before=thermal_before,
            thermal_after=thermal_after,
            seq_len=seq,
            init_ms=init_ms,
            first_inference_ms=first_ms,
            peak_rss_mb=peak_rss_mb(),
            timed_s=timed_s,
            device=device_model(),
            device_info=dict(
                arch=platform.machine(),
                cpus=os.cpu_count(),
                python=platform.python_version(),
                platform=platform.platform(),
            ),
            **stats(np, ms),
        )
    )


if __name__ == "__main__":
    main()
