"""TFLite model metadata (the format MediaPipe Tasks and the TFLite Task Library read), written by edgebert.

No TensorFlow or MediaPipe needed: facts taken from the published schema (`metadata_schema.fbs`, schema 1.5.0,
file identifier "M001") and from how its reference populator stores it:

- the ModelMetadata flatbuffer sits in a new model buffer, named by a `TFLITE_METADATA` entry in the model's
  metadata list (an existing one is replaced);
- associated files (vocab.txt, labels.txt) follow the model flatbuffer as a zip archive of *stored*
  (uncompressed) entries: the on-device extractor reads them in place.

MediaPipe's BERT preprocessing finds the three inputs by their metadata names `ids`, `mask`, `segment_ids`
and the WordPiece vocabulary through the BertTokenizerOptions process unit of the subgraph's inputs.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from edgebert._optional import require
from edgebert.artifact import ModelCard
from edgebert.converters._common import INPUT_NAMES
from edgebert.errors import ModelError

__all__ = [
    "METADATA_NAME",
    "write_metadata",
    "write_segments_metadata",
    "read_metadata",
    "metadata_flatbuffer",
    "summary",
    "packed_file",
]

METADATA_NAME = b"TFLITE_METADATA"
_IDENTIFIER = b"M001"
# Largest schema version among the fields written: BertTokenizerOptions and input_process_units (1.1.0).
_MIN_PARSER_VERSION = "1.1.0"
# Enum values of the schema.
_VOCABULARY, _TENSOR_AXIS_LABELS = 5, 2
_FEATURE_PROPERTIES = 1  # ContentProperties
_BERT_TOKENIZER = 4  # ProcessUnitOptions
# Metadata names MediaPipe's BERT preprocessor looks the inputs up by, in edgebert's input order.
_INPUT_METADATA = {
    "input_ids": ("ids", "Tokenized ids of the input text (WordPiece, [CLS] ... [SEP]), padded with 0."),
    "attention_mask": ("mask", "1 for real tokens, 0 for padding."),
    "token_type_ids": ("segment_ids", "0 for the first sentence, 1 for the second of a pair."),
}
# Early-exit segments (export/segments.py): the tensors that are not the tokenized text.
_SEGMENT_TENSORS = {
    "hidden": "Hidden states [1, sequence, hidden] from the previous segment's hidden_out.",
    "hidden_out": "Hidden states after this segment's layer: the next segment's `hidden` input.",
}
_INLINE_LIMIT = 2**31 - 2**26  # flatbuffers address 2 GB; leave room for the graph itself
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same model gives the same bytes


def _fb():
    """flatbuffers and LiteRT's generated TFLite schema come with the `tflite` extra."""
    return (
        require("flatbuffers", extra="tflite", what="TFLite metadata"),
        require("ai_edge_litert.schema_py_generated", extra="tflite", what="TFLite metadata"),
    )


class _Writer:
    """A thin layer over flatbuffers.Builder: tables are (slot -> offset) and (slot -> byte) maps."""

    def __init__(self):
        self.b = _fb()[0].Builder(1024)

    def string(self, text: str | None):
        return None if text is None else self.b.CreateString(text)

    def vector(self, offsets: list):
        self.b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def table(self, slots: int, refs: dict | None = None, small: dict | None = None):
        self.b.StartObject(slots)
        for slot, off in (refs or {}).items():
            if off is not None:
                self.b.PrependUOffsetTRelativeSlot(slot, off, 0)
        for slot, value in (small or {}).items():
            self.b.PrependUint8Slot(slot, value, 0)
        return self.b.EndObject()

    def associated_file(self, name: str, description: str, kind: int):
        # AssociatedFile: name 0, description 1, type 2, locale 3, version 4
        return self.table(5, {0: self.string(name), 1: self.string(description)}, {2: kind})

    def tensor(self, name: str, description: str, files: list | None = None):
        # TensorMetadata: name 0, description 1, dimension_names 2, content 3, process_units 4, stats 5,
        # associated_files 6. Content: content_properties_type 0, content_properties 1, range 2.
        feature = self.table(0)
        content = self.table(3, {1: feature}, {0: _FEATURE_PROPERTIES})
        refs = {0: self.string(name), 1: self.string(description), 3: content}
        if files:
            refs[6] = self.vector(files)
        return self.table(7, refs)


