"""Early-exit export: a sliced model with exits cut into segments, written per format, verified exit by
exit against PyTorch, and described in manifest.json's `early_exit` section.

Segment 1 = embeddings + layer 1 + exit 1: (input_ids, attention_mask, token_type_ids) -> (hidden_out, logits).
Segment k = layer k + exit k: (hidden, attention_mask) -> (hidden_out, logits); the last one returns logits
only (its exit is the model's own head, so running every segment gives the plain model's output).
The app runs segment 1, asks the policy, and runs the next segment only when the policy says go on:
edgebert.runtime.policy.run_policy is that loop, and `edgebert predict` runs it on these files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgebert.artifact import segment_signature
from edgebert.errors import ParityError, UsageError
from edgebert.export.card import model_card
from edgebert.export.verify import PARITY_TEXTS, decision_figures
from edgebert.hashing import sha256_file
from edgebert.model.bert import Bert
from edgebert.model.exits import exit_logits, has_exits
from edgebert.model.tokenizer import INPUT_NAMES, encode
from edgebert.registry import CONVERTERS, SEGMENT_DESCRIBERS, SEGMENT_WRITERS
from edgebert.runtime.policy import SWEEPS, Policy, run_policy, to_dict
from edgebert.runtime.predictor import open_segments, segment_exits

__all__ = ["DevSet", "build_segments", "export_segments", "exit_histogram", "SEGMENT_FORMATS", "SWEEPS"]

SEGMENT_FORMATS = tuple(SEGMENT_WRITERS.names())


@dataclass(frozen=True)
class DevSet:
    """Texts to measure the exit histogram on; labels (class indices) when known."""

    name: str
    texts: tuple[str, ...]
    labels: tuple[int, ...] | None = None


def _bias(mask, dtype):
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min  # as Bert.encode


class _First(nn.Module):
    def __init__(self, model: Bert, last: bool):
        super().__init__()
        self.embeddings, self.layer = model.embeddings, model.layers[0]
        self.exit = model.head if last else model.exits[0]
        self.last = last

    def forward(self, input_ids, attention_mask, token_type_ids):
        x = self.embeddings(input_ids, token_type_ids)
        x = self.layer(x, _bias(attention_mask, x.dtype))
        return self.exit(x) if self.last else (x, self.exit(x, attention_mask))


class _Next(nn.Module):
    def __init__(self, model: Bert, k: int, last: bool):
        super().__init__()
        self.layer = model.layers[k]
        self.exit = model.head if last else model.exits[k]
        self.last = last

    def forward(self, hidden, attention_mask):
        x = self.layer(hidden, _bias(attention_mask, hidden.dtype))
        return self.exit(x) if self.last else (x, self.exit(x, attention_mask))


def build_segments(model: Bert) -> tuple[list[nn.Module], list[tuple[tuple, tuple]]]:
    """(segment modules, (input names, output names) of each); the model must have exits."""
    if not has_exits(model):
        raise UsageError("--early-exit needs a model trained with exits (`edgebert train --exits`)")
    n = model.config.num_layers
    segments, names = [], []
    for k in range(n):
        last = k == n - 1
        segments.append((_First(model, last) if k == 0 else _Next(model, k, last)).eval())
        inputs = INPUT_NAMES if k == 0 else ("hidden", "attention_mask")
        names.append((inputs, ("logits",) if last else ("hidden_out", "logits")))
    return segments, names


def _examples(model: Bert, length: int) -> list[tuple]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (2, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, length - length // 3 :] = 0  # a padded row, so the traced graph sees a real mask
    hidden = torch.randn(2, length, model.config.hidden_size, generator=g)
    first = (ids, mask, torch.zeros_like(ids))
    return [first] + [(hidden, mask)] * (model.config.num_layers - 1)


def _tensor(name, dim, batch, sequence, hidden, labels) -> dict:
    shapes = {"hidden": [batch, sequence, hidden], "hidden_out": [batch, sequence, hidden], "logits": [batch, labels]}
    dtype = "float32" if name in shapes else dim
    return {"name": name, "dtype": dtype, "shape": shapes.get(name, [batch, sequence])}


def _segment_entries(model: Bert, names, fmt_static: bool, seq_len: int) -> list[dict]:
    c = model.config
    batch, seq = (1, seq_len) if fmt_static else ("batch", "sequence")
    return [
        {
            "name": segment_signature(k),
            "exit_layer": k,
            "source_layer": c.source_layers[k - 1],
            "inputs": [_tensor(n, "int64", batch, seq, c.hidden_size, c.num_labels) for n in ins],
            "outputs": [_tensor(n, "float32", batch, seq, c.hidden_size, c.num_labels) for n in outs],
        }
        for k, (ins, outs) in enumerate(names, start=1)
    ]


def _verify(model: Bert, sessions, tokenizer, fmt: str, static: bool, seq_len: int, precision: str = "fp32") -> dict:
    """Every exit of the written segments against PyTorch's fp32 exit logits, on real sentences, within the
    precision's tolerance (the plain artifact's: element-wise for fp32, cosine and argmax for fp16/int8)."""
    tol = CONVERTERS.get(fmt)().tolerance(precision)
    texts = list(PARITY_TEXTS)
    if static:  # batch 1, padded to the file's length
        batches = [encode(tokenizer, [t], seq_len=seq_len) for t in texts]
    else:  # each text at its own length, and all of them padded together
        batches = [encode(tokenizer, [t], seq_len=None) for t in texts] + [encode(tokenizer, texts, seq_len=None)]
        batches = [{k: v[:, :seq_len] for k, v in b.items()} for b in batches]
    refs, outs = [], []
    with torch.no_grad():
        for b in batches:
            refs.append([z.numpy() for z in exit_logits(model, *(torch.from_numpy(b[n]) for n in INPUT_NAMES))])
            outs.append(list(segment_exits(sessions, b)))
    per_exit = []
    for k in range(model.config.num_layers):
        ref = np.concatenate([r[k] for r in refs])
        out = np.concatenate([o[k] for o in outs])
        cos = (ref * out).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1), 1e-12)
        per_exit.append(
            {
                "exit_layer": k + 1,
                "max_abs_diff": float(np.abs(out - ref).max()),
                "min_cosine": float(cos.min()),
                "argmax_agreement": float((out.argmax(1) == ref.argmax(1)).mean()),
                **decision_figures(ref, out, tol),  # judged as the plain classifier artifact is (verify.py)
            }
        )
    failures = [f"exit {e['exit_layer']}: {why}" for e in per_exit for why in _exit_failures(e, tol)]
    return {
        "precision": precision,
        "per_exit": per_exit,
        "n_inputs": len(texts),
        "tolerance": tol.to_dict(),
        "failures": failures,
        "passed": not failures,
    }


def _exit_failures(e: dict, tol) -> list[str]:
    """One exit's figures against the tolerance: fp32 element-wise; fp16/int8 by class probabilities and by
    the decisions that are not near-ties, as export/verify.py judges a plain classifier artifact."""
    out = []
    if tol.max_abs_diff is not None and not e["max_abs_diff"] <= tol.max_abs_diff:
        out.append(f"max_abs_diff {e['max_abs_diff']:.3g} > {tol.max_abs_diff}")
    if tol.max_prob_diff is None and not e["min_cosine"] >= tol.min_cosine:
        out.append(f"min_cosine {e['min_cosine']:.4f} < {tol.min_cosine}")
    if tol.max_prob_diff is not None and not e["max_prob_diff"] <= tol.max_prob_diff:
        out.append(f"max_prob_diff {e['max_prob_diff']:.3f} > {tol.max_prob_diff}")
    if not e["decided_agreement"] >= tol.min_argmax_agreement:
        out.append(
            f"argmax_agreement {e['decided_agreement']:.3f} < {tol.min_argmax_agreement} on the "
            f"{e['n_decided']} inputs that are not near-ties"
        )
    return out


@torch.no_grad()
def _dev_exit_logits(model: Bert, tokenizer, dev: DevSet, seq_len: int, batch_size: int = 64) -> np.ndarray:
    """[examples, exits, labels]: every exit's logits for every dev text (PyTorch, sliced model)."""
    chunks = []
    for i in range(0, len(dev.texts), batch_size):
        b = encode(tokenizer, list(dev.texts[i : i + batch_size]), seq_len=None)
        b = {k: torch.from_numpy(v[:, :seq_len]) for k, v in b.items()}
        chunks.append(torch.stack(exit_logits(model, *(b[n] for n in INPUT_NAMES)), 1).numpy())
    return np.concatenate(chunks)


