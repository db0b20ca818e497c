"""Rotten Tomatoes quality benchmark of `edgebert train` (issue 4's targets).

Trains (or reuses) a dynamic MiniLM on the built-in rotten-tomatoes train split, then measures
on its test split: the teacher; naive slices of the teacher (as fine-tuned, and rewired but not
trained); the trained dynamic model at every width × depth; and the int8 ONNX / TFLite artifacts
of w0.5-d0.5. Prints a markdown table and writes benchmark.json into the model folder.

    python benchmarks/quality.py --out models/rt-dyna --seq-len 64 --epochs 2 --max-steps 560 \\
        --teacher-max-steps 300 --lr 1e-4 --threads 2

`--task embedding` does the same for task-agnostic distillation (the review texts without their
labels): every score is the cosine fidelity of a sub-network's sentence embedding to the original
MiniLM's on the test texts, with nearest-neighbour agreement as a retrieval check.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from edgebert.model.bert import load_model
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.tokenizer import encode, load_tokenizer
from edgebert.train.data import load_data
from edgebert.train.evaluate import measure

TARGET = SubnetSpec(0.5, 0.5)


def _train(args) -> dict:
    from edgebert.train.config import TrainConfig
    from edgebert.train.recipe import train

    cfg = TrainConfig(
        data="rotten-tomatoes",
        out=args.out,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        epochs=args.epochs,
        task=args.task,
        max_steps=args.max_steps,
        teacher_max_steps=args.teacher_max_steps,
        lr=args.lr,
        rewire_texts=args.rewire_texts,
        keep_teacher=True,
        resume=args.resume,
        force=not args.resume,
    )
    t0 = time.perf_counter()
    train(cfg, progress=True)
    return {"wall_seconds": round(time.perf_counter() - t0, 1)}


def _rewired(teacher, tokenizer, train_cfg: dict):
    """The rewired teacher, recomputed exactly as `edgebert train` did (same texts, seed)."""
    from edgebert.model.rewire import rewire

    labelled = teacher.config.task == "classification"
    train_set = load_data("rotten-tomatoes", split="train", labelled=labelled)
    pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(train_cfg["seed"]))
    examples = [train_set.examples[i] for i in pick[: train_cfg["rewire_texts"]].tolist()]
    index = {name: i for i, name in enumerate(teacher.config.labels or ())}
    model, _ = rewire(
        teacher,
        [e.text for e in examples],
        tokenizer,
        labels=[index[e.label] for e in examples] if labelled else None,
        seq_len=min(train_cfg["seq_len"], teacher.config.max_position_embeddings),
        seed=train_cfg["seed"],
        progress=False,
    )
    return model


def _artifact_accuracy(model, test, tokenizer, seq_len: int, workdir: Path) -> dict:
    """int8 ONNX / TFLite of the target sub-network vs its fp32 PyTorch accuracy, all on the same
    batch-1 inputs padded to seq_len (TFLite files have static shapes)."""
    from edgebert.artifact import ArtifactConfig
    from edgebert.registry import CONVERTERS

    sub = slice_model(model, TARGET).eval()
    labels = {name: i for i, name in enumerate(model.config.labels)}
    gold = np.array([labels[e.label] for e in test.examples])
    inputs = [encode(tokenizer, [e.text], seq_len) for e in test.examples]
    with torch.no_grad():
        fp32 = np.array([int(sub(**{k: torch.from_numpy(v) for k, v in x.items()}).argmax(-1)) for x in inputs])
    results = {"fp32 (torch, padded)": float((fp32 == gold).mean())}
    for fmt in ("onnx", "tflite"):
        try:
            conv = CONVERTERS.get(fmt)()
            path = workdir / f"{TARGET.key}-int8{conv.suffix}"
            conv.convert(sub, ArtifactConfig(fmt, "int8", seq_len=seq_len), path)
            run = conv.load(path, threads=1)
            pred = np.array([int(np.asarray(run(x)).argmax(-1)[0]) for x in inputs])
            results[f"{fmt} int8"] = float((pred == gold).mean())
        except Exception as exc:  # a converter that is missing or fails is reported, not fatal
            results[f"{fmt} int8"] = f"n/a ({type(exc).__name__}: {str(exc)[:120]})"
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="models/rt-dyna-bench")
    p.add_argument("--reuse", action="store_true", help="measure an already trained --out")
    p.add_argument("--resume", action="store_true", help="resume an interrupted training run")
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=float, default=2.0, help="epochs per stage (capped by the step caps)")
    p.add_argument("--max-steps", type=int, default=560)
    p.add_argument("--teacher-max-steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--rewire-texts", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--task", choices=("classification", "embedding"), default="classification")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    run = {} if args.reuse else _train(args)
    training = json.loads((out / "training.json").read_text())
    train_cfg = json.loads((out / "train_config.json").read_text())
    tokenizer = load_tokenizer(out)
    embedding = train_cfg["task"] == "embedding"
    test = load_data("rotten-tomatoes", split="test", labelled=not embedding)
    teacher, final = load_model(out / "teacher"), load_model(out)
    specs = [SubnetSpec(w, d) for d in DEPTHS for w in WIDTHS]
    t0 = time.perf_counter()
    # Encoders are scored against the original (the teacher), so drift of the full model counts too.
    kw = dict(seq_len=train_cfg["seq_len"], progress=True, reference=teacher if embedding else None)
    teacher_acc = measure(teacher, test, tokenizer, [SubnetSpec(1, 1)], **kw)["w1-d1"]["score"]
    naive = measure(teacher, test, tokenizer, specs, **kw)
    naive_rw = measure(_rewired(teacher, tokenizer, train_cfg), test, tokenizer, specs, **kw)
    dyn = measure(final, test, tokenizer, specs, **kw)
    artifacts = {} if embedding else _artifact_accuracy(final, test, tokenizer, train_cfg["seq_len"], out)
    nn = ("nn_agreement",) if embedding else ()
    result = {
        "task": train_cfg["task"],
        "metric": dyn["w1-d1"]["metric"],
        "test_n": len(test),
        "teacher": teacher_acc,
        "rows": {
            s.key: {
                "naive": naive[s.key]["score"],
                "naive_rewired": naive_rw[s.key]["score"],
                "dynamic": dyn[s.key]["score"],
                **{
                    f"{k}_{n}": t[s.key][n]
                    for n in nn
                    for k, t in (("naive", naive), ("naive_rewired", naive_rw), ("dynamic", dyn))
                },
            }
            for s in specs
        },
        "artifacts_w0.5-d0.5": artifacts,
        "training": {
            k: {
                "steps": v["steps"],
                "seconds": v["seconds"],
                "loss_first": v["loss_first"],
                "loss_last": v["loss_last"],
            }
            for k, v in training["stages"].items()
        },
        "training_peak_rss_mb": training.get("peak_rss_mb"),
        "train_wall": run,
        "measure_seconds": round(time.perf_counter() - t0, 1),
        "benchmark_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "train_config": train_cfg,
        "threads": args.threads,
    }
    (out / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    print(_markdown(result))
    return 0


def _markdown(r: dict) -> str:
    t = r["teacher"]
    if r.get("task") == "embedding":
        lines = [
            f"Rotten Tomatoes test texts (n={r['test_n']}): cosine fidelity to the original MiniLM "
            f"(nearest-neighbour agreement in brackets)",
            "",
            "| sub-network | naive slice | rewired slice (untrained) | dynamic |",
            "|---|---|---|---|",
        ]
        for key, row in r["rows"].items():
            lines.append(
                f"| {key} | "
                + " | ".join(
                    f"{row[k]:.4f} ({row[k + '_nn_agreement']:.3f})" for k in ("naive", "naive_rewired", "dynamic")
                )
                + " |"
            )
    else:
        lines = [
            f"Rotten Tomatoes test (n={r['test_n']}), teacher accuracy {t:.4f}",
            "",
            "| sub-network | naive slice | rewired slice (untrained) | dynamic | dynamic / teacher |",
            "|---|---|---|---|---|",
        ]
        for key, row in r["rows"].items():
            lines.append(
                f"| {key} | {row['naive']:.4f} | {row['naive_rewired']:.4f} | {row['dynamic']:.4f} "
                f"| {row['dynamic'] / t:.3f} |"
            )
        lines += [
            "",
            "w0.5-d0.5 artifacts (batch 1, padded): "
            + ", ".join(
                f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in r["artifacts_w0.5-d0.5"].items()
            ),
        ]
    lines += [
        "",
        "training: "
        + "; ".join(
            f"{k} {v['steps']} steps {v['seconds']:.0f}s loss {v['loss_first']:.3f}→{v['loss_last']:.3f}"
            for k, v in r["training"].items()
        ),
        f"training peak RSS {r['training_peak_rss_mb']} MB; benchmark peak RSS {r['benchmark_peak_rss_mb']} MB",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
