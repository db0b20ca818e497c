"""What one artifact is (format, precision, sequence length) and the converter contract."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from edgebert.errors import UsageError

__all__ = [
    "PRECISIONS",
    "ArtifactConfig",
    "ModelCard",
    "Tolerance",
    "Converter",
    "ConverterBase",
    "Runtime",
    "MIN_SEQ_LEN",
    "check_seq_len",
    "parse_seq_lens",
    "bucket_signature",
    "RECIPES",
    "FALLBACK_RECIPES",
    "recipes_of",
]

PRECISIONS = ("fp32", "fp16", "int8")
MIN_SEQ_LEN = 8

# Quantization recipes (issue 16 item 5) -> the precision each writes. "int8" is per-channel dynamic int8 as
# it always was; "int8-keep-ends" leaves the embeddings and the first and last layer in fp32 (in formats
# whose converter lists it in `recipes`).
RECIPES = {"fp32": "fp32", "fp16": "fp16", "int8": "int8", "int8-keep-ends": "int8"}
# What the accuracy gate tries, in order, for a requested precision (Intel Neural Compressor's fallback idea).
FALLBACK_RECIPES = {"int8": ("int8", "int8-keep-ends", "fp16"), "fp16": ("fp16",), "fp32": ("fp32",)}


@dataclass(frozen=True)
class ArtifactConfig:
    format: str
    precision: str = "fp32"
    seq_len: int = 128  # static length for formats without dynamic shapes (TFLite); max for others
    # Sequence-length buckets, ascending, the last == seq_len; () for one length. TFLite writes one signature
    # per bucket into one file; dynamic formats are verified (and measured) at every bucket length.
    buckets: tuple[int, ...] = ()
    recipe: str = ""  # "": the precision's default recipe (the one named like it); else a RECIPES key

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.recipe and RECIPES.get(self.recipe) != self.precision:
            raise ValueError(f"recipe {self.recipe!r} does not write {self.precision}")
        if isinstance(self.seq_len, bool) or not isinstance(self.seq_len, int):
            raise UsageError(f"--seq-len must be an integer, got {self.seq_len!r}")
        if self.buckets and (list(self.buckets) != sorted(set(self.buckets)) or self.buckets[-1] != self.seq_len):
            raise ValueError(f"buckets {self.buckets} must ascend without repeats and end at seq_len {self.seq_len}")

    @property
    def quant_recipe(self) -> str:
        return self.recipe or self.precision

    @property
    def lengths(self) -> tuple[int, ...]:
        """Every length this artifact takes: its buckets, or its one seq_len."""
        return self.buckets or (self.seq_len,)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelCard:
    """What an artifact tells the app that loads it, in the format's own metadata: its name, the tokenizer
    (a WordPiece vocabulary in id order), the three inputs, and its output (an embedding or labelled logits)."""

    name: str
    description: str
    version: str
    task: str  # "embedding" | "classification"
    output_name: str  # "embeddings" | "logits"
    labels: tuple[str, ...] = ()
    vocab: tuple[str, ...] = ()  # empty: the tokenizer is not WordPiece, so no tokenizer metadata is written
    lowercase: bool = True
    vocab_file: str = "vocab.txt"
    labels_file: str = "labels.txt"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["vocab_size"] = len(d.pop("vocab"))
        return d


@dataclass(frozen=True)
class Tolerance:
    """Parity gate for one precision: an artifact outside these bounds is not written."""

    max_abs_diff: float | None = None  # None: not gated (quantized outputs are judged by cosine)
    min_cosine: float = 0.999  # encoders (and classifiers without max_prob_diff)
    # Classifiers only: the decision agrees on every input the reference decides by more than a near-tie,
    # i.e. whose top-two probability margin exceeds 2 x max_prob_diff (all inputs when max_prob_diff is None).
    min_argmax_agreement: float = 1.0
    # Classifiers, quantized: the largest change of any class probability. Replaces the cosine of the
    # logits there: a 2-class logit vector near (0, 0) turns by 90 degrees for a 0.05 change (measured:
    # an int8 TFLite refused at cosine 0.078 whose 200 dev decisions agreed 99.5%, max prob change 0.05).
    max_prob_diff: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# A loaded artifact: takes the canonical int64 inputs (input_ids, attention_mask,
# token_type_ids), returns the model output as float32 [batch, dim].
Runtime = Callable[[dict[str, np.ndarray]], np.ndarray]


def check_seq_len(seq_len: int, max_positions: int, flag: str = "--seq-len") -> None:
    """The one sequence-length check: between MIN_SEQ_LEN and the model's position embeddings."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not MIN_SEQ_LEN <= seq_len <= max_positions:
        raise UsageError(f"{flag} {seq_len} is out of range: this model takes {MIN_SEQ_LEN}..{max_positions} tokens")