def metadata_flatbuffer(card: ModelCard, input_order: list[str], subgraphs: list | None = None) -> bytes:
    """The ModelMetadata flatbuffer for `card`; `input_order` is the model's subgraph inputs (canonical names).

    `subgraphs`: [(signature name, input order)] for a file with one subgraph per sequence-length bucket,
    in subgraph order (replaces input_order); each gets its own SubGraphMetadata with the tokenizer."""
    w = _Writer()
    graphs = [_subgraph(w, card, name, order) for name, order in (subgraphs or [(card.name, input_order)])]
    return _finish(w, card, graphs)


def _finish(w: _Writer, card: ModelCard, graphs: list) -> bytes:
    # ModelMetadata: name 0, description 1, version 2, subgraph_metadata 3, author 4, license 5,
    # associated_files 6, min_parser_version 7
    root = w.table(
        8,
        {
            0: w.string(card.name),
            1: w.string(card.description),
            2: w.string(card.version),
            3: w.vector(graphs),
            4: w.string("edgebert"),
            7: w.string(_MIN_PARSER_VERSION),
        },
    )
    w.b.Finish(root, file_identifier=_IDENTIFIER)
    return bytes(w.b.Output())


def _tokenizer_units(w: _Writer, card: ModelCard) -> list:
    units = []
    if card.vocab:
        vocab = w.associated_file(
            card.vocab_file, "WordPiece vocabulary, one token per line, in id order.", _VOCABULARY
        )
        bert = w.table(1, {0: w.vector([vocab])})  # BertTokenizerOptions: vocab_file 0
        units.append(w.table(2, {1: bert}, {0: _BERT_TOKENIZER}))  # ProcessUnit: options_type 0, options 1
    return units


def _labels_file(w: _Writer, card: ModelCard):
    return w.associated_file(card.labels_file, "Class names, one per line, in logit order.", _TENSOR_AXIS_LABELS)


def _subgraph(w: _Writer, card: ModelCard, name: str, input_order: list[str]):
    units = _tokenizer_units(w, card)
    inputs = [w.tensor(*_INPUT_METADATA[name]) for name in input_order]
    if card.task == "classification":
        output = w.tensor(card.output_name, "Class logits (before softmax), one per label.", [_labels_file(w, card)])
    else:
        output = w.tensor(card.output_name, "Sentence embedding: token states mean-pooled over the attention mask.")
    # SubGraphMetadata: name 0, description 1, input_tensor_metadata 2, output_tensor_metadata 3,
    # associated_files 4, input_process_units 5, ...
    return _subgraph_table(w, name, inputs, [output], units)


def _subgraph_table(w: _Writer, name: str, inputs: list, outputs: list, units: list, description: str | None = None):
    sub_refs = {0: w.string(name), 1: w.string(description), 2: w.vector(inputs), 3: w.vector(outputs)}
    if units:
        sub_refs[5] = w.vector(units)
    return w.table(10, sub_refs)


def _segment_subgraph(w: _Writer, card: ModelCard, key: str, k: int, inputs: list[str], outputs: list[str]):
    """One early-exit segment's signature: token inputs as MediaPipe names them (and the tokenizer) in the
    first; `hidden` in the others; outputs `hidden_out` (but the last) and the exit's `logits` with labels."""
    units = _tokenizer_units(w, card) if "input_ids" in inputs else []
    tensors = [
        w.tensor(*_INPUT_METADATA[n]) if n in _INPUT_METADATA else w.tensor(n, _SEGMENT_TENSORS.get(n, n))
        for n in inputs
    ]
    outs = [
        w.tensor(n, f"Exit {k} class logits (before softmax), one per label.", [_labels_file(w, card)])
        if n == "logits"
        else w.tensor(n, _SEGMENT_TENSORS.get(n, n))
        for n in outputs
    ]
    what = "the tokenized text" if units else "the previous segment's hidden states"
    return _subgraph_table(w, key, tensors, outs, units, f"Early-exit segment {k}: layer {k} from {what}.")


def _associated_files(card: ModelCard) -> dict[str, bytes]:
    files = {}
    if card.vocab:
        files[card.vocab_file] = ("\n".join(card.vocab) + "\n").encode()
    if card.task == "classification":
        files[card.labels_file] = ("\n".join(card.labels) + "\n").encode()
    return files


def write_metadata(path: Path, card: ModelCard) -> dict:
    """Put `card` into the .tflite at `path` (in place); return a summary for the manifest."""

    def build(model) -> bytes:
        orders = [[_canonical(g.tensors[i].name.decode()) for i in g.inputs] for g in model.subgraphs]
        subgraphs = None
        if len(orders) > 1:  # sequence-length buckets: one subgraph per signature
            keys = {sd.subgraphIndex: sd.signatureKey.decode() for sd in model.signatureDefs or []}
            subgraphs = [(keys.get(i, f"subgraph {i}"), order) for i, order in enumerate(orders)]
        return metadata_flatbuffer(card, orders[0], subgraphs)

    return _rewrite(path, card, build)