def exit_histogram(logits: np.ndarray, policy: Policy, labels=None) -> dict:
    """What `policy` does on precomputed exit logits [examples, exits, labels]: exits taken and accuracy."""
    n_exits = logits.shape[1]
    taken = [run_policy(policy, list(ex)) for ex in logits]
    layers = np.array([t[0] for t in taken])
    out = {
        "policy": to_dict(policy)["text"],
        "histogram": [int((layers == k).sum()) for k in range(1, n_exits + 1)],
        "mean_exit_layer": round(float(layers.mean()), 4),
        "accuracy": None,
    }
    if labels is not None:
        preds = np.array([int(np.argmax(t[1])) for t in taken])
        out["accuracy"] = round(float((preds == np.asarray(labels)).mean()), 6)
    return out


def _dev_section(model: Bert, tokenizer, dev: DevSet, policy: Policy, seq_len: int) -> dict:
    logits = _dev_exit_logits(model, tokenizer, dev, seq_len)
    chosen = exit_histogram(logits, policy, dev.labels)
    kind = type(policy)
    sweep = [exit_histogram(logits, kind(v), dev.labels) for v in SWEEPS[policy.kind]]
    exit_acc = None
    if dev.labels is not None:
        gold = np.asarray(dev.labels)
        exit_acc = [round(float((logits[:, k].argmax(-1) == gold).mean()), 6) for k in range(logits.shape[1])]
    return {
        "data": dev.name,
        "n": len(dev.texts),
        "kind": "measured in PyTorch on the exported sub-network (fp32), batch inputs at their own length",
        "exit_accuracy": exit_acc,
        **{k: chosen[k] for k in ("histogram", "mean_exit_layer", "accuracy")},
        "sweep": sweep,
    }


