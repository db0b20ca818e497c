import pytest
import torch
from conftest import make_tiny_model

from edgebert.model.dynamic import dynamic_encode, dynamic_forward, grid
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec, kept_layers


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


@pytest.mark.parametrize("task", ["embedding", "classification"])
def test_dynamic_forward_equals_the_real_slice(task):
    kw = {"task": "classification", "num_labels": 2, "labels": ("a", "b")} if task == "classification" else {}
    model = make_tiny_model(**kw).eval()
    batch = _batch()
    for spec in grid(WIDTHS, DEPTHS):
        out, states, layers = dynamic_forward(model, batch, spec)
        ref = slice_model(model, spec).eval()(**batch)
        assert torch.allclose(out, ref, atol=1e-5), spec.key
        assert layers == kept_layers(spec.depth, 3)
        assert len(states) == len(layers) + 1


def test_full_spec_matches_encode():
    model = make_tiny_model().eval()
    b = _batch()
    states, _ = dynamic_encode(model, b["input_ids"], b["attention_mask"], b["token_type_ids"], SubnetSpec(1, 1))
    ref = model.encode(**b)
    assert all(torch.allclose(s, r, atol=1e-6) for s, r in zip(states, ref))


def test_gradients_reach_only_the_kept_part_of_the_shared_weights():
    model = make_tiny_model()
    out, _, _ = dynamic_forward(model, _batch(), SubnetSpec(0.34, 1.0))  # 1 of 3 heads, 24 of 70 neurons
    out.pow(2).sum().backward()
    q = model.layers[0].attention.query.weight.grad
    assert q[:16].abs().sum() > 0 and q[16:].abs().sum() == 0
    up = model.layers[0].ffn.up.weight.grad
    assert up[:24].abs().sum() > 0 and up[24:].abs().sum() == 0


def test_dropped_layers_get_no_gradient():
    model = make_tiny_model()
    out, _, layers = dynamic_forward(model, _batch(), SubnetSpec(1.0, 0.5))
    out.sum().backward()
    assert layers == [0, 2]
    assert model.layers[1].attention.query.weight.grad is None
    assert model.layers[2].attention.query.weight.grad is not None


def test_model_holds_no_width_state():
    model = make_tiny_model().eval()
    b = _batch()
    before = model(**b)
    dynamic_forward(model, b, SubnetSpec(0.25, 0.5))
    assert torch.equal(model(**b), before)
