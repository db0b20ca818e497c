"""slice(model, spec): a new, plain, smaller Bert whose tensors really have the smaller shapes.

Run after rewiring, so the first heads/neurons of each layer are the important ones.
"""

from __future__ import annotations

import torch
from torch import nn

from edgebert.model.bert import Bert
from edgebert.model.exits import exit_state
from edgebert.model.factorise import sliced_linear_state
from edgebert.model.spec import SubnetSpec, subnet_config

__all__ = ["slice_model"]


def _take(old: nn.Module, new: nn.Module, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> dict:
    """A dense or factorised (model/factorise.py) projection restricted to `rows`/`cols`, shaped like `new`."""
    return sliced_linear_state(old, new, rows, cols)


def slice_model(model: Bert, spec: SubnetSpec) -> Bert:
    c = model.config
    config = subnet_config(c, spec)  # checks that spec fits
    layers = [i for i, _, _ in spec.plan(c.heads, c.ffn)]  # uniform or per-layer (model/spec.py)
    heads, ffn = config.heads, config.ffn
    with torch.device("meta"):  # shapes only: every tensor is assigned from the source below, none initialised
        new = Bert(config)
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(("layers.", "exits."))}
    state.update(exit_state(model, layers))
    for new_i, old_i in enumerate(layers):
        old = model.layers[old_i]
        rows = torch.arange(heads[new_i] * c.head_dim)
        neurons = torch.arange(ffn[new_i])
        parts = {
            "attention.query": _take(old.attention.query, new.layers[new_i].attention.query, rows=rows),
            "attention.key": _take(old.attention.key, new.layers[new_i].attention.key, rows=rows),
            "attention.value": _take(old.attention.value, new.layers[new_i].attention.value, rows=rows),
            "attention.out": _take(old.attention.out, new.layers[new_i].attention.out, cols=rows),
            "ffn.up": _take(old.ffn.up, new.layers[new_i].ffn.up, rows=neurons),
            "ffn.down": _take(old.ffn.down, new.layers[new_i].ffn.down, cols=neurons),
        }
        for part, tensors in parts.items():
            for name, t in tensors.items():
                state[f"layers.{new_i}.{part}.{name}"] = t
        for norm in ("attention.norm", "ffn.norm"):
            for name, t in old.get_submodule(norm).state_dict().items():
                state[f"layers.{new_i}.{norm}.{name}"] = t.detach().clone()
    new.load_state_dict(state, strict=True, assign=True)
    return new.train(model.training)
