"""Exit heads: an internal classifier after every encoder layer (DeeBERT's off-ramps, PABEE's internal
classifiers, RomeBERT's exits), each a pooler + classifier like the final head.

`Bert.exits[i]` classifies the hidden state after layer i for i < L-1; the last layer's exit is the
model's own `head`, so a model with exits computes exactly what it computed without them and its
plain export is unchanged. Exit heads read the hidden size only, which no DynaBERT width changes:
the same heads serve every width. A depth sub-network keeps the exits of its kept layers, and its
last kept layer exits through `head`, as DynaBERT's depth stage trains it to.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from edgebert.errors import ModelError
from edgebert.model.bert import Bert
from edgebert.model.dynamic import dynamic_encode
from edgebert.model.spec import SubnetSpec

__all__ = [
    "has_exits",
    "with_exits",
    "without_exits",
    "exit_state",
    "exit_logits",
    "layer_exit_logits",
    "dynamic_exit_logits",
]


def has_exits(model: Bert) -> bool:
    return bool(model.config.exits)


def with_exits(model: Bert, pool: str = "cls") -> Bert:
    """A copy of classifier `model` with exit heads reading `pool` ("cls" or "mean", BertConfig.exit_pool),
    each initialised from the final head: a head that already separates the classes at layer L is a better
    start than noise at every earlier layer."""
    if model.config.task != "classification":
        raise ModelError("early exits need a classifier; train with --task classification")
    if has_exits(model):
        return model
    new = Bert(replace(model.config, exits=True, exit_pool=pool))
    state = dict(model.state_dict())
    head = {k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")}
    for i in range(model.config.num_layers - 1):
        state.update({f"exits.{i}.{k}": v.clone() for k, v in head.items()})
    new.load_state_dict(state, strict=True)
    return new.train(model.training)


def without_exits(model: Bert) -> Bert:
    """A copy of `model` without its exit heads (the backbone and final head unchanged): for a recipe that
    changes the backbone but trains only the final head, whose exits would no longer match it."""
    if not has_exits(model):
        return model
    new = Bert(replace(model.config, exits=False))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("exits.")}
    new.load_state_dict(state, strict=True)
    return new.train(model.training)


def exit_state(model: Bert, kept: list[int]) -> dict[str, torch.Tensor]:
    """The exit tensors of a depth slice keeping layers `kept` (slicing.slice_model)."""
    if not has_exits(model):
        return {}
    state = {}
    for new_i, old_i in enumerate(kept[:-1]):  # the last kept layer exits through `head`
        for name, t in model.exits[old_i].state_dict().items():
            state[f"exits.{new_i}.{name}"] = t.detach().clone()
    return state


def layer_exit_logits(model: Bert, states: list, layers: list[int], attention_mask) -> list[torch.Tensor]:
    """Logits of every exit of a (sub-)network: states[k+1] is the output of kept layer layers[k]."""
    if not has_exits(model):
        raise ModelError("this model has no exit heads; train it with `edgebert train --exits`")
    outs = [model.exits[i](h, attention_mask) for h, i in zip(states[1:-1], layers[:-1])]
    return outs + [model.head(states[-1])]


def exit_logits(model: Bert, input_ids, attention_mask=None, token_type_ids=None) -> list[torch.Tensor]:
    """Logits at every exit, layer 1 first; the last equals model(...)."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    states = model.encode(input_ids, attention_mask, token_type_ids)
    return layer_exit_logits(model, states, list(range(model.config.num_layers)), attention_mask)


def dynamic_exit_logits(model: Bert, batch: dict, spec: SubnetSpec) -> tuple[list[torch.Tensor], list, list[int]]:
    """(exit logits, hidden states, kept layers) of sub-network `spec` run on the shared weights (training)."""
    states, layers = dynamic_encode(
        model, batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), spec
    )
    return layer_exit_logits(model, states, layers, batch["attention_mask"]), states, layers
