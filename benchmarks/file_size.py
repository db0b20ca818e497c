"""How close select/costs.py's predicted file size is to the file each converter writes.

`compress --memory` and the selector judge a model's file by the prediction alone (no conversion), so an
under-prediction turns into a file over the user's limit. This converts random-weight MiniLM-shaped models
(vocab 30522, hidden 384, 128 tokens) of several depths, widths and embedding ranks with the real converters,
converted and described as `edgebert export` writes them, and prints predicted vs written bytes. Random
weights: a file's size does not depend on the values.

    python benchmarks/file_size.py                 # ~2 min on 2 cores
    python benchmarks/file_size.py --formats tflite --precisions int8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from edgebert.artifact import ArtifactConfig
from edgebert.export.card import model_card
from edgebert.model.bert import Bert
from edgebert.model.config import BertConfig
from edgebert.model.packaged import default_model_dir
from edgebert.model.spec import SubnetSpec, subnet_config
from edgebert.model.tokenizer import load_tokenizer
from edgebert.registry import CONVERTERS
from edgebert.select.costs import costs

SEQ_LEN = 128
# (layers, width, embedding rank): depth, width and factorisation each move a different part of the file.
SHAPES = ((1, 1.0, 0), (2, 0.5, 64), (6, 0.5, 64), (6, 1.0, 128), (6, 0.3, 64))


def _config(layers: int, width: float, rank: int) -> BertConfig:
    full = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        heads=(12,) * layers,
        ffn=(1536,) * layers,
        head_dim=32,
        task="classification",
        num_labels=2,
        labels=("neg", "pos"),
        embedding_rank=rank,
    )
    return subnet_config(full, SubnetSpec(width, 1.0)) if width < 1 else full


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--precisions", default="int8,fp16")
    args = ap.parse_args()
    torch.manual_seed(0)
    tokenizer = load_tokenizer(default_model_dir())  # MiniLM's WordPiece vocab: what describe() packs in
    rows, errors = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for layers, width, rank in SHAPES:
            cfg = _config(layers, width, rank)
            model = Bert(cfg).eval()
            for fmt in args.formats.split(","):
                conv = CONVERTERS.get(fmt)()
                for precision in args.precisions.split(","):
                    path = Path(tmp) / f"m{conv.suffix}"
                    # As export/pipeline.py writes it: converted, then the model card described in.
                    conv.convert(model, ArtifactConfig(fmt, precision, SEQ_LEN), path)
                    conv.describe(path, model_card(model, tokenizer, name="file-size bench"))
                    written = path.stat().st_size
                    predicted = costs(cfg, SEQ_LEN).weight_bytes(precision, fmt)
                    err = (predicted - written) / written
                    errors.setdefault((fmt, precision), []).append(err)
                    rows.append((layers, width, rank or "full", fmt, precision, predicted, written, err))
                    path.unlink()
    print(f"\npredicted (select/costs.py) vs written file, random MiniLM-shaped models, {SEQ_LEN} tokens\n")
    print("| layers | width | emb. rank | format | precision | predicted MB | written MB | error |")
    print("|---:|---:|---:|---|---|---:|---:|---:|")
    for layers, width, rank, fmt, precision, predicted, written, err in rows:
        print(
            f"| {layers} | {width:g} | {rank} | {fmt} | {precision} | {predicted / 1e6:.2f} | "
            f"{written / 1e6:.2f} | {100 * err:+.1f} % |"
        )
    print()
    for (fmt, precision), errs in errors.items():
        worst = max(errs, key=abs)
        print(f"{fmt} {precision}: median error {100 * statistics.median(errs):+.1f} %, worst {100 * worst:+.1f} %")


if __name__ == "__main__":
    main()