def write_segments_metadata(path: Path, card: ModelCard) -> dict:
    """The early-exit segments file (one signature per segment, segment_1 ..., and segment_K_seq_N per smaller
    sequence-length bucket): a SubGraphMetadata each, named by its signature's input and output names, with the
    vocab and labels packed in once."""

    def build(model) -> bytes:
        w = _Writer()
        graphs = []
        for sd in sorted(model.signatureDefs, key=lambda sd: sd.subgraphIndex):
            g = model.subgraphs[sd.subgraphIndex]
            ins = {t.tensorIndex: t.name.decode() for t in sd.inputs}
            outs = {t.tensorIndex: t.name.decode() for t in sd.outputs}
            key = sd.signatureKey.decode()
            k = int(key.split("_")[1])  # segment_K, or segment_K_seq_N in a smaller sequence-length bucket
            graphs.append(_segment_subgraph(w, card, key, k, [ins[i] for i in g.inputs], [outs[i] for i in g.outputs]))
        return _finish(w, card, graphs)

    return _rewrite(path, card, build)


def _rewrite(path: Path, card: ModelCard, build) -> dict:
    """Inline the buffers, put the metadata `build(model)` returns into the model, pack the associated files."""
    flatbuffers, schema = _fb()
    path = Path(path)
    raw = path.read_bytes()
    before = len(raw)
    model = schema.ModelT.InitFromPackedBuf(_model_part(raw), 0)
    # ai-edge-quantizer stores weights after the flatbuffer (Buffer.offset/size, from the start of the file).
    # MediaPipe 0.10.21's bundled TFLite cannot read that layout (measured: every quantized file failed with
    # "Input tensor 68 to op 1 (EMBEDDING_LOOKUP) is not produced"), so they move into the flatbuffer, as
    # the TFLite converter writes them, unless that would pass the flatbuffer's 2 GB limit.
    blobs = {i: raw[b.offset : b.offset + b.size] for i, b in enumerate(model.buffers or []) if b.offset}
    if sum(map(len, blobs.values())) + before < _INLINE_LIMIT:
        for i, blob in blobs.items():
            model.buffers[i].data, model.buffers[i].offset, model.buffers[i].size = np.frombuffer(blob, np.uint8), 0, 0
        blobs = {}
    meta = np.frombuffer(build(model), dtype=np.uint8)
    entries = [m for m in model.metadata or [] if m.name != METADATA_NAME]
    existing = [m for m in model.metadata or [] if m.name == METADATA_NAME]
    if existing:
        model.buffers[existing[0].buffer].data = meta
    else:
        model.buffers.append(schema.BufferT(data=meta))
        entries.append(schema.MetadataT(name=METADATA_NAME, buffer=len(model.buffers) - 1))
    model.metadata = entries + existing
    out = io.BytesIO(_pack(flatbuffers, model, blobs, before + len(meta)))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in _associated_files(card).items():
            zf.writestr(zipfile.ZipInfo(name, date_time=_ZIP_TIME), data)
    path.write_bytes(out.getvalue())
    return summary(read_metadata(path), bytes_added=len(out.getvalue()) - before)


