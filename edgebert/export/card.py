"""The model card every artifact carries in its own metadata: name, WordPiece vocabulary, inputs, output kind."""

from __future__ import annotations

import json

from edgebert import __version__
from edgebert.artifact import ModelCard
from edgebert.model.bert import Bert

__all__ = ["model_card", "wordpiece_vocab"]


def wordpiece_vocab(tokenizer) -> tuple[tuple[str, ...], bool]:
    """(tokens in id order, lowercases?) of a Hugging Face `tokenizers` WordPiece tokenizer; ((), True) for any
    other kind, whose vocabulary MediaPipe's BERT tokenizer could not use."""
    spec = json.loads(tokenizer.to_str())
    model = spec.get("model") or {}
    if model.get("type") != "WordPiece" or not model.get("vocab"):
        return (), True
    by_id = {i: t for t, i in model["vocab"].items()}
    # A vocab.txt that lists a token twice leaves its first id unused (the later line wins); a placeholder
    # keeps every later token on the line of its id, and no text tokenizes to it, as in the original.
    tokens = [by_id.get(i, f"[unused-id-{i}]") for i in range(max(by_id) + 1)]
    normalizer = spec.get("normalizer") or {}
    return tuple(tokens), bool(normalizer.get("lowercase", True))


def model_card(sub: Bert, tokenizer, name: str, description: str = "") -> ModelCard:
    c = sub.config
    vocab, lowercase = wordpiece_vocab(tokenizer)
    what = "text classifier" if c.task == "classification" else "sentence encoder"
    return ModelCard(
        name=name,
        description=description
        or f"BERT {what} sliced by edgebert: {len(c.heads)} layers, heads {list(c.heads)}, FFN {list(c.ffn)}.",
        version=f"edgebert {__version__}",
        task=c.task,
        output_name=sub.output_name,
        labels=(tuple(c.labels) or tuple(f"LABEL_{i}" for i in range(c.num_labels)))
        if c.task == "classification"
        else (),
        vocab=vocab,
        lowercase=lowercase,
    )
