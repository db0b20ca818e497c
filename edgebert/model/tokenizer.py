"""Tokenizer loading and batching (Hugging Face `tokenizers`, offline, from the model folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgebert.errors import ModelError

__all__ = ["TOKENIZER_FILES", "load_tokenizer", "encode", "copy_tokenizer_files", "INPUT_NAMES"]

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
# Every artifact takes these three inputs, token_type_ids included (a common complaint about
# other exporters is that it silently disappears).
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def load_tokenizer(model_dir: str | Path):
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    model_dir = Path(model_dir)
    if (model_dir / "tokenizer.json").exists():
        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    elif (model_dir / "vocab.txt").exists():
        tok = BertWordPieceTokenizer(str(model_dir / "vocab.txt"), lowercase=True)
    else:
        raise ModelError(
            f"{model_dir} has no tokenizer.json or vocab.txt; edgebert ships the tokenizer with every artifact"
        )
    # Some packaged tokenizers (MiniLM's) pad everything to 128: padding is decided per call instead.
    tok.no_padding()
    tok.no_truncation()
    return tok


def encode(tokenizer, texts, seq_len: int | None = None, pairs=None) -> dict[str, np.ndarray]:
    """Tokenize to int64 arrays. seq_len=None pads to the longest text; else truncates/pads to seq_len."""
    if seq_len is not None:
        tokenizer.enable_truncation(max_length=seq_len)
    else:
        tokenizer.enable_truncation(max_length=512)
    items = list(texts) if pairs is None else list(zip(texts, pairs))
    encs = tokenizer.encode_batch(items)
    tokenizer.no_truncation()
    length = seq_len or max(len(e.ids) for e in encs)
    out = {name: np.zeros((len(encs), length), dtype=np.int64) for name in INPUT_NAMES}
    for i, e in enumerate(encs):
        n = min(len(e.ids), length)
        out["input_ids"][i, :n] = e.ids[:n]
        out["attention_mask"][i, :n] = 1
        out["token_type_ids"][i, :n] = e.type_ids[:n]
    return out


def copy_tokenizer_files(src: Path, dst: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        if (Path(src) / name).exists():
            shutil.copy2(Path(src) / name, Path(dst) / name)
            copied.append(name)
    return copied