def parse_seq_lens(text) -> tuple[int, ...]:
    """'128' -> (128,); '32,64,128' -> (32, 64, 128): the one place --seq-len text becomes lengths.

    Lengths must be distinct integers >= MIN_SEQ_LEN, given in ascending order (the model's own limit is
    checked later, by check_seq_len, once the model is loaded)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lengths = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--seq-len takes a whole number or an ascending list such as 32,64,128, got {text!r}"
        ) from None
    for n in lengths:
        if n < MIN_SEQ_LEN:
            raise UsageError(f"--seq-len {n} is too short: every length must be >= {MIN_SEQ_LEN} tokens")
    if len(set(lengths)) != len(lengths) or list(lengths) != sorted(lengths):
        raise UsageError(f"--seq-len {text}: give each length once, in ascending order (e.g. 32,64,128)")
    return lengths


def recipes_of(converter) -> tuple[str, ...]:
    """The recipes a converter (class or instance) can write: one per precision, plus its extra ones."""
    return tuple(converter.precisions) + tuple(getattr(converter, "extra_recipes", ()))


def bucket_signature(seq_len: int) -> str:
    """The TFLite signature name of a sequence-length bucket."""
    return f"seq_{seq_len}"


def segment_signature(k: int, seq_len: int | None = None) -> str:
    """The TFLite signature of early-exit segment k (1-based): segment_K at the file's own (largest) length,
    segment_K_seq_N in the smaller sequence-length bucket N."""
    return f"segment_{k}" if seq_len is None else f"segment_{k}_{bucket_signature(seq_len)}"


class Converter(Protocol):
    name: str  # set by the registry
    suffix: str  # file name is "model" + suffix
    precisions: tuple[str, ...]  # precisions it can really produce
    dynamic_shapes: bool  # False: one file per static (batch=1, seq_len) shape
    runtime: str  # the runtime used to verify it, e.g. "onnxruntime"

    def convert(self, model, config: ArtifactConfig, path: Path) -> dict:
        """Write the artifact to `path`; return facts for the manifest (inputs, outputs, notes)."""

    def load(self, path: Path, threads: int = 1, signature: str | None = None) -> Runtime:
        """Load the artifact in its own runtime; `signature`: which bucket of a multi-signature file
        (static formats only; None for a one-length file)."""

    def tolerance(self, precision: str) -> Tolerance: ...

    def runtime_version(self) -> str: ...

    def resolve_precision(self, requested: str) -> tuple[str, str | None]:
        """(the precision it will really write, a note when that differs from the request)."""

    def normalise(self, src: Path, dst: Path) -> str | None:
        """Write a byte-reproducible copy of `src` to `dst` and say what changed; None: nothing to do."""

    def describe(self, path: Path, card: ModelCard) -> dict | None:
        """Write `card` into the artifact's own metadata, in place; return what was written (manifest)."""


class ConverterBase:
    """Defaults for the parts of the Converter contract most formats share; converters subclass it."""

    quantizes_embeddings = False  # int8 also quantizes the embedding tables (memory model)
    # File size (select/costs.py): bytes per int8-quantized output channel (its fp32 scale, and whatever
    # else the format stores per channel), and the graph's own bytes per encoder layer (tensor and operator
    # records, names) beyond the weights.
    int8_channel_bytes = 4
    graph_bytes_per_layer = 0
    vocab_bytes_per_token = 0  # a WordPiece vocabulary packed into the file's metadata (describe)
    extra_recipes: tuple[str, ...] = ()  # RECIPES beyond one per precision that this format can write
    runtime_weight_precision: dict[str, str] = {}  # stored precision -> what the runtime holds in RAM

    def resolve_precision(self, requested: str) -> tuple[str, str | None]:
        if requested in self.precisions:
            return requested, None
        raise UsageError(f"format {self.name} cannot produce {requested}; it supports {', '.join(self.precisions)}")

    def normalise(self, src: Path, dst: Path) -> str | None:
        return None  # the exporter already writes the same bytes every time

    def describe(self, path: Path, card: ModelCard) -> dict | None:
        return None  # no metadata slot apps read: the tokenizer files beside the artifact are the card

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this format cannot be written here (its toolchain is not installed), or None when it can."""
        return None
