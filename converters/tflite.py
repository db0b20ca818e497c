"""TFLite: litert-torch conversion at a static (1, seq_len) shape, ai-edge-quantizer for fp16/int8, LiteRT runtime.

TFLite files have static shapes, so the runtime wrapper below loops over batch rows and pads each
row to seq_len with attention_mask 0 (or truncates it). With sequence-length buckets (--seq-len 32,64,128)
one file holds one signature per length (seq_32, seq_64, seq_128) and each row runs in the smallest one
that fits it. LiteRT and its converters are an optional extra.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import numpy as np
from torch import nn

from edgebert._optional import require
from edgebert.artifact import ArtifactConfig, ConverterBase, ModelCard, Tolerance, bucket_signature
from edgebert.artifact import check_seq_len as check_length
from edgebert.converters._common import INPUT_NAMES, check_seq_len, example_inputs, io_facts, quiet, standard_tolerance
from edgebert.converters.tflite_metadata import write_metadata
from edgebert.errors import ModelError
from edgebert.registry import CONVERTERS

__all__ = ["TfliteConverter", "quantize_model_bytes"]

_WHAT = "TFLite export"


class _NamedOutput(nn.Module):
    """Returning a dict makes litert-torch name the signature output "embeddings"/"logits", not "output_0"."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return {self.model.output_name: self.model(input_ids, attention_mask, token_type_ids)}


def _edge_model(litert_torch, model, lengths: tuple[int, ...]):
    """One signature ("serving_default", as before buckets existed) or one per bucket, largest first: the
    first becomes subgraph 0, the one interpreters that ignore signatures run. (MediaPipe Tasks 0.10.21 refuses a
    file with more than one subgraph: export --runtime mediapipe takes one length.)"""
    wrapped = _NamedOutput(model.eval())

    def sample(n: int) -> dict:
        # Keyword samples make the signature inputs input_ids/attention_mask/token_type_ids, not args_0..
        return dict(zip(INPUT_NAMES, example_inputs(model, batch=1, seq_len=n)))

    if len(lengths) == 1:
        return litert_torch.convert(wrapped, sample_kwargs=sample(lengths[0]))
    converter = litert_torch
    for n in sorted(lengths, reverse=True):
        converter = converter.signature(bucket_signature(n), wrapped, sample_kwargs=sample(n))
    return converter.convert()


def _keep_ends_regex(layers: int) -> str:
    """The FULLY_CONNECTED ops of the first and last encoder layer and the classifier head, by output tensor
    name. litert-torch names a tensor after the module path of the ops fused into it, e.g. layer 1's query
    is "...Layer_0/...FeedForward_ffn/...LayerNorm_norm;;...Layer_1/...Linear_query;1": only a `Linear_` within
    the same `;`-separated part as `Layer_N/` belongs to layer N. Measured on the tiny test model (3 layers):
    int8 weight tensors 18 -> 6, the middle layer's."""
    ends = "|".join(sorted({f"Layer_{0}", f"Layer_{max(layers - 1, 0)}", "ClassifierHead_head"}))
    return rf"({ends})/[^;]*Linear_"


def quantize_model_bytes(float_model: bytes, precision: str, keep_ends: int | None = None) -> bytes:
    """`keep_ends`: the number of encoder layers, for the int8-keep-ends recipe (embeddings, first and last
    layer and the head stay fp32 through ai-edge-quantizer's NO_QUANTIZE, the latest matching rule winning)."""
    aeq = require("ai_edge_quantizer.quantizer", extra="tflite", what=_WHAT)
    if precision == "int8":
        recipe = require("ai_edge_quantizer.recipe", extra="tflite", what=_WHAT)
        q = aeq.Quantizer(float_model, recipe.dynamic_wi8_afp32())
        if keep_ends is not None:
            ops = aeq.qtyping.TFLOperationName
            rules = ((_keep_ends_regex(keep_ends), ops.FULLY_CONNECTED), ("Embedding_", ops.EMBEDDING_LOOKUP))
            for regex, op in rules:
                q.update_quantization_recipe(
                    regex=regex, operation_name=op, algorithm_key=aeq.AlgorithmName.NO_QUANTIZE
                )
    else:  # fp16: weights stored as float16, dequantized once at load, compute stays fp32
        qt = aeq.qtyping
        q = aeq.Quantizer(float_model)
        fp16 = qt.OpQuantizationConfig(
            weight_tensor_config=qt.TensorQuantizationConfig(num_bits=16, dtype=qt.TensorDataType.FLOAT),
            compute_precision=qt.ComputePrecision.FLOAT,
            explicit_dequantize=True,
        )
        for op in (qt.TFLOperationName.FULLY_CONNECTED, qt.TFLOperationName.EMBEDDING_LOOKUP):
            q.update_quantization_recipe(
                regex=".*", operation_name=op, op_config=fp16, algorithm_key=aeq.AlgorithmName.FLOAT_CASTING
            )
    return bytes(q.quantize(enable_progress_report=False).quantized_model)


