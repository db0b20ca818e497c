"""The quality table: the measured score of every (width, depth) sub-network of a dynamic model.

`quality.json` in the model folder maps SubnetSpec.key ("w0.5-d0.75") to
{score, metric, data, n, measured_at} (+ metric-specific extras). Scores are in [0, 1]:
accuracy for classifiers; for sentence encoders the mean cosine between the sub-network's
embedding and the full model's on held-out text ("fidelity"), with the nearest-neighbour
agreement of the two embedding spaces as a retrieval check. Every figure is measured on the
really sliced sub-network (slicing.slice_model), the object that gets exported.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgebert.artifact import ArtifactConfig
from edgebert.errors import DataError, UsageError
from edgebert.model.bert import Bert, load_model
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.tokenizer import INPUT_NAMES, load_tokenizer
from edgebert.registry import CONVERTERS
from edgebert.train.data import DataSet, check_labels, load_data, to_batch

__all__ = ["measure", "evaluate", "check_quantized"]

NN_LIMIT = 2000  # the nearest-neighbour check is O(n^2) in memory


def _batches(model: Bert, data: DataSet, tokenizer, batch_size: int, seq_len: int):
    # Sorted by length so each batch pads little; the order does not change any score.
    seq_len = min(seq_len, model.config.max_position_embeddings)
    labels = model.config.labels if model.config.task == "classification" else None
    ordered = sorted(data.examples, key=lambda e: len(e.text) + len(e.text_pair or ""))
    return [
        to_batch(tokenizer, ordered[i : i + batch_size], seq_len, labels) for i in range(0, len(ordered), batch_size)
    ]


@torch.no_grad()
def _outputs(model: Bert, batches) -> torch.Tensor:
    model.eval()
    return torch.cat([model(b["input_ids"], b["attention_mask"], b["token_type_ids"]) for b in batches])


def _nn_agreement(sub: torch.Tensor, full: torch.Tensor) -> float:
    """Share of texts whose nearest other text is the same in both embedding spaces."""
    sub, full = F.normalize(sub[:NN_LIMIT], dim=-1), F.normalize(full[:NN_LIMIT], dim=-1)
    if len(sub) < 2:
        return 1.0
    eye = torch.eye(len(sub), dtype=torch.bool)
    a = (sub @ sub.T).masked_fill(eye, -2).argmax(1)
    b = (full @ full.T).masked_fill(eye, -2).argmax(1)
    return float((a == b).float().mean())


def measure(
    model: Bert,
    data: DataSet,
    tokenizer,
    specs: list[SubnetSpec] | None = None,
    *,
    batch_size: int = 64,
    seq_len: int = 128,
    progress: bool = False,
    reference: Bert | None = None,
    quantized: tuple[str, ...] = (),
) -> dict:
    """Quality table of `model` (rewired, ideally dynamically trained) on `data`.

    Sentence encoders are scored against `reference`'s embeddings (default: `model`'s own full network;
    benchmarks pass the original encoder to see how far training moved the full model too).
    `quantized` ("onnx/int8", "tflite/fp16", ...): each sub-network is also converted to that format and
    precision (its default recipe), run in the format's runtime, and scored the same way, under the
    row's "precisions" (issue 16 item 4: the selector then uses these figures as measured)."""
    from tqdm.auto import tqdm

    if not len(data):
        raise DataError(f"{data.source}: no examples to evaluate on")
    classify = model.config.task == "classification"
    if classify:
        check_labels(data, model.config.labels)
    specs = specs or [SubnetSpec(w, d) for d in DEPTHS for w in WIDTHS]
    batches = _batches(model, data, tokenizer, batch_size, seq_len)
    full = None if classify else _outputs(model if reference is None else reference, batches)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    gold = torch.cat([b["labels"] for b in batches]) if classify else None
    quantized = check_quantized(quantized)
    table = {}
    for spec in tqdm(specs, desc="quality", unit="subnet", disable=not progress or not sys.stderr.isatty()):
        out = _outputs(slice_model(model, spec), batches)
        entry = {
            "metric": "accuracy" if classify else "cosine_fidelity",
            "data": data.name,
            "n": len(data),
            "measured_at": stamp,
        }
        if classify:
            entry["score"] = float((out.argmax(-1) == gold).float().mean())
        else:
            entry["score"] = _fidelity(out, full)
            entry["nn_agreement"] = _nn_agreement(out, full)
            entry["nn_n"] = min(len(out), NN_LIMIT)
        table[spec.key] = {"score": round(entry.pop("score"), 6), **entry}
        sub = slice_model(model, spec).eval()
        for what in quantized:
            q = _artifact_outputs(sub, what, batches, seq_len)
            score = float((q.argmax(-1) == gold).float().mean()) if classify else _fidelity(q, full)
            fmt, precision = what.split("/")
            table[spec.key].setdefault("precisions", {})[what] = {
                "score": round(score, 6),
                "metric": entry["metric"],
                "recipe": precision,
                "data": data.name,
                "n": len(data),
                "measured_at": stamp,
            }
    return table


