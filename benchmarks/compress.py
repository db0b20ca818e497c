"""Issue 15's benchmark: LadaBERT compression of a dynamic MiniLM on Rotten Tomatoes.

For embedding rank {full, 256, 128, 64} x structured prune {0, 0.4} x width {1, 0.5} (depth 1): the int8
TFLite file (exported and parity-checked by edgebert's export), its measured peak RSS and p50 latency on
this machine, and accuracy (PyTorch fp32 on the whole dev split from quality.json, and the int8 TFLite file
on the first --tflite-n dev examples). Structured pruning runs in --prune-steps distilled steps (compress's
default, 3; --compress-steps is the total over them). Steps are small so the whole run fits a 2-core CPU in
~25 min: the figures show what short distillation reaches, not what a full run would.

    python benchmarks/compress.py --work /tmp/bench15 --teacher-steps 150 --dyna-steps 40 --compress-steps 40
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from edgebert.commands.compress import run_compress
from edgebert.errors import ParityError
from edgebert.export.pipeline import ExportConfig, export
from edgebert.model.spec import SubnetSpec
from edgebert.train.config import TrainConfig
from edgebert.train.recipe import train

RANKS = (None, 128, 64, 256)  # in this order, so a cut-short run has the most telling rows first
PRUNES = (0.0, 0.4)
WIDTHS = (1.0, 0.5)

# Runs in a fresh process so its peak RSS is the runtime's and the file's, not this script's torch.
_MEASURE = r"""
import json, sys, time
def hwm_mb():
    # VmHWM, not ru_maxrss: ru_maxrss keeps the forking parent's peak across exec (here torch's, ~1.1 GB)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, seq, n_runs, ids_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
it = Interpreter(model_path=path, num_threads=2)
it.allocate_tensors()
run = it.get_signature_runner()
names = {d: d for d in run.get_input_details()}
feeds = json.load(open(ids_file))
def one(row):
    ids = np.array([row["input_ids"]], dtype=np.int32)
    args = {"input_ids": ids, "attention_mask": np.array([row["attention_mask"]], dtype=np.int32),
            "token_type_ids": np.zeros_like(ids)}
    return list(run(**{k: args[k] for k in names}).values())[0]
correct = sum(int(np.argmax(one(r)) == r["label"]) for r in feeds)
times = []
for _ in range(n_runs):
    t0 = time.perf_counter(); one(feeds[0]); times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"accuracy": correct / len(feeds), "n": len(feeds), "p50_ms": float(np.median(times)),
                  "runs": n_runs, "peak_rss_mb": hwm_mb()}))