@CONVERTERS.register("tflite")
class TfliteConverter(ConverterBase):
    suffix = ".tflite"
    precisions = ("fp32", "fp16", "int8")
    extra_recipes = ("int8-keep-ends",)
    dynamic_shapes = False
    runtime = "ai-edge-litert"
    # int8 also quantizes the embedding tables (measured: vocab 30522 x 384 shrinks 54.8 MB to ~14 MB);
    # fp16 weights are held as fp32 by the runtime (MiniLM fp16 162 MB vs fp32 166 MB peak on host).
    quantizes_embeddings = True
    runtime_weight_precision = {"fp16": "fp32"}
    # File size (select/costs.py): TFLite's QuantizationParameters hold a float32 scale and an int64 zero
    # point per channel; every tensor and operator has its own record and name; describe() packs the vocab
    # (MiniLM's: 231,508 bytes for 30,522 tokens). Without them the predicted size of a rank-64 w0.5 int8
    # export was 12 % low (5.87 MB predicted, 6.57 MB written). benchmarks/file_size.py measures the rest.
    int8_channel_bytes = 12
    graph_bytes_per_layer = 16_000
    vocab_bytes_per_token = 8

    def convert(self, model, config: ArtifactConfig, path: Path) -> dict:
        seq_len = check_seq_len(model, config)
        for n in config.buckets:
            check_length(n, model.config.max_position_embeddings)
        with quiet():  # importing it prints TensorFlow/absl start-up chatter
            litert_torch = require("litert_torch", extra="tflite", what=_WHAT)
        with quiet():
            edge = _edge_model(litert_torch, model, config.lengths)
            content = edge.model_content() if callable(edge.model_content) else edge.model_content
            keep = len(model.layers) if config.recipe == "int8-keep-ends" else None
            content = (
                bytes(content)
                if config.precision == "fp32"
                else quantize_model_bytes(bytes(content), config.precision, keep)
            )
        Path(path).write_bytes(content)
        facts = io_facts(model, 1, seq_len, int_dtype="int32")
        facts["notes"] = [
            f"static shape (1, {seq_len}): the runtime loops over batch rows and pads with attention_mask 0",
            "inputs are int32 (LiteRT has no int64 inputs)",
        ]
        if config.precision == "int8":
            facts["notes"].append(
                "int8: ai-edge-quantizer dynamic_wi8_afp32 (per-channel int8 weights, activations "
                "quantized per row at run time)"
                + ("; embeddings and the first and last layer kept fp32" if keep is not None else "")
            )
        elif config.precision == "fp16":
            facts["notes"].append("fp16: float16 weights (FULLY_CONNECTED, EMBEDDING_LOOKUP), float32 compute")
        if config.buckets:
            facts["buckets"] = [
                {"signature": bucket_signature(n), "seq_len": n, "inputs": io_facts(model, 1, n, "int32")["inputs"]}
                for n in config.buckets
            ]
            facts["notes"].append(
                f"one signature per sequence length ({', '.join(bucket_signature(n) for n in config.buckets)}), "
                f"sharing weights; {bucket_signature(seq_len)} is subgraph 0, the one interpreters without "
                "signature support run (MediaPipe Tasks 0.10.21 refuses files with several subgraphs)"
            )
        return facts

    def describe(self, path: Path, card: ModelCard) -> dict:
        """TFLite metadata with the WordPiece vocab and labels packed in: MediaPipe's TextEmbedder and
        TextClassifier (and the TFLite Task Library) then load the file with no tokenizer code in the app."""
        return write_metadata(path, card)

    def load(self, path: Path, threads: int = 1, signature: str | None = None):
        return _LiteRtRuntime(Path(path), threads, signature)

    def tolerance(self, precision: str) -> Tolerance:
        return standard_tolerance(precision)

    def runtime_version(self) -> str:
        try:
            return metadata.version("ai-edge-litert")
        except metadata.PackageNotFoundError:
            return "not installed"


