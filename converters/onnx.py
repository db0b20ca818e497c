"""ONNX: torch.onnx dynamo export (opset 20, dynamic batch and sequence), run with ONNX Runtime.

Measured on MiniLM (seq 128, 1 thread): saving an ORT-optimised graph gains nothing at run time (ORT
applies the same passes when it loads the file, ~35 ms either way, session creation 165 vs 142 ms),
and the "extended" level writes com.microsoft fused ops other runtimes cannot read. So the artifact is
the plain exporter output. Every precision is byte-identical across runs of the same model in the
same checkout; the node stack traces hold its absolute paths, which `normalise` (edgebert build) drops.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from edgebert.artifact import ArtifactConfig, ConverterBase, ModelCard, Tolerance
from edgebert.converters._common import (
    INPUT_NAMES,
    check_seq_len,
    example_inputs,
    io_facts,
    quiet,
    split_outlier_channels,
    standard_tolerance,
)
from edgebert.registry import CONVERTERS

__all__ = ["OnnxConverter", "metadata_props", "dynamic_proto", "fp16_proto", "quantize_int8_proto", "split_for_int8"]

OPSET = 20
_STACK_TRACE = "pkg.torch.onnx.stack_trace"
_MAX_OUTLIERS = 8  # per layer: a handful of channels carry the outliers in BERTs
_ORT_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}


def export_proto(model, seq_len: int):
    """The fp32 graph as an onnx.ModelProto, with symbolic "batch" and "sequence" axes."""
    example = example_inputs(model, batch=2, seq_len=min(seq_len, 16))
    return dynamic_proto(model, example, INPUT_NAMES, [model.output_name], model.config.max_position_embeddings)


def dynamic_proto(module, example, input_names, output_names, max_len: int):
    """torch.onnx's dynamo export of `module` with every input's axes 0/1 symbolic (batch, sequence)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim("sequence", min=1, max=max_len)
    with quiet():
        program = torch.onnx.export(
            module.eval(),
            example,
            dynamo=True,
            opset_version=OPSET,
            verbose=False,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_shapes={name: {0: batch, 1: sequence} for name in input_names},
        )
    return program.model_proto


def _drop_initializer_value_info(proto) -> None:
    # The dynamo exporter annotates initializers in value_info; ORT's quantizer then fails shape
    # inference with a ShapeInferenceError (measured), so those entries go first.
    initializers = {t.name for t in proto.graph.initializer}
    keep = [v for v in proto.graph.value_info if v.name not in initializers]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(keep)


def _keep_ends(proto, weights: dict, side: list[str], layers: int) -> list[str]:
    """Nodes that int8-keep-ends leaves fp32: the embedding Gathers and the weight MatMuls of the first and
    the last encoder layer (and any head after it). Every layer has six weight MatMuls (q, k, v, out, up,
    down), exported in module order; outlier side products are not among them."""
    gathers = [n.name for n in proto.graph.node if n.op_type == "Gather" and n.input[0] in weights]
    main = [n.name for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in weights and n.name not in side]
    return gathers + main[:6] + main[6 * max(layers - 1, 1) :]


def _quantize_int8(model, seq_len: int, path: Path, keep_ends: bool = False) -> str:
    # Measured on MiniLM (min / mean cosine over the verify inputs): plain per-channel dynamic int8
    # 0.962 / 0.987 -- short sentences batched with long ones suffer most; with outlier channels split
    # out 0.988 / 0.996, at the same latency.
    split, n_channels = split_outlier_channels(model, max_channels=_MAX_OUTLIERS)
    n_side, kept = quantize_int8_proto(export_proto(split, seq_len), path, len(model.layers) if keep_ends else None)
    ends = f"; embeddings and the first and last layer ({kept} nodes) kept fp32" if keep_ends else ""
    return (
        f"int8: ORT dynamic quantization, per-channel int8 weights, activations quantized per tensor at run "
        f"time; {n_channels} outlier input channels (in {n_side} linear layers) bypass int8 in fp32{ends}"
    )


def split_for_int8(model):
    """(the model with its outlier input channels routed around int8, channels split): what int8 graphs export."""
    return split_outlier_channels(model, max_channels=_MAX_OUTLIERS)


def quantize_int8_proto(proto, path: Path, keep_ends_layers: int | None = None) -> tuple[int, int]:
    """ORT dynamic per-channel int8 of an fp32 graph exported from a `split_for_int8` model, written to `path`;
    the outlier side products stay fp32 (and with `keep_ends_layers`, the embeddings and end layers).
    Returns (side MatMuls kept fp32, end nodes kept fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _drop_initializer_value_info(proto)
    weights = {t.name: t for t in proto.graph.initializer}
    # The outlier side products are the MatMuls whose weight has at most _MAX_OUTLIERS input rows.
    side = [
        n.name
        for n in proto.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in weights
        and len(weights[n.input[1]].dims) == 2
        and weights[n.input[1]].dims[0] <= _MAX_OUTLIERS
    ]
    kept = _keep_ends(proto, weights, side, keep_ends_layers) if keep_ends_layers else []
    with quiet():
        quantize_dynamic(proto, path, per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=side + kept)
    return len(side), len(kept)


def fp16_proto(proto):
    """Weights and compute in float16; inputs and outputs keep their types (int64 / float32)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with quiet():
        return convert_float_to_float16(proto, keep_io_types=True)


