"""Exit heads: one classifier per layer, saved with the model, sliced with it, the same at every width."""

import pytest
import torch
from conftest import make_tiny_model

from edgebert.errors import ModelError
from edgebert.model.bert import load_model
from edgebert.model.dynamic import dynamic_forward
from edgebert.model.exits import dynamic_exit_logits, exit_logits, with_exits
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec


@pytest.fixture(params=["cls", "mean"])
def exit_model(request):
    base = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    model = with_exits(base, request.param).eval()
    with torch.no_grad():  # make the exits differ from the head they were copied from
        for p in model.exits.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return base, model


def _ids(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return ids, mask


def test_final_exit_is_the_plain_output(exit_model):
    base, model = exit_model
    ids, mask = _ids()
    with torch.no_grad():
        logits = exit_logits(model, ids, mask)
        assert len(logits) == 3
        assert torch.equal(logits[-1], base(ids, mask)) and torch.equal(model(ids, mask), base(ids, mask))


def test_exits_round_trip_through_save_and_load(exit_model, tmp_path):
    _, model = exit_model
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.config.exits and again.config == model.config
    ids, mask = _ids()
    with torch.no_grad():
        for a, b in zip(exit_logits(again, ids, mask), exit_logits(model, ids, mask)):
            assert torch.equal(a, b)


@pytest.mark.parametrize("width,depth", [(1.0, 1.0), (0.5, 1.0), (0.25, 0.67), (0.75, 0.5)])
def test_sliced_exits_match_dynamic_exits(exit_model, width, depth):
    """A slice keeps the exits of its kept layers: its exit logits equal the dynamic forward's on the shared
    weights (the training path), and its last exit is its plain output."""
    _, model = exit_model
    spec = SubnetSpec(width, depth)
    ids, mask = _ids(1)
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    sub = slice_model(model, spec).eval()
    with torch.no_grad():
        dyn, _, layers = dynamic_exit_logits(model, batch, spec)
        sliced = exit_logits(sub, ids, mask)
        assert len(sliced) == len(layers) == sub.config.num_layers
        for a, b in zip(sliced, dyn):
            assert torch.allclose(a, b, atol=1e-5)
        assert torch.allclose(sliced[-1], dynamic_forward(model, batch, spec)[0], atol=1e-5)


def test_models_without_exits_are_unchanged():
    base = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    assert not hasattr(base, "exits") and not any(k.startswith("exits.") for k in base.state_dict())
    with pytest.raises(ModelError, match="no exit heads"):
        exit_logits(base, torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ModelError, match="classifier"):
        with_exits(make_tiny_model())


def test_mean_pool_exits_read_only_the_real_tokens():
    """A mean-pooling exit averages the unpadded tokens: a padded sentence gets the logits it gets alone,
    and they equal pooler + classifier on that mean computed by hand (a head ignoring the mask would not)."""
    base = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    model = with_exits(base, "mean").eval()
    assert model.config.exit_pool == "mean" and model.exits[0].pool == "mean" and model.head.pool == "cls"
    ids, mask = _ids()
    with torch.no_grad():
        padded = exit_logits(model, ids, mask)
        alone = exit_logits(model, ids[1:2, :7], mask[1:2, :7])
        for a, b in zip(padded[:-1], alone[:-1]):
            assert torch.allclose(a[1], b[0], atol=1e-5)
        h = model.encode(ids, mask)[1]
        mean = h[1, :7].mean(0, keepdim=True)
        head = model.exits[0]
        assert torch.allclose(padded[0][1:2], head.classifier(torch.tanh(head.pooler(mean))), atol=1e-5)
        assert not torch.allclose(padded[0][1:2], head.classifier(torch.tanh(head.pooler(h[1:2].mean(1)))), atol=1e-4)


def test_exit_pool_is_checked():
    base = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    with pytest.raises(ModelError, match="exit_pool must be one of cls, mean"):
        with_exits(base, "max")
