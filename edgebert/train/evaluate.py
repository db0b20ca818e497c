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
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from edgebert.errors import DataError
from edgebert.model.bert import Bert, load_model
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.tokenizer import load_tokenizer
from edgebert.train.data import DataSet, check_labels, load_data, to_batch

__all__ = ["measure", "evaluate"]

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
) -> dict:
    """Quality table of `model` (rewired, ideally dynamically trained) on `data`.

    Sentence encoders are scored against `reference`'s embeddings (default: `model`'s own full network;
    benchmarks pass the original encoder to see how far training moved the full model too)."""
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
            gold = torch.cat([b["labels"] for b in batches])
            entry["score"] = float((out.argmax(-1) == gold).float().mean())
        else:
            entry["score"] = float(F.cosine_similarity(out, full, dim=-1).clamp(0, 1).mean())
            entry["nn_agreement"] = _nn_agreement(out, full)
            entry["nn_n"] = min(len(out), NN_LIMIT)
        table[spec.key] = {"score": round(entry.pop("score"), 6), **entry}
    return table


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
) -> dict:
    """Measure the quality table of the model in `model_dir` on `data` (a DataSet, file or built-in name)."""

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
    return measure(model, data, load_tokenizer(model_dir), batch_size=batch_size, seq_len=seq_len, progress=progress)
