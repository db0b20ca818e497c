"""Add ExecuTorch latency and memory entries to every device profile, derived from its LiteRT ones (issue 16).

    python benchmarks/executorch_profiles.py --fp32-ratio R32 --int8-ratio R8 --evidence "TEXT"

ExecuTorch's XNNPACK delegate runs the same XNNPACK kernels LiteRT does, so each profile's `tflite`
entry (same precision and threads) is the starting point, scaled by the ExecuTorch / LiteRT p50 ratio
measured on host with benchmarks/executorch_bench.py (`--evidence` names that run): rates divided by it,
per-layer and fixed overheads multiplied by it. The stated errors widen by 0.15 (median) and 0.25 (p90)
for the ratio's own uncertainty: two sub-networks, one machine. Memory: the profile's ONNX Runtime
entries (weights and tables fully resident), not measured for ExecuTorch. Profiles that already have
executorch entries are left alone. Text is inserted before `  memory:`, so comments and order stay.
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgebert.select.profiles import load_profile  # noqa: E402

RATIO_KEY = {"fp32": "fp32_ratio", "int8": "int8_ratio"}


def _num(x: float) -> str:
    return ".inf" if math.isinf(x) else f"{x:.4g}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def latency_entries(profile, ratios: dict, evidence: str, today: str) -> str:
    out = []
    for e in profile.latency_model.entries:
        if e.format != "tflite" or e.precision not in ratios:
            continue
        r = ratios[e.precision]
        why = (
            f"the {profile.name} tflite/{e.precision} entry x {r:.3g}, the ExecuTorch/LiteRT p50 ratio measured on host "
            f"({evidence}); XNNPACK kernels in both, LayerNorm in ExecuTorch's portable kernels"
        )
        out.append(
            f"  - format: executorch\n    precision: {e.precision}\n    threads: {e.threads}\n"
            f"    linear_gmacs_per_s: {_num(e.linear_gmacs_per_s / r)}\n"
            f"    attention_gmacs_per_s: {_num(e.attention_gmacs_per_s / r)}\n"
            f"    per_layer_ms: {_num(e.per_layer_ms * r)}\n    fixed_ms: {_num(e.fixed_ms * r)}\n"
            f"    expected_error: {_num(e.expected_error + 0.15)}\n    error_p90: {_num(e.error_p90 + 0.25)}\n"
            f"    provenance:\n      source: {_quote('estimate: ' + why)}\n      date: '{today}'\n"
            + "".join(
                f"      {k}: {_quote(f'tflite/{e.precision} {k} {op} {r:.3g} (see source)')}\n"
                for k, op in (
                    ("linear_gmacs_per_s", "/"),
                    ("attention_gmacs_per_s", "/"),
                    ("per_layer_ms", "x"),
                    ("fixed_ms", "x"),
                )
            )
        )
    return "".join(out)


def memory_entries(profile, today: str) -> str:
    out = []
    for m in profile.latency_model.memory:
        if m.format != "onnx" or m.precision not in ("fp32", "int8", ""):
            continue
        out.append(
            f"  - format: executorch\n    precision: {_quote(m.precision)}\n"
            f"    weight_factor: {_num(m.weight_factor)}\n    embedding_factor: {_num(m.embedding_factor)}\n"
            f"    activation_factor: {_num(m.activation_factor)}\n    overhead_mb: {_num(m.overhead_mb)}\n"
            f"    expected_error: {_num(m.expected_error + 0.15)}\n    error_p90: {_num(m.error_p90 + 0.25)}\n"
            f"    provenance:\n      source: 'estimate: the {profile.name} onnx/{m.precision or 'any'} memory entry "
            f"(weights and tables fully resident), not measured for ExecuTorch'\n      date: '{today}'\n"
        )
    return "".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fp32-ratio", type=float, required=True)
    ap.add_argument("--int8-ratio", type=float, required=True)
    ap.add_argument("--evidence", required=True, help="which measurement the ratios come from")
    ap.add_argument("--profiles", type=Path, default=ROOT / "device_profiles", help="folder of profiles to extend")
    args = ap.parse_args(argv)
    ratios = {"fp32": args.fp32_ratio, "int8": args.int8_ratio}
    today = date.today().isoformat()
    for path in sorted(args.profiles.glob("*.yaml")):
        text = path.read_text()
        profile = load_profile(str(path))
        if any(e.format == "executorch" for e in profile.latency_model.entries):
            print(f"{path.name}: has executorch entries, left alone")
            continue
        lat, mem = latency_entries(profile, ratios, args.evidence, today), memory_entries(profile, today)
        head, sep, tail = text.partition("\n  memory:\n")
        if not sep or not lat:
            print(f"{path.name}: no tflite entries or no memory list, left alone")
            continue
        tail_lines = tail.splitlines(keepends=True)
        end = next((i for i, ln in enumerate(tail_lines) if ln.strip() and not ln.startswith("  ")), len(tail_lines))
        path.write_text(
            head + "\n" + lat.rstrip("\n") + sep + "".join(tail_lines[:end]) + mem + "".join(tail_lines[end:])
        )
        load_profile(str(path))  # still valid
        print(f"{path.name}: added {lat.count('format:')} latency and {mem.count('format:')} memory entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
