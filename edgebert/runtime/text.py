"""Raw text to the three int64 input arrays, with the tokenizer shipped in the export folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebert.errors import ModelError

__all__ = ["INPUT_NAMES", "load_tokenizer", "encode_one"]

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # as edgebert.model.tokenizer


def load_tokenizer(folder: Path):
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    folder = Path(folder)
    if (folder / "tokenizer.json").exists():
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    elif (folder / "vocab.txt").exists():
        tok = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=True)
    else:
        raise ModelError(f"{folder} has no tokenizer.json or vocab.txt; is it an edgebert export folder?")
    tok.no_padding()
    tok.no_truncation()
    return tok


def encode_one(tokenizer, text: str, seq_len: int, pad: bool) -> dict[str, np.ndarray]:
    """[1, n] arrays: the text's own length cut at seq_len, or padded to seq_len (static-shape files)."""
    enc = tokenizer.encode(text)
    n = min(len(enc.ids), seq_len)
    length = seq_len if pad else max(n, 1)
    out = {name: np.zeros((1, length), dtype=np.int64) for name in INPUT_NAMES}
    out["input_ids"][0, :n] = enc.ids[:n]
    out["attention_mask"][0, :n] = 1
    out["token_type_ids"][0, :n] = enc.type_ids[:n]
    return out