def _pack(flatbuffers, model, blobs: dict[int, bytes], size_hint: int) -> bytes:
    """The model flatbuffer, followed by the buffers kept outside it (each 64-byte aligned, as XNNPACK likes)."""

    def flatbuffer() -> bytes:
        builder = flatbuffers.Builder(min(size_hint, 1 << 30) + 4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    if not blobs:
        return flatbuffer()
    for i in blobs:  # a placeholder of the same width: the second packing has the same length
        model.buffers[i].offset = 1
    length = len(flatbuffer())
    layout, pos = [], _aligned(length)
    for i, blob in blobs.items():
        model.buffers[i].offset, model.buffers[i].size = pos, len(blob)
        layout.append((pos, blob))
        pos = _aligned(pos + len(blob))
    out = bytearray(flatbuffer())
    if len(out) != length:
        raise AssertionError("re-packing the TFLite flatbuffer changed its length")
    for pos, blob in layout:
        out += bytes(pos - len(out)) + blob
    return bytes(out)


def _aligned(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to


def summary(meta: dict, **extra) -> dict:
    """The manifest's short form of read_metadata's answer."""
    return {
        "kind": "tflite-metadata",
        **extra,
        "name": meta.get("name"),
        "version": meta.get("version"),
        "inputs": [t["name"] for t in meta.get("inputs", [])],
        "outputs": [t["name"] for t in meta.get("outputs", [])],
        "tokenizer": next((u for u in meta.get("input_process_units", [])), None),
        "packed_files": meta.get("packed_files", []),
        **({"subgraphs": meta["subgraphs"]} if len(meta.get("subgraphs", [])) > 1 else {}),
    }


def _canonical(tensor_name: str) -> str:
    """litert-torch names signature inputs "serving_default_input_ids" and the like."""
    for name in INPUT_NAMES:
        if tensor_name == name or tensor_name.endswith("_" + name) or tensor_name.endswith(name + ":0"):
            return name
    raise ModelError(f"TFLite input tensor {tensor_name!r} is not one of {', '.join(INPUT_NAMES)}")


def _model_part(raw: bytes) -> bytes:
    """The flatbuffer without an appended zip of associated files (re-writing replaces them)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            start = min((i.header_offset for i in zf.infolist()), default=len(raw))
    except zipfile.BadZipFile:
        return raw
    return raw[:start]


# --- reading it back -------------------------------------------------------------------------------------


def _field(tab, slot: int) -> int:
    return tab.Offset(4 + 2 * slot)


def _str_at(tab, slot):
    o = _field(tab, slot)
    return tab.String(o + tab.Pos).decode() if o else None


def _byte_at(tab, slot):
    o = _field(tab, slot)
    return tab.Get(_fb()[0].number_types.Uint8Flags, o + tab.Pos) if o else 0


def _tables(tab, slot) -> list:
    o = _field(tab, slot)
    if not o:
        return []
    start, n = tab.Vector(o), tab.VectorLen(o)
    return [type(tab)(tab.Bytes, tab.Indirect(start + 4 * i)) for i in range(n)]


def _sub(tab, slot):
    o = _field(tab, slot)
    return type(tab)(tab.Bytes, tab.Indirect(o + tab.Pos)) if o else None


def _files(tab, slot) -> list[dict]:
    return [{"name": _str_at(f, 0), "type": _byte_at(f, 2)} for f in _tables(tab, slot)]


def _tensor(t) -> dict:
    return {"name": _str_at(t, 0), "description": _str_at(t, 1), "associated_files": _files(t, 6)}


def _process_unit(u) -> dict:
    kind = _byte_at(u, 0)
    options = _sub(u, 1)
    if kind == _BERT_TOKENIZER and options is not None:
        return {"type": "BertTokenizer", "vocab_files": [f["name"] for f in _files(options, 0)]}
    return {"type": f"options type {kind}"}


def read_metadata(path: Path) -> dict:
    """The TFLite metadata of a .tflite as a dict ({} when it has none), with the packed files' names."""
    flatbuffers, schema = _fb()
    raw = Path(path).read_bytes()
    model = schema.Model.GetRootAs(raw, 0)
    buf = None
    for i in range(model.MetadataLength()):
        if model.Metadata(i).Name() == METADATA_NAME:
            buf = model.Buffers(model.Metadata(i).Buffer()).DataAsNumpy().tobytes()
    if buf is None:
        return {}
    if buf[4:8] != _IDENTIFIER:
        raise ModelError(f"{path}: TFLITE_METADATA is not a metadata flatbuffer (identifier {buf[4:8]!r})")
    root = flatbuffers.table.Table(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
    subgraphs = _tables(root, 3)
    sub = subgraphs[0] if subgraphs else None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            packed = sorted(i.filename for i in zf.infolist() if i.compress_type == zipfile.ZIP_STORED)
    except zipfile.BadZipFile:
        packed = []
    return {
        "name": _str_at(root, 0),
        "description": _str_at(root, 1),
        "version": _str_at(root, 2),
        "author": _str_at(root, 4),
        "min_parser_version": _str_at(root, 7),
        "inputs": [_tensor(t) for t in _tables(sub, 2)] if sub else [],
        "outputs": [_tensor(t) for t in _tables(sub, 3)] if sub else [],
        "input_process_units": [_process_unit(u) for u in _tables(sub, 5)] if sub else [],
        "packed_files": packed,
        "subgraphs": [_str_at(g, 0) for g in subgraphs],
    }


def packed_file(path: Path, name: str) -> bytes:
    """One associated file packed into the .tflite (e.g. vocab.txt)."""
    with zipfile.ZipFile(io.BytesIO(Path(path).read_bytes())) as zf:
        return zf.read(name)
