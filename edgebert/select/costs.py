"""What a sub-network costs to run, from its BertConfig alone (no weights): batch 1, one sequence length.

These are the features the latency and memory models are fitted on: multiply-accumulates per part,
weight bytes per precision and format, and the size of the largest set of live activations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from edgebert.model.config import BertConfig, is_factorised
from edgebert.model.spec import SubnetSpec, subnet_config
from edgebert.registry import CONVERTERS

__all__ = ["Costs", "costs", "segment_costs"]

_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class Costs:
    """Costs of one forward pass (batch 1, `seq_len` tokens). MACs are multiply-accumulates."""

    seq_len: int
    layers: int
    hidden: int
    qkv_macs: int  # query/key/value projections
    out_macs: int  # attention output projection
    ffn_macs: int  # FFN up and down
    attention_macs: int  # Q·Kᵀ and probs·V: grows with seq_len², not with the weights
    head_macs: int  # pooler + classifier (0 for sentence encoders)
    embedding_params: int  # word/position/token-type tables: gathered, not multiplied
    matrix_params: int  # weight matrices of layers and head (what int8 quantizes)
    vector_params: int  # biases and LayerNorm scales, kept fp32 by every converter
    matrix_rows: int  # output channels of all matrices: one fp32 scale each when per-channel int8
    activation_elems: int  # largest set of tensors alive at once, in elements
    # A factorised word table (model/factorise.py) is gathered at rank r, then projected: r x hidden MACs per
    # token, and rows of r numbers (one int8 scale per row all the same).
    embedding_macs: int = 0
    table_rows: int = 0  # rows of all embedding tables (0: embedding_params // hidden, unfactorised)
    vocab_size: int = 0  # tokens: a format that packs the vocabulary into the file stores this many

    @property
    def linear_macs(self) -> int:
        return self.qkv_macs + self.out_macs + self.ffn_macs + self.head_macs + self.embedding_macs

    @property
    def total_macs(self) -> int:
        return self.linear_macs + self.attention_macs

    @property
    def params(self) -> int:
        return self.embedding_params + self.matrix_params + self.vector_params

    def weight_parts(self, precision: str, fmt: str | None = None, runtime: bool = False) -> tuple[int, int]:
        """(bytes of matrices, biases and norms; bytes of embedding tables) at `precision` in `fmt`.

        Apart because runtimes treat them apart: LiteRT reads the tables from its memory-mapped
        file and only the rows a text gathers become resident; matrices get packed copies.
        runtime=True: the precision the runtime holds in memory (the converter's runtime_weight_precision).
        """
        conv = CONVERTERS.get(fmt) if fmt is not None else None
        if runtime and conv is not None:
            precision = conv.runtime_weight_precision.get(precision, precision)
        size = _BYTES[precision]
        # Per int8 channel: its fp32 scale, plus what the format's file stores beside it (TFLite: an int64 zero
        # point). Runtime memory counts the scale only: the memory models were fitted on that feature.
        per_channel = conv.int8_channel_bytes if conv is not None and not runtime else 4
        if precision == "int8":
            quantized_tables = bool(conv and conv.quantizes_embeddings)
            tables = self.embedding_params * (1 if quantized_tables else 4)
            rows = self.table_rows or self.embedding_params // self.hidden
            tables += per_channel * rows if quantized_tables else 0  # one scale per row
            return self.matrix_params + per_channel * self.matrix_rows + 4 * self.vector_params, tables
        return size * (self.matrix_params + self.vector_params), size * self.embedding_params

    def weight_bytes(self, precision: str, fmt: str | None = None, runtime: bool = False) -> int:
        """Bytes of weights stored at `precision` by format `fmt` (runtime=True: as held in memory). Not at
        runtime, with a format: the file's size, so also the graph's own records per encoder layer and the
        vocabulary a format packs in (converter attributes, measured by benchmarks/file_size.py)."""
        weights = sum(self.weight_parts(precision, fmt, runtime))
        if fmt is None or runtime:
            return weights
        conv = CONVERTERS.get(fmt)
        return weights + conv.graph_bytes_per_layer * self.layers + conv.vocab_bytes_per_token * self.vocab_size

    def activation_bytes(self) -> int:
        return 4 * self.activation_elems  # every runtime here keeps activations in fp32

    def to_dict(self) -> dict:
        d = asdict(self)
        d["linear_macs"], d["total_macs"] = self.linear_macs, self.total_macs
        return d


def costs(config: BertConfig, seq_len: int, spec: SubnetSpec | None = None) -> Costs:
    """Costs of `config` (or of its sub-network `spec`) at `seq_len` tokens."""
    if spec is not None:
        config = subnet_config(config, spec)
    s, h, d = seq_len, config.hidden_size, config.head_dim
    qkv = out = ffn = attn = 0
    matrix = rows = vectors = 0
    peak = 0
    for heads, width in zip(config.heads, config.ffn):
        inner = heads * d
        q, o, up, down = (
            _matrix(r, c, config.weight_rank) for r, c in ((inner, h), (h, inner), (width, h), (h, width))
        )
        qkv += 3 * s * q[0]
        out += s * o[0]
        ffn += s * (up[0] + down[0])
        attn += 2 * s * s * inner  # scores (s×s per head, over d) and context (s×d per head, over s)
        matrix += 3 * q[0] + o[0] + up[0] + down[0]
        rows += 3 * q[1] + o[1] + up[1] + down[1]
        vectors += 3 * inner + h + 2 * h + width + h + 2 * h
        # Live at the widest point of each block: input + residual, q/k/v and two s×s maps per
        # head in attention; input + residual and the FFN's pre- and post-GELU tensors in the FFN.
        peak = max(peak, 2 * s * h + 4 * s * inner + 2 * heads * s * s, 2 * s * h + 2 * s * width)
    head = 0
    if config.task == "classification":
        head = h * h + h * config.num_labels
        matrix += head
        rows += h + config.num_labels
        vectors += h + config.num_labels
    table_rows = config.vocab_size + config.max_position_embeddings + max(config.type_vocab_size, 1)
    embeddings, embedding_macs = table_rows * h, 0
    r = config.embedding_rank
    if is_factorised(config.vocab_size, h, r):
        embeddings -= config.vocab_size * (h - r)
        matrix, rows, embedding_macs = matrix + r * h, rows + h, s * r * h
    vectors += 2 * h  # embedding LayerNorm
    return Costs(
        seq_len=s,
        layers=config.num_layers,
        hidden=h,
        qkv_macs=qkv,
        out_macs=out,
        ffn_macs=ffn,
        attention_macs=attn,
        head_macs=head,
        embedding_params=embeddings,
        matrix_params=matrix,
        vector_params=vectors,
        matrix_rows=rows,
        activation_elems=peak + s * h,
        embedding_macs=embedding_macs,
        table_rows=table_rows,
        vocab_size=config.vocab_size,
    )


def _matrix(rows: int, cols: int, rank: int) -> tuple[int, int]:
    """(parameters = MACs per token, output channels incl. the inner ones) of a rows x cols projection,
    stored as two factors where the config's rank makes them smaller (model/factorise.py's rule)."""
    if is_factorised(rows, cols, rank):
        return rank * (rows + cols), rank + rows
    return rows * cols, rows


def segment_costs(config: BertConfig, seq_len: int, spec: SubnetSpec | None = None) -> list[Costs]:
    """Costs of each early-exit segment of `config` (or its sub-network `spec`), in order (export/segments.py):
    segment 1 = embeddings + layer 1 + exit 1, segment k = layer k + exit k. Every exit is a pooler +
    classifier like the final head, so each segment carries one head's MACs; the embedding tables belong to
    segment 1 alone. Each is one runtime call, so the latency model gives each its own fixed cost."""
    if spec is not None:
        config = subnet_config(config, spec)
    out = []
    for k, (heads, width) in enumerate(zip(config.heads, config.ffn)):
        one = replace(config, heads=(heads,), ffn=(width,), source_layers=(config.source_layers[k],))
        c = costs(one, seq_len)
        if k:  # no embeddings: the hidden state comes in from the previous segment
            h = c.hidden
            rank_macs = c.embedding_macs // seq_len if seq_len else 0  # a factorised table's projection
            c = replace(
                c,
                embedding_params=0,
                embedding_macs=0,
                table_rows=0,
                vocab_size=0,  # packed into the file once, with segment 1
                matrix_params=c.matrix_params - rank_macs,
                matrix_rows=c.matrix_rows - (h if rank_macs else 0),
                vector_params=c.vector_params - 2 * h,
            )
        out.append(c)
    return out