"""


def _dev_feeds(model_dir: Path, seq_len: int, n: int, path: Path) -> Path:
    from edgebert.model.bert import load_model
    from edgebert.model.tokenizer import load_tokenizer
    from edgebert.train.data import load_data, to_batch

    labels = load_model(model_dir).config.labels
    dev = load_data("rotten-tomatoes", split="dev", labelled=True)
    tok = load_tokenizer(model_dir)
    rows = []
    for e in dev.examples[:n]:
        b = to_batch(tok, [e], seq_len, labels)
        pad = seq_len - b["input_ids"].shape[1]
        rows.append(
            {
                "input_ids": b["input_ids"][0].tolist() + [0] * pad,
                "attention_mask": b["attention_mask"][0].tolist() + [0] * pad,
                "label": int(b["labels"][0]),
            }
        )
    path.write_text(json.dumps(rows))
    return path


def _dev_csv(path: Path, n: int) -> Path:
    """The first n texts of the built-in dev split, as a file --eval takes (quality tables on n, not ~1,280)."""
    import csv

    from edgebert.train.data import load_data

    dev = load_data("rotten-tomatoes", split="dev", labelled=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for e in dev.examples[:n]:
            w.writerow([e.text, e.label])
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/bench15")
    ap.add_argument("--teacher-steps", type=int, default=150)
    ap.add_argument("--dyna-steps", type=int, default=40)
    ap.add_argument("--compress-steps", type=int, default=40)
    ap.add_argument("--compress-batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--tflite-n", type=int, default=300)
    ap.add_argument("--dev-n", type=int, default=400, help="dev texts for the quality tables (first N)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--prune-steps", type=int, default=3, help="structured pruning in N distilled steps (1: at once)")
    a = ap.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    dyna = work / "rt-dyna"
    dev_file = _dev_csv(work / "dev.csv", a.dev_n)
    common = dict(
        data="rotten-tomatoes",
        eval=str(dev_file),
        seq_len=a.seq_len,
        batch_size=32,
        lr=1e-4,
        widths=WIDTHS[::-1],
        depths=(1.0,),
        no_quantized=True,  # this benchmark scores its own int8 TFLite files; the ONNX dev scores would add minutes
    )
    if not (dyna / "quality.json").exists():
        train(
            TrainConfig(
                out=str(dyna),
                max_steps=a.dyna_steps,
                teacher_max_steps=a.teacher_steps,
                rewire_texts=256,
                resume=True,  # an interrupted benchmark continues its dynamic model
                **common,
            ),
            progress=False,
        )
    print(f"# dynamic model ready after {time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    feeds = _dev_feeds(dyna, a.seq_len, a.tflite_n, work / "dev_feeds.json")
    rows = []
    for prune in PRUNES:
        for rank in RANKS:
            name = f"r{rank or 'full'}-p{prune:g}"
            model_dir = dyna
            t0 = time.perf_counter()
            if rank or prune:
                model_dir = work / name
                if not (model_dir / "compression.json").exists():
                    flags = dict(common, out=str(model_dir), model=str(dyna), max_steps=a.compress_steps, force=True)
                    flags["batch_size"] = a.compress_batch_size
                    flags.update(embedding_rank=str(rank) if rank else None, prune=prune)
                    flags["prune_steps"] = a.prune_steps if prune else None
                    run_compress(flags, progress=False)
            compress_s = time.perf_counter() - t0
            quality = json.loads((model_dir / "quality.json").read_text())
            for width in WIDTHS:
                spec = SubnetSpec(width, 1.0)
                out = work / f"{name}-w{width:g}"
                try:
                    manifest = export(
                        ExportConfig(str(out), model=str(model_dir), spec=spec, formats=("tflite",), precision="int8",
                                     seq_len=a.seq_len, force=True),
                        progress=False,
                    )  # fmt: skip
                except ParityError as exc:  # a finding, not a crash: the row says so and nothing is measured
                    rows.append({"config": name, "width": width, "failed": str(exc).split(". It was")[0]})
                    rows[-1].update(acc_fp32=quality[spec.key]["score"], acc_n=quality[spec.key]["n"])
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                    continue
                art = manifest["artifacts"][0]
                meas = subprocess.run(
                    [sys.executable, "-c", _MEASURE, str(out / art["file"]), str(a.seq_len), str(a.runs), str(feeds)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                m = json.loads(meas.stdout.strip().splitlines()[-1])
                rows.append(
                    {
                        "config": name,
                        "width": width,
                        "file_mb": art["size_bytes"] / 1e6,
                        "peak_rss_mb": m["peak_rss_mb"],
                        "p50_ms": m["p50_ms"],
                        "acc_fp32": quality[spec.key]["score"],
                        "acc_n": quality[spec.key]["n"],
                        "acc_int8": m["accuracy"],
                        "int8_n": m["n"],
                        "compress_s": compress_s,
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    (work / "benchmark.json").write_text(json.dumps(rows, indent=2) + "\n")
    n_dev, n8 = rows[0]["acc_n"], a.tflite_n
    print(
        f"measured on this machine (2 threads, seq {a.seq_len}, {a.runs} timed runs each; peak RSS of a fresh LiteRT "
        f"process, VmHWM: Python + numpy + LiteRT + the file). Accuracy fp32: PyTorch sliced model on the RT dev split (n={n_dev}); "
        f"int8: the .tflite on the first {n8} dev texts. Steps: teacher {a.teacher_steps}, dynamic {a.dyna_steps}, "
        f"compress {a.compress_steps} (batch {a.compress_batch_size}); widths 0.5,1 depth 1. This run: {time.perf_counter() - t_start:.0f} s "
        "(compress s = 0: reused from an earlier run of this --work)."
    )
    print("| emb rank | prune | width | int8 tflite MB | peak RSS MB | p50 ms | acc fp32 | acc int8 | compress s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rank, prune = r["config"].split("-")
        if "failed" in r:
            print(
                f"| {rank[1:]} | {prune[1:]} | {r['width']:g} | no file: {r['failed']} | | | {r['acc_fp32']:.4f} | | |"
            )
            continue
        print(
            f"| {rank[1:]} | {prune[1:]} | {r['width']:g} | {r['file_mb']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['acc_fp32']:.4f} | {r['acc_int8']:.4f} | {r['compress_s']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
