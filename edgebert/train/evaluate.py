"""The quality table: the measured score of every (width, depth) sub-network of a dynamic model.

`quality.json` in the model folder maps SubnetSpec.key ("w0.5-d0.75") to
{score, metric, data, n, measured_at} (+ metric-specific extras). Scores are in [0, 1]:
accuracy for classifiers; for sentence encoders the mean cosine between the sub-network's
embedding and the full model's on held-out text ("fidelity"), with the nearest-neighbour
agreement of the two embedding spaces as a retrieval check. Every figure is measured on the
really sliced sub-network (slicing.slice_model), the object that gets exported.

Quantized scores (issue 16 item 4): each sub-network can also be converted by a format's converter with a
quantization recipe ("onnx/int8", "tflite/fp16", "onnx/int8-keep-ends"), run in that format's own runtime
on the same data, and scored the same way; the figure goes under the row's "precisions", keyed by
FORMAT/RECIPE, and says what it is (format, precision, recipe, runtime, data, n, measured_at). The selector
uses these as the measured quality of its int8/fp16 candidates.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgebert.artifact import RECIPES, ArtifactConfig, recipes_of
from edgebert.errors import DataError, UsageError
from edgebert.model.bert import Bert, load_model
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.tokenizer import INPUT_NAMES, load_tokenizer
from edgebert.registry import CONVERTERS
from edgebert.train.data import DataSet, check_labels, load_data, to_batch

__all__ = [
    "DEFAULT_QUANTIZED",
    "measure",
    "measure_quantized",
    "score_quantized",
    "evaluate",
    "check_quantized",
    "resolve_quantized",
]

NN_LIMIT = 2000  # the nearest-neighbour check is O(n^2) in memory

# What `edgebert train` scores besides fp32 when it is not told otherwise. ONNX, because its toolchain is a
# core dependency (TFLite and ExecuTorch are optional extras) and its conversion is the quickest: one dynamo
# export plus quantize_dynamic per sub-network (MiniLM: see README "Quality per precision"). Its per-channel
# int8 is also the least faithful of the int8 routes measured on MiniLM (cosine to fp32: ORT 0.990, TFLite
# 0.9965, DESIGN.md), so its drop is not an optimistic figure for the others. Other formats: --quantized.
DEFAULT_QUANTIZED = ("onnx/int8", "onnx/fp16")


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


def _fidelity(out: torch.Tensor, full: torch.Tensor) -> float:
    return float(F.cosine_similarity(out, full, dim=-1).clamp(0, 1).mean())


@dataclass
class _Scorer:
    """The data in batches and what an output is scored against: gold labels, or the reference's embeddings."""

    data: DataSet
    batches: list
    gold: torch.Tensor | None
    full: torch.Tensor | None
    seq_len: int

    @classmethod
    def of(cls, model: Bert, data: DataSet, tokenizer, batch_size: int, seq_len: int, reference: Bert | None):
        if not len(data):
            raise DataError(f"{data.source}: no examples to evaluate on")
        classify = model.config.task == "classification"
        if classify:
            check_labels(data, model.config.labels)
        batches = _batches(model, data, tokenizer, batch_size, seq_len)
        gold = torch.cat([b["labels"] for b in batches]) if classify else None
        full = None if classify else _outputs(model if reference is None else reference, batches)
        return cls(data, batches, gold, full, min(seq_len, model.config.max_position_embeddings))

    @property
    def metric(self) -> str:
        return "accuracy" if self.gold is not None else "cosine_fidelity"

    def score(self, out: torch.Tensor) -> float:
        if self.gold is not None:
            return float((out.argmax(-1) == self.gold).float().mean())
        return _fidelity(out, self.full)


