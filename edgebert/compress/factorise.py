"""factorise(model, ranks): a new Bert whose embedding table and projection matrices are SVD factors of the
original's (model/factorise.py holds the layers). Before training, each factorised tensor is the best
rank-r approximation of the one it replaces (Eckart-Young); at full rank the product is exact."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from edgebert.errors import UsageError
from edgebert.model.bert import Bert
from edgebert.model.factorise import FactorisedEmbedding, FactorisedLinear, dense_weight, svd_factors

__all__ = ["factorise", "resolve_rank"]


def resolve_rank(value: float | int | str | None, full: int, flag: str) -> int:
    """A rank given as a count ("128") or a share of the full rank ("0.5"); 0/None = dense.

    A string with a decimal point is a share: "1.0" is the full rank, "1" is rank one."""
    if value is None:
        return 0
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise UsageError(
            f"{flag} takes a rank (e.g. 128) or a share of the full rank (e.g. 0.5), got {value!r}"
        ) from None
    share = "." in text or isinstance(value, float)
    if share:
        if not 0 < number <= 1:
            raise UsageError(f"{flag} {text}: a share of the full rank must be in (0, 1]; or give a whole rank")
        return max(1, round(number * full))
    if number != int(number) or number < 1:
        raise UsageError(f"{flag} {text}: a rank must be a whole number >= 1 (0 would leave nothing)")
    if number > full:
        raise UsageError(f"{flag} {int(number)} is above the full rank {full} (the hidden size); use 1..{full}")
    return int(number)


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
