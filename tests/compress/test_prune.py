"""Pruning: structured keeps the rewiring order's first heads/neurons; unstructured zeros stay zero."""

from dataclasses import replace

import pytest
import torch

from edgebert.compress.factorise import factorise
from edgebert.compress.prune import MaskKeeper, check_share, prune_magnitude, prune_structured, schedule
from edgebert.errors import UsageError
from edgebert.model.compression import prunable, sparsity
from edgebert.model.dynamic import dynamic_forward
from edgebert.model.spec import SubnetSpec


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (4, 9), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}


def test_bad_shares_are_refused():
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(UsageError, match=r"\[0, 1\)"):
            check_share(bad, "unstructured")
    with pytest.raises(UsageError, match="prune-kind"):
        check_share(0.4, "random")


def test_magnitude_pruning_removes_the_smallest_and_only_grows():
    torch.manual_seed(0)
    w = torch.randn(20, 10)
    weights = {"w": w}
    small = w.abs().flatten().argsort()[:50]
    prune_magnitude(weights, 0.25)
    assert int((w == 0).sum()) == 50 and torch.all(w.flatten()[small] == 0)
    first = w == 0
    prune_magnitude(weights, 0.5)
    assert int((w == 0).sum()) == 100 and torch.all(w[first] == 0)
    assert schedule(0.4, 0, 10) == 0 and schedule(0.4, 5, 10) == pytest.approx(0.4) and schedule(0.4, 9, 10) == 0.4


def test_pruned_weights_stay_zero_through_training(tiny_model):
    model = factorise(tiny_model, 16, 12).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    keeper = MaskKeeper(0.5)
    total, removed = 8, None
    for step in range(total):
        opt.zero_grad()
        out, _, _ = dynamic_forward(model, _batch(), SubnetSpec(1.0, 1.0))
        out.pow(2).mean().backward()
        opt.step()  # momentum moves every weight, pruned ones included
        keeper(model, step + 1, total)
        zeros = {n: (w == 0) for n, w in prunable(model).items()}
        if removed is not None:
            assert all(torch.all(zeros[n][removed[n]]) for n in removed), f"a removed weight came back at {step}"
        removed = zeros
    assert sparsity(model)["share"] == pytest.approx(0.5, abs=1e-3)
    assert sparsity(model)["bytes_saved_stored_dense"] == 0
    assert "layers.0.ffn.up.reduce.weight" in prunable(model)  # factorised matrices are pruned too
    assert not any(n.startswith("embeddings") for n in prunable(model))


def test_structured_pruning_keeps_the_first_heads_of_a_rewired_model(tiny_model):
    with pytest.raises(UsageError, match="rewire"):
        prune_structured(tiny_model, 0.4)
    rewired = tiny_model
    rewired.config = replace(rewired.config, extra={"rewired": {"loss": "test"}})
    pruned = prune_structured(rewired, 0.4)
    assert pruned.config.heads == (2, 2, 2) and pruned.config.ffn == (42, 42, 42)
    with torch.no_grad():
        same, _, _ = dynamic_forward(rewired, _batch(), SubnetSpec(0.6, 1.0))
        assert torch.allclose(pruned.eval()(**_batch()), same, atol=1e-5)
