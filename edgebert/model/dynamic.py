"""Dynamic width/depth forward over the full model's shared weights (training only).

slicing.slice_model copies weights into a new, smaller module: right for export, wrong for
training, where every sub-network must update the same tensors. These functions run the
sub-network `spec` straight off the full model's parameters by taking views of their first
rows/columns (after rewiring those are the most important heads and neurons; the attention and FFN code is
the model's own, called with a head count and a width), so gradients of
all sub-networks land in, and accumulate on, the one set of weights. The width/depth lives in
the call's argument, never in module state, so the model itself stays a plain Bert.
"""

from __future__ import annotations

import torch

from edgebert.model.bert import Bert
from edgebert.model.spec import SubnetSpec

__all__ = ["dynamic_encode", "dynamic_forward", "grid"]


def grid(widths, depths) -> list[SubnetSpec]:
    return [SubnetSpec(w, d) for d in depths for w in widths]


def dynamic_encode(model: Bert, input_ids, attention_mask, token_type_ids, spec: SubnetSpec) -> tuple[list, list[int]]:
    """(hidden states of sub-network `spec`: embedding output, then after each kept layer;
    the indices of the kept layers in the full model)."""
    c = model.config
    plan = spec.plan(c.heads, c.ffn)  # uniform or per-layer (model/spec.py); checks that it fits
    if token_type_ids is None:
        token_type_ids = torch.zeros_like(input_ids)
    x = model.embeddings(input_ids, token_type_ids)
    bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
    states = [x]
    for i, heads, width in plan:
        x = model.layers[i](x, bias, heads=heads, width=width)
        states.append(x)
    return states, [i for i, _, _ in plan]


def dynamic_forward(model: Bert, batch: dict, spec: SubnetSpec) -> tuple[torch.Tensor, list, list[int]]:
    """(logits or sentence embeddings, hidden states, kept layer indices) of sub-network `spec`."""
    mask = batch["attention_mask"]
    states, layers = dynamic_encode(model, batch["input_ids"], mask, batch.get("token_type_ids"), spec)
    return model.pool(states[-1], mask), states, layers
