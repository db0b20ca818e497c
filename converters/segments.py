"""Early-exit segments on disk: one graph per segment, written per format.

A segment is a plain nn.Module (export/segments.py builds them, `build(model)`) whose inputs all have shape
[batch, sequence, ...]. ONNX: one file per segment, dynamic batch and sequence. TorchScript: one traced, frozen
file per segment. TFLite: one file holding one signature per segment, static (1, seq_len) like the
plain TFLite artifact, and with sequence-length buckets one more per segment per smaller bucket. Precisions
are the plain converters' own recipes, applied per segment: ONNX int8 =
ORT dynamic per-channel int8 with the outlier channels kept fp32, ONNX fp16 = float16 weights and compute
with float32 I/O (so the hidden state passed between segments stays float32); TFLite int8/fp16 =
ai-edge-quantizer on the multi-signature file. Each writer returns the file names it wrote; verification
happens in export/segments.py through edgebert.runtime, the code `edgebert predict` runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from edgebert._optional import require
from edgebert.artifact import segment_signature
from edgebert.converters._common import quiet
from edgebert.converters.onnx import dynamic_proto, fp16_proto, quantize_int8_proto, split_for_int8
from edgebert.converters.tflite import quantize_model_bytes
from edgebert.registry import SEGMENT_WRITERS

__all__ = ["write_onnx", "write_torchscript", "write_tflite"]


@SEGMENT_WRITERS.register("onnx")
def write_onnx(model, build, examples, folder: Path, max_len: int, precision: str = "fp32") -> list[str]:
    import onnx

    # int8 exports the model with its outlier channels split out (same function), as the plain int8 file.
    segments, names = build(split_for_int8(model)[0] if precision == "int8" else model)
    files = []
    for k, (seg, example, (inputs, outputs)) in enumerate(zip(segments, examples, names), start=1):
        files.append(f"segment_{k}.onnx")
        proto = dynamic_proto(seg, example, inputs, outputs, max_len)
        if precision == "int8":
            quantize_int8_proto(proto, folder / files[-1])
            continue
        onnx.save(fp16_proto(proto) if precision == "fp16" else proto, str(folder / files[-1]))
    return files


@SEGMENT_WRITERS.register("torchscript")
def write_torchscript(model, build, examples, folder: Path, max_len: int, precision: str = "fp32") -> list[str]:
    if precision != "fp32":
        raise ValueError(f"TorchScript segments are fp32 only, got {precision}")  # resolved by the caller
    segments, names = build(model)
    files = []
    for k, (seg, example, (inputs, _)) in enumerate(zip(segments, examples, names), start=1):
        with quiet(), torch.no_grad():
            frozen = torch.jit.freeze(torch.jit.trace(seg.eval(), example, check_trace=False).eval())
        files.append(f"segment_{k}.pt")
        # What each input is, for the bench script (a traced file keeps names, not shapes or dtypes).
        described = [_input_spec(n, t) for n, t in zip(inputs, example)]
        torch.jit.save(frozen, str(folder / files[-1]), _extra_files={INPUTS_FILE: json.dumps(described)})
    return files


INPUTS_FILE = "edgebert_inputs.json"


def _input_spec(name: str, example: torch.Tensor) -> dict:
    shape = ["batch", "sequence"] + list(example.shape[2:])
    return {"name": name, "dtype": "float32" if example.is_floating_point() else "int64", "shape": shape}


class _Named(torch.nn.Module):
    """Dict outputs make litert-torch name the signature outputs (hidden, logits), not output_0.."""

    def __init__(self, seg, outputs):
        super().__init__()
        self.seg, self.outputs = seg, tuple(outputs)

    def forward(self, **kw):
        out = self.seg(**kw)
        out = out if isinstance(out, tuple) else (out,)
        return dict(zip(self.outputs, out))


@SEGMENT_WRITERS.register("tflite")
def write_tflite(
    model, build, examples, folder: Path, max_len: int, precision: str = "fp32", buckets: dict | None = None
) -> list[str]:
    """`buckets` {seq_len: examples} adds a signature per segment per smaller sequence-length bucket
    (segment_K_seq_N), sharing the weights; segment_K at the examples' length come first (subgraphs 0..)."""
    segments, names = build(model)
    with quiet():
        litert_torch = require("litert_torch", extra="tflite", what="TFLite early-exit segments")
    converter = None
    lengths = [(None, examples)] + sorted((buckets or {}).items(), reverse=True)
    for n, bucket_examples in lengths:
        for k, (seg, example, (inputs, outputs)) in enumerate(zip(segments, bucket_examples, names), start=1):
            # Static (1, seq_len): the runtime pads each input; int token inputs become int32 as in the plain file.
            sample = {
                i: (t[:1].to(torch.int32) if not t.is_floating_point() else t[:1]) for i, t in zip(inputs, example)
            }
            wrapped = _Named(_Int32(seg), outputs).eval()
            converter = (litert_torch if converter is None else converter).signature(
                segment_signature(k, n), wrapped, sample_kwargs=sample
            )
    with quiet():
        edge = converter.convert()
        content = edge.model_content() if callable(edge.model_content) else edge.model_content
        content = bytes(content) if precision == "fp32" else quantize_model_bytes(bytes(content), precision)
    (folder / "segments.tflite").write_bytes(content)
    return ["segments.tflite"]


class _Int32(torch.nn.Module):
    """LiteRT has no int64 inputs: take int32 and widen inside the graph."""

    def __init__(self, seg):
        super().__init__()
        self.seg = seg

    def forward(self, **kw):
        return self.seg(**{k: (v if v.is_floating_point() else v.long()) for k, v in kw.items()})