@CONVERTERS.register("onnx")
class OnnxConverter(ConverterBase):
    suffix = ".onnx"
    precisions = ("fp32", "fp16", "int8")
    extra_recipes = ("int8-keep-ends",)
    dynamic_shapes = True
    runtime = "onnxruntime"
    # int8 also quantizes the embedding tables (measured: vocab 30522 x 384 shrinks 54.8 MB to ~14 MB);
    # fp16 weights are held as fp32 by the runtime (MiniLM fp16 162 MB vs fp32 166 MB peak on host).
    quantizes_embeddings = True
    runtime_weight_precision = {"fp16": "fp32"}
    # File size (select/costs.py): node and initializer records per layer (benchmarks/file_size.py: without
    # them a 6-layer file was 1-2 % larger than predicted). ORT quantizes per tensor: no per-channel bytes.
    graph_bytes_per_layer = 20_000

    def convert(self, model, config: ArtifactConfig, path: Path) -> dict:
        import onnx

        check_seq_len(model, config)
        path = Path(path)
        notes = []
        if config.precision == "int8":
            notes.append(_quantize_int8(model, config.seq_len, path, keep_ends=config.recipe == "int8-keep-ends"))
        else:
            proto = export_proto(model, config.seq_len)
            if config.precision == "fp16":
                proto = fp16_proto(proto)
                notes.append(
                    "fp16: weights and compute in float16, inputs/outputs stay int64/float32; ORT's CPU "
                    "provider inserts casts for ops without fp16 kernels, so fp16 is for size, not CPU speed"
                )
            onnx.save(proto, str(path))
        facts = io_facts(model, "batch", "sequence")
        facts["notes"] = notes + [
            f"opset {OPSET}, dynamic batch and sequence (1..{model.config.max_position_embeddings})"
        ]
        return facts

    def describe(self, path: Path, card: ModelCard) -> dict:
        """The card in the model's metadata_props (ORT: session.get_modelmeta().custom_metadata_map)."""
        import onnx

        model = onnx.load(str(path))
        props = metadata_props(card)
        keep = [p for p in model.metadata_props if p.key not in props]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)
        for key, value in props.items():
            model.metadata_props.add(key=key, value=value)
        model.doc_string = card.description
        onnx.save(model, str(path))
        return {"kind": "onnx-metadata_props", "props": props}

    def load(self, path: Path, threads: int = 1, signature: str | None = None):
        return _OrtRuntime(Path(path), threads)  # one dynamic graph serves every length: no signatures

    def normalise(self, src: Path, dst: Path) -> str:
        """Write `src` to `dst` without what varies between build machines; say what changed (build)."""
        _strip_stack_traces(src, dst)
        return "node stack traces (paths of the build machine) dropped"

    def tolerance(self, precision: str) -> Tolerance:
        return standard_tolerance(precision)

    def runtime_version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__


def metadata_props(card: ModelCard) -> dict[str, str]:
    """The same facts the .tflite carries in its TFLite metadata; the vocabulary stays beside the file."""
    return {
        "edgebert.name": card.name,
        "edgebert.version": card.version,
        "edgebert.output_kind": "classification" if card.task == "classification" else "feature_vector",
        "edgebert.output_name": card.output_name,
        "edgebert.labels": json.dumps(list(card.labels)),
        "edgebert.tokenizer": "bert_wordpiece" if card.vocab else "none",
        "edgebert.tokenizer_lowercase": str(card.lowercase).lower(),
        "edgebert.vocab_file": card.vocab_file if card.vocab else "",
        "edgebert.vocab_size": str(len(card.vocab)),
        "edgebert.inputs": json.dumps(list(INPUT_NAMES)),
    }


def _strip_stack_traces(src: Path, dst: Path) -> None:
    """Drop the per-node `pkg.torch.onnx.stack_trace` metadata of a torch.onnx (dynamo) export.

    It holds the Python stack of every traced op: absolute paths of the installed edgebert (another
    checkout, venv or Python patch release gives other bytes) and its line numbers. Only debugging
    tools read it; the graph, the weights and the other metadata are kept as they are.
    """
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ValueError("the model keeps its weights in an external file")

    def strip(nodes) -> None:
        for node in nodes:
            keep = [p for p in node.metadata_props if p.key != _STACK_TRACE]
            if len(keep) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(keep)
            for attr in node.attribute:
                for graph in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
                    strip(graph.node)

    strip(model.graph.node)
    for function in model.functions:
        strip(function.node)
    Path(dst).write_bytes(model.SerializeToString())


class _OrtRuntime:
    """Canonical int64 feeds in, float32 [batch, dim] out; casts to whatever the graph declares."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initializers etc. are not the user's problem
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [(i.name, _ORT_DTYPES.get(i.type, np.int64)) for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        run_feeds = {name: np.asarray(feeds[name], dtype=dtype) for name, dtype in self._inputs}
        return np.asarray(self.session.run([self.output_name], run_feeds)[0], dtype=np.float32)
