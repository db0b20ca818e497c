"""Early-exit benchmark (issue 14): accuracy vs mean measured latency on Rotten Tomatoes with MiniLM.

Trains a RomeBERT-style and a DeeBERT-style model (sharing one fine-tuned teacher), exports each with
early-exit ONNX segments, and runs the test split one sentence at a time through edgebert.runtime, 1 thread,
at each sentence's own length. Rows: static DynaBERT depths (the DeeBERT model's backbone is a plain
DynaBERT model), DeeBERT entropy, PABEE patience on the DeeBERT exits, RomeBERT exits with each policy,
and the baseline: the teacher run by transformers in PyTorch eager mode (1 thread, natural length).
Every latency is measured here (mean ms per sentence over the sentences scored, one run each, after
warm-up); accuracy is on the same sentences.

    python benchmarks/early_exit.py --work models/ee-bench --teacher-steps 40 --steps 8 --batch-size 16 \\
        --seq-len 48 --n 300
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edgebert.commands.export import run_export
from edgebert.model.bert import _hf_name, load_model
from edgebert.runtime import Predictor, parse_policy
from edgebert.train.config import TrainConfig
from edgebert.train.data import load_data
from edgebert.train.recipe import train


def _train(work: Path, args) -> tuple[Path, Path]:
    common = dict(
        data="rotten-tomatoes",
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        max_steps=args.steps,
        widths=(1.0,),
        depths=(0.5, 1.0),
        lr=1e-4,
        rewire_texts=256,
    )
    rome = work / "romebert"
    if not (rome / "exits.json").exists():
        train(
            TrainConfig(
                out=str(rome), exits="romebert", keep_teacher=True, teacher_max_steps=args.teacher_steps, **common
            ),
            progress=args.progress,
        )
    dee = work / "deebert"
    if not (dee / "exits.json").exists():
        train(TrainConfig(out=str(dee), model=str(rome / "teacher"), exits="deebert", **common), progress=args.progress)
    return rome, dee


def _export(model: Path, out: Path, depth: float, early_exit: str | None, seq_len: int) -> Path:
    if not (out / "manifest.json").exists():
        run_export(
            model=str(model),
            depth=depth,
            formats=("onnx",),
            seq_len=seq_len,
            out=str(out),
            no_measure=True,
            progress=False,
            early_exit=parse_policy(early_exit) if early_exit else None,
        )
    return out


def _score(predictor: Predictor, texts, gold, policy=None) -> dict:
    if policy is not None:
        predictor.policy = parse_policy(policy)
    for t in texts[:20]:  # warm-up
        predictor.predict(t)
    preds = [predictor.predict(t) for t in texts]
    acc = float(np.mean([p.label == g for p, g in zip(preds, gold)]))
    return {
        "accuracy": acc,
        "mean_ms": float(np.mean([p.ms for p in preds])),
        "mean_exit_layer": float(np.mean([p.exit_layer for p in preds])),
    }


def _transformers_baseline(teacher_dir: Path, texts, gold) -> dict:
    """The teacher as a user runs it today: transformers BertForSequenceClassification, eager, natural length."""
    import transformers

    from edgebert.model.tokenizer import load_tokenizer

    ours = load_model(teacher_dir)
    c = ours.config
    hf_cfg = transformers.BertConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        num_hidden_layers=c.num_layers,
        num_attention_heads=c.heads[0],
        intermediate_size=c.ffn[0],
        max_position_embeddings=c.max_position_embeddings,
        type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps,
        num_labels=c.num_labels,
    )
    hf = transformers.BertForSequenceClassification(hf_cfg).eval()
    state, own = hf.state_dict(), ours.state_dict()
    mapped = {k: own[_hf_name(k)] for k in state if _hf_name(k) in own}
    missing = [k for k in state if k not in mapped and "position_ids" not in k]
    assert not missing, missing[:3]
    hf.load_state_dict(mapped, strict=False)
    tok = load_tokenizer(teacher_dir)
    times, preds = [], []
    with torch.no_grad():
        for i, t in enumerate(list(texts[:20]) + list(texts)):
            t0 = time.perf_counter()
            enc = tok.encode(t)
            ids = torch.tensor([enc.ids[:128]])
            logits = hf(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            ms = (time.perf_counter() - t0) * 1000
            if i >= 20:
                times.append(ms)
                preds.append(c.labels[int(logits.argmax())])
    return {
        "accuracy": float(np.mean([p == g for p, g in zip(preds, gold)])),
        "mean_ms": float(np.mean(times)),
        "mean_exit_layer": float(c.num_layers),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="models/ee-bench")
    ap.add_argument("--teacher-steps", type=int, default=150)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--n", type=int, default=400, help="test sentences scored (each run once, after 20 warm-up)")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    t0 = time.perf_counter()
    rome, dee = _train(work, args)  # training uses every core; measuring below uses one
    trained_s = time.perf_counter() - t0
    torch.set_num_threads(1)
    test = load_data("rotten-tomatoes", split="test")
    examples = list(test.examples)[: args.n]
    texts, gold = [e.text for e in examples], [e.label for e in examples]

    rows = []
    for depth in (0.5, 1.0):
        folder = _export(dee, work / f"out-static-d{depth:g}", depth, None, args.seq_len)
        rows.append(
            (f"DynaBERT static depth {depth:g} (DeeBERT backbone)", _score(Predictor(folder, "onnx"), texts, gold))
        )
    dee_ee = Predictor(_export(dee, work / "out-deebert", 1.0, "entropy=0.3", args.seq_len), "onnx")
    rome_ee = Predictor(_export(rome, work / "out-romebert", 1.0, "entropy=0.3", args.seq_len), "onnx")
    for policy in ("entropy=0.2", "entropy=0.4", "entropy=0.6"):
        rows.append((f"DeeBERT exits, {policy}", _score(dee_ee, texts, gold, policy)))
    for policy in ("patience=1", "patience=2"):
        rows.append((f"PABEE policy on DeeBERT exits, {policy}", _score(dee_ee, texts, gold, policy)))
    for policy in (
        "entropy=0.2",
        "entropy=0.4",
        "entropy=0.6",
        "patience=1",
        "patience=2",
        "confidence=0.8",
        "confidence=0.9",
    ):
        rows.append((f"RomeBERT exits, {policy}", _score(rome_ee, texts, gold, policy)))
    rows.append(("RomeBERT exits, all layers (entropy=0)", _score(rome_ee, texts, gold, "entropy=0")))
    base = _transformers_baseline(rome / "teacher", texts, gold)
    rows.append(("baseline: teacher, transformers eager (PyTorch)", base))

    full = dict(rows)["DynaBERT static depth 1 (DeeBERT backbone)"]
    print(f"\nRotten Tomatoes test, first {len(texts)} sentences; latency measured on this machine, 1 thread, batch 1,")
    print(
        f"natural length (ONNX Runtime fp32 via edgebert.runtime; baseline torch eager), mean of {len(texts)} runs each."
    )
    print(
        f"training: {trained_s / 60:.1f} min (teacher {args.teacher_steps} steps, {args.steps} per stage, batch "
        f"{args.batch_size}, seq {args.seq_len})\n"
    )
    print("| model / policy | accuracy | mean ms (measured) | x full | mean exit layer |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['accuracy']:.4f} | {r['mean_ms']:.2f} | {r['mean_ms'] / full['mean_ms']:.2f} | "
            f"{r['mean_exit_layer']:.2f} |"
        )
    for name, model in (("RomeBERT", rome), ("DeeBERT", dee)):
        acc = json.loads((model / "exits.json").read_text())["w1-d1"]["exit_accuracy"]
        print(f"{name} per-exit dev accuracy (measured, PyTorch, rotten-tomatoes:dev): {[round(a, 4) for a in acc]}")
    (work / "early_exit_bench.json").write_text(json.dumps({"rows": rows, "n": len(texts)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
