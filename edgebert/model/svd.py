"""factorise(model, ranks): a new Bert whose embedding table and projection matrices are SVD factors of the
original's (model/factorise.py holds the layers). Before training, each factorised tensor is the best
rank-r approximation of the one it replaces (Eckart-Young); at full rank the product is exact.

A model-level transform (weights in, weights out), so both `edgebert compress` (which then distils) and the
selector's untrained embedding ranks (select/ranks.py, export only) build their models with it."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from edgebert.model.bert import Bert
from edgebert.model.factorise import FactorisedEmbedding, FactorisedLinear, dense_weight, svd_factors

__all__ = ["factorise"]


def factorise(model: Bert, embedding_rank: int = 0, weight_rank: int = 0) -> Bert:
    """A copy of `model` with the given ranks (0: dense), SVD-initialised from its weights.

    Works on an already factorised model too: the dense product of each tensor is re-factorised."""
    new = Bert(replace(model.config, embedding_rank=embedding_rank, weight_rank=weight_rank))
    old_modules = dict(model.named_modules())
    state = dict(model.state_dict())
    for name, module in new.named_modules():
        old = old_modules.get(name)  # the module tree is the same down to the (dense or factorised) leaves
        if isinstance(module, _FACTORISED) or isinstance(old, _FACTORISED):
            state = {k: v for k, v in state.items() if not k.startswith(name + ".")}
            state.update({f"{name}.{k}": v for k, v in _refit(old, module).items()})
    new.load_state_dict(state, strict=True)
    return new.train(model.training)


_FACTORISED = (FactorisedLinear, FactorisedEmbedding)


@torch.no_grad()
def _refit(old: nn.Module, new: nn.Module) -> dict[str, torch.Tensor]:
    """State of `new` (dense or factorised) holding the best approximation of `old` it can."""
    w = dense_weight(old).detach().clone()
    if isinstance(new, FactorisedEmbedding):
        left, right = svd_factors(w, new.rank)
        return {"table.weight": left, "proj.weight": right.T.contiguous()}
    if isinstance(new, nn.Embedding):
        return {"weight": w}
    bias = (old.expand.bias if isinstance(old, FactorisedLinear) else old.bias).detach().clone()
    if isinstance(new, FactorisedLinear):
        left, right = svd_factors(w, new.rank)
        return {"expand.weight": left, "expand.bias": bias, "reduce.weight": right}
    return {"weight": w, "bias": bias}
