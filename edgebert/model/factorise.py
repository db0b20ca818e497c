"""Factorised layers (LadaBERT): a matrix or embedding table stored as two thin ones, initialised by SVD.

FactorisedEmbedding: a vocab x r table, then an r x hidden projection (exported as a Gather on the small
table, then a MatMul). FactorisedLinear: in -> r -> out, two MatMuls; the bias stays on the second.
Both are plain nn modules, so every converter traces them into really smaller tensors.

Which tensors are factorised is a pure function of the config's rank and the tensor's shape (`is_factorised`):
only where the two thin tensors hold fewer numbers than the one they replace. A model's config records
one embedding rank and one weight rank; slicing a factorised matrix to a narrow width can make the dense
product the smaller one again, and then the slice stores it dense (an exact merge, the same function).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgebert.model.config import is_factorised

__all__ = [
    "FactorisedEmbedding",
    "FactorisedLinear",
    "is_factorised",
    "make_embedding",
    "make_linear",
    "svd_factors",
    "dense_weight",
    "linear_rows",
    "linear_cols",
    "sliced_linear_state",
]


class FactorisedEmbedding(nn.Module):
    """An embedding table E (vocab x hidden) as table (vocab x r) @ proj (r x hidden)."""

    def __init__(self, vocab: int, hidden: int, rank: int, padding_idx: int | None = None):
        super().__init__()
        self.table = nn.Embedding(vocab, rank, padding_idx=padding_idx)
        self.proj = nn.Linear(rank, hidden, bias=False)

    def forward(self, ids):
        return self.proj(self.table(ids))

    @property
    def rank(self) -> int:
        return self.table.embedding_dim


class FactorisedLinear(nn.Module):
    """y = expand(reduce(x)): W (out x in) as expand.weight (out x r) @ reduce.weight (r x in), bias on expand."""

    def __init__(self, in_features: int, out_features: int, rank: int):
        super().__init__()
        self.reduce = nn.Linear(in_features, rank, bias=False)
        self.expand = nn.Linear(rank, out_features)

    def forward(self, x):
        return self.expand(self.reduce(x))

    @property
    def rank(self) -> int:
        return self.reduce.out_features


def make_embedding(vocab: int, hidden: int, rank: int, padding_idx: int | None) -> nn.Module:
    if is_factorised(vocab, hidden, rank):
        return FactorisedEmbedding(vocab, hidden, rank, padding_idx)
    return nn.Embedding(vocab, hidden, padding_idx=padding_idx)


def make_linear(in_features: int, out_features: int, rank: int) -> nn.Module:
    if is_factorised(out_features, in_features, rank):
        return FactorisedLinear(in_features, out_features, rank)
    return nn.Linear(in_features, out_features)


def svd_factors(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(left rows x r, right r x cols) with left @ right the best rank-r approximation of w (exact at full
    rank). The singular values are split evenly between the two (sqrt each): balanced factors quantize
    and train better than U and S·Vᵀ."""
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    return (u[:, :rank] * root).float(), (root[:, None] * vh[:rank]).float()


def dense_weight(module: nn.Module) -> torch.Tensor:
    """The (out x in) matrix, or (vocab x hidden) table, a dense or factorised module computes."""
    if isinstance(module, FactorisedLinear):
        return module.expand.weight @ module.reduce.weight
    if isinstance(module, FactorisedEmbedding):
        return module.table.weight @ module.proj.weight.T
    return module.weight


# ---- the dynamic forward (training) and slicing over dense or factorised projections ------------------


def linear_rows(lin: nn.Module, x: torch.Tensor, n: int) -> torch.Tensor:
    """The first `n` outputs of `lin`, on views of its weights (gradients land on `lin`)."""
    if isinstance(lin, FactorisedLinear):
        return F.linear(lin.reduce(x), lin.expand.weight[:n], lin.expand.bias[:n])
    return F.linear(x, lin.weight[:n], lin.bias[:n])


def linear_cols(lin: nn.Module, x: torch.Tensor, n: int) -> torch.Tensor:
    """`lin` applied to an input that has only its first `n` features."""
    if isinstance(lin, FactorisedLinear):
        return lin.expand(F.linear(x, lin.reduce.weight[:, :n]))
    return F.linear(x, lin.weight[:, :n], lin.bias)


def sliced_linear_state(old: nn.Module, new: nn.Module, rows=None, cols=None) -> dict[str, torch.Tensor]:
    """State dict for `new` holding `old` restricted to output `rows` and input `cols` (index tensors).

    A factorised `old` keeps its rank: rows come from expand, columns from reduce; when `new` is dense
    (the slice is narrow enough that the product is smaller) the two are multiplied out, exactly."""
    if isinstance(old, FactorisedLinear):
        left, bias, right = old.expand.weight.detach(), old.expand.bias.detach(), old.reduce.weight.detach()
        if rows is not None:
            left, bias = left[rows], bias[rows]
        if cols is not None:
            right = right[:, cols]
        if isinstance(new, FactorisedLinear):
            return {"expand.weight": left.clone(), "expand.bias": bias.clone(), "reduce.weight": right.clone()}
        return {"weight": left @ right, "bias": bias.clone()}
    w, b = old.weight.detach(), old.bias.detach()
    if rows is not None:
        w, b = w[rows], b[rows]
    if cols is not None:
        w = w[:, cols]
    return {"weight": w.clone(), "bias": b.clone()}
