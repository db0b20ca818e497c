"""The model card in early-exit segment files, as the plain artifacts carry it (converters/onnx.py, tflite.py).

ONNX: each segment_K.onnx gets the plain file's metadata_props, with the segment's own inputs and outputs and
its place in the chain (edgebert.segment "K/N", edgebert.exit_layer). TFLite: segments.tflite gets TFLite
metadata with one SubGraphMetadata per signature (segment_1 ...): the first names the token inputs as MediaPipe
does and carries the WordPiece tokenizer, every exit's logits carry the labels file, and vocab.txt and
labels.txt are packed into the file once. TorchScript has no metadata slot apps read (as for model.pt).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgebert.artifact import ModelCard
from edgebert.converters.onnx import metadata_props
from edgebert.converters.tflite_metadata import write_segments_metadata
from edgebert.registry import SEGMENT_DESCRIBERS

__all__ = ["describe_onnx", "describe_tflite"]


@SEGMENT_DESCRIBERS.register("onnx")
def describe_onnx(folder: Path, files: list[str], card: ModelCard, segments: list[dict]) -> list[dict]:
    import onnx

    described = []
    for k, (name, seg) in enumerate(zip(files, segments), start=1):
        path = Path(folder) / name
        model = onnx.load(str(path))
        props = {
            **metadata_props(card),
            "edgebert.segment": f"{k}/{len(segments)}",
            "edgebert.exit_layer": str(seg["exit_layer"]),
            "edgebert.inputs": json.dumps([t["name"] for t in seg["inputs"]]),
            "edgebert.outputs": json.dumps([t["name"] for t in seg["outputs"]]),
            "edgebert.output_kind": "classification",  # every exit gives class logits
            "edgebert.output_name": "logits",
        }
        keep = [p for p in model.metadata_props if p.key not in props]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)
        for key, value in props.items():
            model.metadata_props.add(key=key, value=value)
        model.doc_string = f"{card.description} Early-exit segment {k} of {len(segments)}."
        onnx.save(model, str(path))
        described.append({"kind": "onnx-metadata_props", "props": props})
    return described


@SEGMENT_DESCRIBERS.register("tflite")
def describe_tflite(folder: Path, files: list[str], card: ModelCard, segments: list[dict]) -> list[dict]:
    return [write_segments_metadata(Path(folder) / name, card) for name in files]