def _fidelity(out: torch.Tensor, full: torch.Tensor) -> float:
    return float(F.cosine_similarity(out, full, dim=-1).clamp(0, 1).mean())


def check_quantized(quantized) -> tuple[str, ...]:
    """ "onnx/int8,tflite/fp16" (or a sequence of such) -> validated ("onnx/int8", "tflite/fp16")."""
    items = [q.strip() for q in (quantized.split(",") if isinstance(quantized, str) else quantized or ()) if q.strip()]
    for item in items:
        fmt, _, precision = item.partition("/")
        conv = CONVERTERS.get(fmt) if fmt in CONVERTERS.names() else None
        if conv is None or precision not in ("int8", "fp16") or precision not in conv.precisions:
            raise UsageError(
                f"--quantized {item!r}: give FORMAT/PRECISION with a precision the format writes, e.g. onnx/int8, "
                f"tflite/int8, onnx/fp16 (formats: {', '.join(CONVERTERS.names())})"
            )
    return tuple(items)


def _artifact_outputs(sub: Bert, what: str, batches, seq_len: int) -> torch.Tensor:
    """`sub` converted as `what` ("onnx/int8"), run in its own runtime on the batches."""
    fmt, precision = what.split("/")
    conv = CONVERTERS.get(fmt)()
    seq_len = min(seq_len, sub.config.max_position_embeddings)
    outs = []
    with tempfile.TemporaryDirectory(prefix="edgebert-eval-") as tmp:
        path = Path(tmp) / ("model" + conv.suffix)
        conv.convert(sub, ArtifactConfig(fmt, precision, seq_len), path)
        runtime = conv.load(path, threads=torch.get_num_threads())
        for b in batches:
            feeds = {n: b[n].numpy().astype(np.int64) for n in INPUT_NAMES}
            outs.append(torch.from_numpy(np.asarray(runtime(feeds), dtype=np.float32)))
    return torch.cat(outs)


def evaluate(
    model_dir: str | Path,
    data: DataSet | str,
    *,
    split: str = "dev",
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    batch_size: int = 64,
    seq_len: int = 128,
    progress: bool = False,
    quantized: tuple[str, ...] = (),
) -> dict:
    """Measure the quality table of the model in `model_dir` on `data` (a DataSet, file or built-in name)."""
    quantized = check_quantized(quantized)  # before loading anything

    model = load_model(model_dir)
    if not isinstance(data, DataSet):
        data = load_data(
            data,
            labelled=model.config.task == "classification",
            split=split,
            text_column=text_column,
            text_pair_column=text_pair_column,
            label_column=label_column,
        )
    return measure(
        model,
        data,
        load_tokenizer(model_dir),
        batch_size=batch_size,
        seq_len=seq_len,
        progress=progress,
        quantized=quantized,
    )
