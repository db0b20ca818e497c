"""Pruning, structured and unstructured, and what each really saves.

structured: drop the least important share of every layer's heads and FFN neurons. Rewiring already
sorted them most important first, so this is slicing at width (1 - share): real smaller matrices in every
format (less file, less memory, less time). The dynamic widths then apply to the pruned model.

unstructured: magnitude pruning of the encoder's weight matrices (factorised ones included; embeddings,
norms, biases and the task head are left alone), one threshold per matrix, raised gradually while
distilling (the cubic schedule of Zhu & Gupta 2017, which LadaBERT follows) and kept: `MaskKeeper` zeroes
the removed weights again after every optimizer step, so they stay exactly zero through training and in
every checkpoint. Every converter here stores the matrices dense, so unstructured sparsity saves no
bytes in a file or in memory; it only makes the file compress better (say a zip'd app download).
"""

from __future__ import annotations

import torch
from torch import nn

from edgebert.errors import UsageError
from edgebert.model.bert import Bert
from edgebert.model.compression import prunable
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec

__all__ = ["PRUNE_KINDS", "check_share", "prune_structured", "prune_magnitude", "schedule", "MaskKeeper"]

PRUNE_KINDS = ("structured", "unstructured")


def check_share(share: float, kind: str) -> float:
    if kind not in PRUNE_KINDS:
        raise UsageError(f"--prune-kind must be one of {', '.join(PRUNE_KINDS)}, got {kind!r}")
    if isinstance(share, bool) or not 0.0 <= float(share) < 1.0:
        raise UsageError(f"--prune {share!r}: the share of weights to remove must be in [0, 1) (1.0 leaves nothing)")
    return float(share)


def prune_structured(model: Bert, share: float) -> Bert:
    """The model without the last `share` of each layer's heads and neurons (rewiring order)."""
    if not share:
        return model
    if not model.config.extra.get("rewired"):
        raise UsageError("structured pruning keeps the most important heads first: rewire the model before pruning")
    pruned = slice_model(model, SubnetSpec(1.0 - share, 1.0))
    return pruned


@torch.no_grad()
def prune_magnitude(weights: dict[str, torch.Tensor], share: float) -> None:
    """Zero the smallest-|w| `share` of each matrix in place. Zeros already there count as the smallest,
    so masks only ever grow as `share` rises."""
    for w in weights.values():
        k = int(round(share * w.numel()))
        if k < 1:
            continue
        threshold = w.abs().flatten().kthvalue(k).values
        below = w.abs() <= threshold
        if int(below.sum()) > k:  # ties at the threshold: keep exactly k, zeros first
            order = w.abs().flatten().argsort(stable=True)[:k]
            below = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
            below[order] = True
            below = below.view_as(w)
        w.masked_fill_(below, 0.0)


def schedule(share: float, done: int, total: int) -> float:
    """Cubic ramp from 0 to `share` over the first half of the steps, then held (Zhu & Gupta 2017)."""
    ramp = max(1, total // 2)
    return share * (1.0 - (1.0 - min(1.0, done / ramp)) ** 3)


class MaskKeeper:
    """run_stage's after_step: raise the sparsity on schedule and keep removed weights at exactly zero.

    The masks live in the weights themselves (a removed weight is 0.0), read back on the first call, so a
    resumed run continues with the masks its checkpoint holds."""

    def __init__(self, share: float):
        self.share = share
        self._masks: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def __call__(self, model: nn.Module, done: int, total: int) -> None:
        weights = prunable(model)
        if self._masks is None:
            self._masks = {n: w != 0 for n, w in weights.items()}
        for n, w in weights.items():  # the optimizer's momentum moved the zeros: put them back
            w.mul_(self._masks[n])
        prune_magnitude(weights, schedule(self.share, done, total))
        self._masks = {n: w != 0 for n, w in weights.items()}