def _stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _bar(items, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="subnet", disable=not progress or not sys.stderr.isatty())


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
    `quantized` ("onnx/int8", "tflite/fp16", ...): see measure_quantized; here a failure raises."""
    quantized = check_quantized(quantized)
    specs = specs or [SubnetSpec(w, d) for d in DEPTHS for w in WIDTHS]
    scorer = _Scorer.of(model, data, tokenizer, batch_size, seq_len, reference)
    stamp = _stamp()
    table = {}
    for spec in _bar(specs, "quality", progress):
        out = _outputs(slice_model(model, spec), scorer.batches)
        entry = {"metric": scorer.metric, "data": data.name, "n": len(data), "measured_at": stamp}
        if scorer.full is not None:
            entry["nn_agreement"] = _nn_agreement(out, scorer.full)
            entry["nn_n"] = min(len(out), NN_LIMIT)
        table[spec.key] = {"score": round(scorer.score(out), 6), **entry}
    if quantized:
        _add_quantized(model, scorer, specs, quantized, table, progress, strict=True)
    return table


def measure_quantized(
    model: Bert,
    data: DataSet,
    tokenizer,
    table: dict,
    quantized: tuple[str, ...],
    specs: list[SubnetSpec] | None = None,
    *,
    batch_size: int = 64,
    seq_len: int = 128,
    progress: bool = False,
    strict: bool = True,
) -> list[dict]:
    """Add each sub-network's quantized scores to `table` (from `measure` on the same data), in place.

    Every (spec, FORMAT/RECIPE) is converted by the format's converter, run in its runtime on `data`, and
    scored as its fp32 row was. strict=False (`edgebert train`, after hours of training): a conversion that
    fails is skipped and returned as {spec, what, error} rather than raised, so the trained model is still
    written. Returns the failures."""
    quantized = check_quantized(quantized)
    specs = specs or [SubnetSpec.from_key(k) for k in table]
    scorer = _Scorer.of(model, data, tokenizer, batch_size, seq_len, None)
    return _add_quantized(model, scorer, specs, quantized, table, progress, strict)


def score_quantized(model: Bert, data: DataSet, tokenizer, table: dict, quantized, specs, seq_len: int, progress: bool):
    """After training (`train`, `compress`): measure_quantized without failing the run; what its log records."""
    t0 = time.perf_counter()
    failed = measure_quantized(model, data, tokenizer, table, quantized, specs, seq_len=seq_len, progress=progress)
    return {"scored": list(quantized), "seconds": round(time.perf_counter() - t0, 1), "failed": failed}


def _add_quantized(model, scorer: _Scorer, specs, quantized, table, progress, strict) -> list[dict]:
    failed = []
    for spec in _bar(specs, "quantized quality", progress):
        sub = slice_model(model, spec).eval()
        for what in quantized:
            t0 = time.perf_counter()
            try:
                out, runtime = _artifact_outputs(sub, what, scorer.batches, scorer.seq_len)
            except Exception as exc:  # any converter or runtime failure; KeyboardInterrupt still stops
                if strict:
                    raise
                failed.append({"spec": spec.key, "what": what, "error": f"{type(exc).__name__}: {exc}"[:500]})
                continue
            fmt, recipe = what.split("/")
            table[spec.key].setdefault("precisions", {})[what] = {
                "score": round(scorer.score(out), 6),
                "metric": scorer.metric,
                "format": fmt,
                "precision": RECIPES[recipe],
                "recipe": recipe,
                "runtime": runtime,
                "seq_len": scorer.seq_len,
                "data": scorer.data.name,
                "n": len(scorer.data),
                "measured_at": _stamp(),
                "seconds": round(time.perf_counter() - t0, 1),  # conversion and scoring
            }
    return failed


def resolve_quantized(quantized, no_quantized: bool) -> tuple[str, ...]:
    """--quantized / --no-quantized (train, compress) as the scores to take: the default ones, those given, or
    none."""
    if no_quantized and quantized:
        raise UsageError(
            "--no-quantized skips the quantized scores that --quantized asks for: give one of them, not both"
        )
    if quantized is not None and not no_quantized and not check_quantized(quantized):
        raise UsageError("--quantized names nothing: give FORMAT/PRECISION items (e.g. onnx/int8) or --no-quantized")
    return () if no_quantized else check_quantized(DEFAULT_QUANTIZED if quantized is None else quantized)


def check_quantized(quantized) -> tuple[str, ...]:
    """ "onnx/int8,tflite/fp16" (or a sequence of such) -> validated ("onnx/int8", "tflite/fp16").

    Each item is FORMAT/PRECISION (the precision's default recipe) or FORMAT/RECIPE (e.g. onnx/int8-keep-ends,
    one of the accuracy gate's recipes); the format's toolchain must be installed here."""
    items = [q.strip() for q in (quantized.split(",") if isinstance(quantized, str) else quantized or ()) if q.strip()]
    for item in items:
        fmt, _, recipe = item.partition("/")
        conv = CONVERTERS.get(fmt) if fmt in CONVERTERS.names() else None
        if conv is None or RECIPES.get(recipe, "fp32") == "fp32" or recipe not in recipes_of(conv):
            writes = {f: [r for r in recipes_of(CONVERTERS.get(f)) if RECIPES[r] != "fp32"] for f in CONVERTERS.names()}
            raise UsageError(
                f"--quantized {item!r}: give FORMAT/PRECISION or FORMAT/RECIPE that the format writes: "
                + "; ".join(f"{f}: {', '.join(r) or 'none'}" for f, r in writes.items())
                + " (e.g. onnx/int8,tflite/int8)"
            )
        missing = conv.unavailable()
        if missing is not None:
            raise UsageError(f"--quantized {item!r}: {missing}; or leave {fmt} out of --quantized")
    return tuple(dict.fromkeys(items))


def _artifact_outputs(sub: Bert, what: str, batches, seq_len: int) -> tuple[torch.Tensor, str]:
    """`sub` converted as `what` ("onnx/int8"), run in its own runtime; (outputs in batch order, runtime).

    One text at a time at its own length, as an app (edgebert.runtime) runs it: ORT's dynamic int8 quantizes
    activations per tensor, so a text's padded batch-mates change its result (measured on the Rotten
    Tomatoes w1-d1 ONNX int8: 0.8000 scored in batches of 64, 0.8075 one by one, the app's figure)."""
    fmt, recipe = what.split("/")
    conv = CONVERTERS.get(fmt)()
    outs = []
    with tempfile.TemporaryDirectory(prefix="edgebert-eval-") as tmp:
        path = Path(tmp) / ("model" + conv.suffix)
        conv.convert(sub, ArtifactConfig(fmt, RECIPES[recipe], seq_len, recipe=recipe), path)
        runtime = conv.load(path, threads=torch.get_num_threads())
        for b in batches:
            for row in range(len(b["input_ids"])):
                n = max(int(b["attention_mask"][row].sum()), 1)
                feeds = {k: b[k][row : row + 1, :n].numpy().astype(np.int64) for k in INPUT_NAMES}
                outs.append(torch.from_numpy(np.asarray(runtime(feeds), dtype=np.float32)))
    return torch.cat(outs), f"{conv.runtime} {conv.runtime_version()}"


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
    """Measure the quality table of the model in `model_dir` on `data` (a DataSet, file or built-in name).

    The sub-networks are those `edgebert train` trained (its train_config.json's widths x depths), else
    DynaBERT's whole grid: an untrained slice's score is of no use, and each costs conversions with
    `quantized`."""
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
        _trained_grid(Path(model_dir)),
        batch_size=batch_size,
        seq_len=seq_len,
        progress=progress,
        quantized=quantized,
    )


def _trained_grid(model_dir: Path) -> list[SubnetSpec] | None:
    """train_config.json's widths x depths (None: none recorded, so the whole grid)."""
    path = model_dir / "train_config.json"  # train/config.py TRAIN_CONFIG_FILE (config imports this module)
    try:
        cfg = json.loads(path.read_text())
        return [SubnetSpec(float(w), float(d)) for d in cfg["depths"] for w in cfg["widths"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