def export_segments(
    model: Bert,
    tokenizer,
    formats,
    folder,
    policy: Policy,
    *,
    seq_len: int,
    threads: int = 1,
    dev: DevSet | None,
    precision: str = "fp32",
    buckets: tuple[int, ...] = (),
) -> dict:
    """Write, verify (ParityError: nothing is published) and describe the segments of `model` in `folder`.

    `precision` is applied per format as the plain converters do (TorchScript stays fp32, with a note).
    `buckets` (ascending, ending at seq_len): the TFLite file gets every segment at each bucket's length too,
    each verified at its own length; ONNX and TorchScript segments are dynamic and serve every length."""
    unsupported = [f for f in formats if f not in SEGMENT_FORMATS]
    if unsupported:
        raise UsageError(f"--early-exit cannot write {unsupported[0]} segments; formats: {', '.join(SEGMENT_FORMATS)}")
    model = model.eval()
    _, names = build_segments(model)
    card = model_card(model, tokenizer, name=f"edgebert early-exit segments ({model.config.num_layers} exits)")
    section = {
        "policy": to_dict(policy),
        "layers": model.config.num_layers,
        "seq_len": seq_len,
        "precision": precision,
        "precisions": {},
        "notes": [],
        "segments": _segment_entries(model, names, False, seq_len),
        "static_segments": None,
        # TFLite's signatures per sequence-length bucket (a static file); None without buckets or TFLite.
        "buckets": _bucket_entries(model, buckets) if buckets and "tflite" in formats else None,
        "files": {},
        "parity": {},
        "dev": _dev_section(model, tokenizer, dev, policy, seq_len) if dev is not None else None,
    }
    for fmt in formats:
        actual, note = _resolve(fmt, precision)
        section["precisions"][fmt] = actual
        section["notes"] += [f"{fmt} segments: {note}"] if note else []
        static = fmt == "tflite"
        if static:
            section["static_segments"] = _segment_entries(model, names, True, seq_len)
        examples = _examples(model, seq_len if static else min(seq_len, 16))
        smaller = {n: _examples(model, n) for n in buckets if n != seq_len} if static else {}
        # build_segments is looked up here, not bound at import, so a test can swap it for a broken one.
        files = SEGMENT_WRITERS.get(fmt)(
            model,
            lambda m: build_segments(m),
            examples,
            folder,
            model.config.max_position_embeddings,
            actual,
            **({"buckets": smaller} if smaller else {}),
        )
        # The card the plain artifacts carry (tokenizer, labels, inputs), per segment; hashed after writing it.
        described = _describe(fmt, folder, files, card, section["static_segments" if static else "segments"])
        section["files"][fmt] = [
            {
                "file": f,
                "precision": actual,
                "size_bytes": (folder / f).stat().st_size,
                "sha256": sha256_file(folder / f),
                **({"metadata": m} if m is not None else {}),
            }
            for f, m in zip(files, described)
        ]
        sessions = open_segments(folder, section, fmt, threads)
        parity = _verify(model, sessions, tokenizer, fmt, static, seq_len, actual)
        if smaller:  # every bucket's signatures at their own length (texts cut at it); failures name the bucket
            per_bucket = {}
            for n in smaller:
                sessions_n = open_segments(folder, section, fmt, threads, n)
                per_bucket[n] = _verify(model, sessions_n, tokenizer, fmt, True, n, actual)
            parity["buckets"] = {str(n): {**b, "seq_len": n} for n, b in {**per_bucket, seq_len: dict(parity)}.items()}
            parity["failures"] = [f"bucket {n}: {f}" for n, b in parity["buckets"].items() for f in b["failures"]]
            parity["passed"] = not parity["failures"]
        section["parity"][fmt] = parity
        if not parity["passed"]:
            bug = "fp32 failing is a converter bug" if actual == "fp32" else "try fp32 or another format"
            raise ParityError(
                f"early-exit {fmt} {actual} segments failed their parity check against PyTorch's exit logits: "
                f"{'; '.join(parity['failures'])}. Nothing was written; {bug}."
            )
    return section


def _bucket_entries(model: Bert, buckets: tuple[int, ...]) -> list[dict]:
    """Each bucket's TFLite signatures in segment order: segment_K at the largest length, segment_K_seq_N below."""
    largest = max(buckets)
    return [
        {
            "seq_len": n,
            "signatures": [
                segment_signature(k, None if n == largest else n) for k in range(1, model.config.num_layers + 1)
            ],
        }
        for n in sorted(buckets)
    ]


def _describe(fmt: str, folder: Path, files: list[str], card, segments: list[dict]) -> list[dict | None]:
    """Each file's metadata summary (None where the format has no metadata slot apps read)."""
    if fmt not in SEGMENT_DESCRIBERS.names():
        return [None] * len(files)
    return SEGMENT_DESCRIBERS.get(fmt)(folder, files, card, segments)


def _resolve(fmt: str, precision: str) -> tuple[str, str | None]:
    conv = CONVERTERS.get(fmt)()
    if precision in conv.precisions:
        return precision, None
    return "fp32", f"{fmt} has no {precision} path; written fp32"