def _canonical_name(signature_name: str) -> str:
    """Map a signature input name onto a canonical input, by name; `args_N` (positional export) -> Nth input."""
    if signature_name in INPUT_NAMES:
        return signature_name
    positional = re.fullmatch(r"args_(\d+)", signature_name)
    if positional and int(positional.group(1)) < len(INPUT_NAMES):
        return INPUT_NAMES[int(positional.group(1))]
    raise ModelError(
        f"TFLite input {signature_name!r} is not one of {', '.join(INPUT_NAMES)}; was this file made by edgebert?"
    )


def _fit(row: np.ndarray, length: int) -> np.ndarray:
    if row.shape[1] >= length:
        return row[:, :length]
    return np.pad(row, ((0, 0), (0, length - row.shape[1])))  # zeros: padding token, mask 0, type 0


class _Signature:
    """One signature of the file: its runner, static length, and input names by canonical name."""

    def __init__(self, interpreter, key: str):
        self.key = key
        self.runner = interpreter.get_signature_runner(key)
        details = self.runner.get_input_details()
        self.inputs = {_canonical_name(name): (name, d["dtype"]) for name, d in details.items()}
        self.seq_len = int(next(iter(details.values()))["shape"][1])
        self.output_name = next(iter(self.runner.get_output_details()))


class _LiteRtRuntime:
    """`signature` None: every signature of the file, each row run in the smallest that holds its tokens."""

    def __init__(self, path: Path, threads: int, signature: str | None = None):
        litert = require("ai_edge_litert.interpreter", extra="tflite", what="running TFLite artifacts")
        self.interpreter = litert.Interpreter(model_path=str(path), num_threads=threads)
        keys = list(self.interpreter.get_signature_list())
        if signature is not None and signature not in keys:
            raise ModelError(f"{path} has no signature {signature!r} (it has {', '.join(keys)})")
        self._signatures = sorted(
            (_Signature(self.interpreter, k) for k in ([signature] if signature else keys)), key=lambda s: s.seq_len
        )
        self.seq_len = self._signatures[-1].seq_len
        self._runner, self.output_name = self._signatures[-1].runner, self._signatures[-1].output_name
        with quiet():  # the first run applies XNNPACK and prints "Created TensorFlow Lite XNNPACK delegate"
            for sig in self._signatures:
                self._run(sig, {name: np.zeros((1, 1), np.int64) for name in INPUT_NAMES})

    def _pick(self, n_tokens: int) -> _Signature:
        return next((s for s in self._signatures if s.seq_len >= n_tokens), self._signatures[-1])

    def _run(self, sig: _Signature, row: dict[str, np.ndarray]) -> np.ndarray:
        args = {
            name: _fit(np.asarray(row[canon]), sig.seq_len).astype(dtype) for canon, (name, dtype) in sig.inputs.items()
        }
        return sig.runner(**args)[sig.output_name]

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        rows = []
        for b in range(np.asarray(feeds["input_ids"]).shape[0]):
            row = {canon: np.asarray(feeds[canon])[b : b + 1] for canon in INPUT_NAMES}
            rows.append(self._run(self._pick(int(row["attention_mask"].sum())), row))
        return np.concatenate(rows).astype(np.float32, copy=False)
