"""The quality table: the measured score of every (width, depth) sub-network of a dynamic model.

`quality.json` in the model folder maps SubnetSpec.key ("w0.5-d0.75") to
{score, metric, data, n, measured_at} (+ metric-specific extras). Scores are in [0, 1]:
accuracy for classifiers; for sentence encoders the mean cosine between the sub-network's
embedding and the full model's on held-out text ("fidelity"), with the nearest-neighbour
agreement of the two embedding spaces as a retrieval check. Every figure is measured on the
really sliced sub-network (slicing.slice_model), the object that gets exported.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from .data_sets import DataSet, check_labels, load_data, to_batch
from .errors import DataError
from .model import Bert
from .slicing import slice_model
from .spec import DEPTHS, WIDTHS, SubnetSpec

__all__ = ["QUALITY_FILE", "measure", "evaluate", "read_table", "write_table", "add_evaluate_arguments",
           "evaluate_main"]

QUALITY_FILE = "quality.json"
NN_LIMIT = 2000  # the nearest-neighbour check is O(n^2) in memory


def _batches(model: Bert, data: DataSet, tokenizer, batch_size: int, seq_len: int):
    # Sorted by length so each batch pads little; the order does not change any score.
    seq_len = min(seq_len, model.config.max_position_embeddings)
    labels = model.config.labels if model.config.task == "classification" else None
    ordered = sorted(data.examples, key=lambda e: len(e.text) + len(e.text_pair or ""))
    return [to_batch(tokenizer, ordered[i:i + batch_size], seq_len, labels) for i in range(0, len(ordered), batch_size)]


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


def measure(model: Bert, data: DataSet, tokenizer, specs: list[SubnetSpec] | None = None, *, batch_size: int = 64,
            seq_len: int = 128, progress: bool = False, reference: Bert | None = None) -> dict:
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
        entry = {"metric": "accuracy" if classify else "cosine_fidelity", "data": data.name, "n": len(data),
                 "measured_at": stamp}
        if classify:
            gold = torch.cat([b["labels"] for b in batches])
            entry["score"] = float((out.argmax(-1) == gold).float().mean())
        else:
            entry["score"] = float(F.cosine_similarity(out, full, dim=-1).clamp(0, 1).mean())
            entry["nn_agreement"] = _nn_agreement(out, full)
            entry["nn_n"] = min(len(out), NN_LIMIT)
        table[spec.key] = {"score": round(entry.pop("score"), 6), **entry}
    return table


def write_table(path: Path, table: dict) -> Path:
    """Write atomically: a reader never sees half a table."""
    path = Path(path)
    if path.is_dir():
        path = path / QUALITY_FILE
    fd, tmp = tempfile.mkstemp(prefix=".quality-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(table, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_table(model_dir: Path) -> dict:
    path = Path(model_dir) / QUALITY_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not a valid quality table ({exc}); re-run `edgebert evaluate`") from None


def evaluate(model_dir: str | Path, data: DataSet | str, *, split: str = "dev", text_column: str = "text",
             text_pair_column: str | None = None, label_column: str = "label", batch_size: int = 64,
             seq_len: int = 128, progress: bool = False) -> dict:
    """Measure the quality table of the model in `model_dir` on `data` (a DataSet, file or built-in name)."""
    from .model import load_model
    from .tokenizer import load_tokenizer

    model = load_model(model_dir)
    if not isinstance(data, DataSet):
        data = load_data(data, labelled=model.config.task == "classification", split=split,
                         text_column=text_column, text_pair_column=text_pair_column, label_column=label_column)
    return measure(model, data, load_tokenizer(model_dir), batch_size=batch_size, seq_len=seq_len, progress=progress)


def add_evaluate_arguments(p) -> None:
    p.add_argument("--model", required=True, help="dynamic model folder (from `edgebert train`)")
    p.add_argument("--data", required=True, help="a .csv/.tsv/.jsonl/.txt file, or the built-in 'rotten-tomatoes'")
    p.add_argument("--split", default="dev", choices=("train", "dev", "test"), help="split of a built-in data set")
    p.add_argument("--text-column", default="text")
    p.add_argument("--text-pair-column", default=None, help="second text column (sentence pairs)")
    p.add_argument("--label-column", default="label")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--out", default=None, help=f"write the table here (default: MODEL/{QUALITY_FILE})")
    p.add_argument("--no-write", action="store_true", help="print the table only")


def evaluate_main(args) -> int:
    table = evaluate(args.model, args.data, split=args.split, text_column=args.text_column,
                     text_pair_column=args.text_pair_column, label_column=args.label_column,
                     batch_size=args.batch_size, seq_len=args.seq_len, progress=True)
    for key, e in table.items():
        extra = f"  nn-agreement {e['nn_agreement']:.3f}" if "nn_agreement" in e else ""
        print(f"{key:<12} {e['metric']} {e['score']:.4f}{extra}  ({e['data']}, n={e['n']})")
    if not args.no_write:
        print(f"wrote {write_table(Path(args.out or args.model), table)}")
    return 0
