"""BertConfig: the shape of a BERT (per-layer heads and FFN widths) and its task, without weights or torch.

Everything that reasons about a model's size (costs, the selector, profiles) needs only this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgebert.errors import ModelError

__all__ = ["BertConfig", "EXIT_POOLS", "FORMAT_VERSION", "is_factorised"]

FORMAT_VERSION = 1
EXIT_POOLS = ("cls", "mean")


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    heads: tuple[int, ...]  # attention heads kept in each layer
    ffn: tuple[int, ...]  # FFN (intermediate) width of each layer
    head_dim: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    # LadaBERT factorisation (model/factorise.py; 0 = dense): the word-embedding table as vocab x r @ r x hidden,
    # and every layer's projection/FFN matrix as two thin ones, wherever the factors are the smaller.
    embedding_rank: int = 0
    weight_rank: int = 0
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    # "embedding": mean-pooled sentence embedding; "classification": pooler + classifier
    task: str = "embedding"
    num_labels: int = 0
    labels: tuple[str, ...] = ()
    # Which layers of the original model each kept layer came from (provenance of a slice).
    source_layers: tuple[int, ...] = ()
    # Early exit (issue 14): an internal classifier after every layer but the last (model/exits.py).
    exits: bool = False
    # What an exit head (not the final head) classifies: "cls" reads the [CLS] token as the final head does,
    # "mean" the mask-weighted mean of the tokens. Sentence encoders such as MiniLM are trained to mean-pool,
    # and their [CLS] state carries little before the last layers (benchmarks/exit_signal.py).
    exit_pool: str = "cls"
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        # Types first: a config.json with "384" or 1e10 where a whole number belongs must be refused here,
        # naming the field, not deep inside torch (issue 11 item 7).
        for name, low in _WHOLE_FIELDS.items():
            _whole(name, getattr(self, name), low)
        for name in ("heads", "ffn"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)):
                raise ModelError(f"{name} must be a list of whole numbers (one per layer), got {_short(values)}")
            for v in values:
                _whole(f"{name}[]", v, 0)
        for name in ("layer_norm_eps", "hidden_dropout", "attention_dropout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ModelError(f"{name} must be a number in [0, 1), got {_short(v)}")
        object.__setattr__(self, "heads", tuple(self.heads))
        object.__setattr__(self, "ffn", tuple(self.ffn))
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.source_layers:
            object.__setattr__(self, "source_layers", tuple(range(len(self.heads))))
        object.__setattr__(self, "source_layers", tuple(int(i) for i in self.source_layers))
        if len(self.heads) != len(self.ffn) or not self.heads:
            raise ModelError(f"config needs one head count and one FFN width per layer, got {self.heads} / {self.ffn}")
        if self.task not in ("embedding", "classification"):
            raise ModelError(f"unknown task {self.task!r}: expected 'embedding' or 'classification'")
        if self.task == "classification" and self.num_labels < 1:
            raise ModelError("a classification config needs num_labels >= 1")
        for name in ("embedding_rank", "weight_rank"):
            rank = getattr(self, name)
            if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank <= self.hidden_size:
                raise ModelError(f"{name} must be 0 (dense) or 1..{self.hidden_size} (the full rank), got {rank!r}")
        if self.exits and self.task != "classification":
            raise ModelError("exit heads are classifiers: a model with exits needs task 'classification'")
        if self.exit_pool not in EXIT_POOLS:
            raise ModelError(f"exit_pool must be one of {', '.join(EXIT_POOLS)}, got {_short(self.exit_pool)}")

    @property
    def num_layers(self) -> int:
        return len(self.heads)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        if not isinstance(d, dict):
            raise ModelError(f"the config must be a JSON object of fields, got a {type(d).__name__}")
        missing = [k for k in ("vocab_size", "hidden_size", "heads", "ffn", "head_dim") if k not in d]
        if missing:
            raise ModelError(f"the config lacks {', '.join(missing)}; re-save the model with edgebert")
        d = dict(d)
        d.pop("format_version", None)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_hf(cls, hf: dict) -> "BertConfig":
        if not isinstance(hf, dict):
            raise ModelError(f"config.json must be a JSON object of fields, got a {type(hf).__name__}")
        for key in ("num_attention_heads", "num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size"):
            if key not in hf:
                raise ModelError(f"config.json lacks {key}; is this a BERT checkpoint?")
            _whole(key, hf[key], 1)
        n_heads, n_layers = hf["num_attention_heads"], hf["num_hidden_layers"]
        hidden = hf["hidden_size"]
        if hidden % n_heads:
            raise ModelError(f"hidden_size {hidden} is not divisible by num_attention_heads {n_heads}")
        act = hf.get("hidden_act", "gelu")
        if act != "gelu":
            raise ModelError(f"hidden_act {act!r} is not supported (edgebert implements BERT's exact 'gelu')")
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise ModelError("only absolute position embeddings are supported")
        id2label = hf.get("id2label") or {}
        archs = hf.get("architectures") or []
        is_cls = any("SequenceClassification" in a for a in archs)
        labels = tuple(id2label[k] for k in sorted(id2label, key=int)) if is_cls else ()
        if is_cls and not labels:
            # transformers 5 leaves the default id2label (LABEL_0..) out of config.json; its
            # default is 2 labels. A mismatch with the classifier's weights is reported at load.
            labels = tuple(f"LABEL_{i}" for i in range(int(hf.get("num_labels") or 2)))
        return cls(
            vocab_size=hf["vocab_size"],
            hidden_size=hidden,
            heads=(n_heads,) * n_layers,
            ffn=(hf["intermediate_size"],) * n_layers,
            head_dim=hidden // n_heads,
            max_position_embeddings=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 2),
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
            hidden_dropout=hf.get("hidden_dropout_prob", 0.1),
            attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
            pad_token_id=hf.get("pad_token_id", 0) or 0,
            task="classification" if is_cls else "embedding",
            num_labels=len(labels) if is_cls else 0,
            labels=labels,
        )


# Whole-number fields and their least value.
_WHOLE_FIELDS = {
    "vocab_size": 1,
    "hidden_size": 1,
    "head_dim": 1,
    "max_position_embeddings": 1,
    "type_vocab_size": 0,
    "pad_token_id": 0,
    "num_labels": 0,
}


def _short(value) -> str:
    """A value as the user wrote it, cut short: a config can hold anything (never echo megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"{name} must be a whole number, got {_short(value)} ({type(value).__name__})")
    if value < low:
        raise ModelError(f"{name} must be at least {low}, got {value}")


def is_factorised(rows: int, cols: int, rank: int) -> bool:
    """True when rank-`rank` factors of a rows x cols tensor are smaller than the tensor itself.

    A pure rule on shapes (no torch), so costs and the memory model agree with the layers themselves."""
    return 0 < rank and rank * (rows + cols) < rows * cols
