"""Does the SSH runner add bias or much overhead? Same artifact, same threads: local vs ssh on loopback.

    python benchmarks/runner_bench.py                       # tflite + onnx, 1 thread, 3 rounds
    python benchmarks/runner_bench.py --threads 1 2 --runs 300 --rounds 5

Starts its own sshd on 127.0.0.1 (tests/runners/sshd_server.py; needs openssh-server and root
for /run/sshd), builds a BERT artifact (4 layers, hidden 256, 4 heads, FFN 1024, sequence 128:
the DESIGN.md reference shape) straight with litert-torch / torch.onnx, then alternates local
and ssh measurements so that load from other users of the machine hits both alike. Prints the
median over rounds of each p50, their ratio (target: within 10%), and the overhead of a bench
call beyond its timed runs (target: <= 5 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "runners"))

SEQ = 128


def build_artifacts(folder: Path, formats: list[str]) -> dict[str, Path]:
    import torch

    from edgebert.model.bert import Bert, BertConfig

    torch.manual_seed(0)
    model = Bert(
        BertConfig(
            vocab_size=30522, hidden_size=256, heads=(4,) * 4, ffn=(1024,) * 4, head_dim=64, max_position_embeddings=512
        )
    ).eval()
    ids = torch.randint(1, 30522, (1, SEQ))
    inputs = (ids, torch.ones(1, SEQ, dtype=torch.long), torch.zeros(1, SEQ, dtype=torch.long))
    out = {}
    if "tflite" in formats:
        import litert_torch

        out["tflite"] = folder / "model.tflite"
        litert_torch.convert(model, tuple(t.int() for t in inputs)).export(str(out["tflite"]))
    if "onnx" in formats:
        out["onnx"] = folder / "model.onnx"
        torch.onnx.export(
            model,
            inputs,
            str(out["onnx"]),
            dynamo=True,
            external_data=False,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--formats", nargs="+", default=["tflite", "onnx"], choices=["tflite", "onnx"])
    p.add_argument("--threads", nargs="+", type=int, default=[1])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    from sshd_server import LoopbackSshd, unavailable_reason

    from edgebert.runners import BenchConfig, RunnerOptions, run_bench

    reason = unavailable_reason()
    if reason:
        print(f"cannot start a loopback sshd: {reason}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        tmp = Path(tmp)
        artifacts = build_artifacts(tmp, args.formats)
        with LoopbackSshd(tmp / "sshd") as sshd:
            options = RunnerOptions(ssh_config=str(sshd.client_config), remote_python=sys.executable)
            for fmt, artifact in artifacts.items():
                for threads in args.threads:
                    config = BenchConfig(threads=threads, runs=args.runs, warmup=args.warmup, seq_len=SEQ)
                    got = {"local": [], "ssh": []}
                    for _ in range(args.rounds):  # interleaved: machine load drifts over minutes
                        got["local"].append(run_bench("local", artifact, config))
                        got["ssh"].append(run_bench(sshd.uri, artifact, config, options))
                    med = {k: statistics.median(r.p50_ms for r in v) for k, v in got.items()}
                    over = {k: statistics.median(r.overhead_s for r in v) for k, v in got.items()}
                    rows.append(
                        (
                            fmt,
                            threads,
                            med["local"],
                            med["ssh"],
                            med["ssh"] / med["local"],
                            over["local"],
                            over["ssh"],
                            [round(r.p50_ms, 3) for r in got["local"]],
                            [round(r.p50_ms, 3) for r in got["ssh"]],
                        )
                    )
    print(
        f"\nBERT 4x256 (FFN 1024), batch 1, seq {SEQ}; {args.runs} runs after {args.warmup} warm-up; "
        f"median of {args.rounds} interleaved rounds; device: {got['local'][0].device}"
    )
    print(
        f"{'format':<8}{'threads':>8}{'local p50 ms':>14}{'ssh p50 ms':>12}{'ssh/local':>11}"
        f"{'local overhead s':>18}{'ssh overhead s':>16}"
    )
    for fmt, th, lo, ss, ratio, olo, oss, _, _ in rows:
        print(f"{fmt:<8}{th:>8}{lo:>14.3f}{ss:>12.3f}{ratio:>11.3f}{olo:>18.2f}{oss:>16.2f}")
    print("\nper-round p50 ms (local | ssh):")
    for fmt, th, *_, rl, rs in rows:
        print(f"  {fmt} x{th}: {rl} | {rs}")
    ok = all(abs(r[4] - 1) <= 0.10 and r[6] <= 5 for r in rows)
    print(f"\ntargets (|ratio - 1| <= 10%, ssh overhead <= 5 s): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
