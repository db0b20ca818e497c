import copy

import pytest
import torch
from conftest import make_tiny_model

from edgebert.errors import SpecError
from edgebert.model.bert import WEIGHTS_FILE
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec, kept_count, kept_layers


@pytest.fixture
def batch(tiny_model):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, tiny_model.config.vocab_size, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding in the batch
    mask[2, 3:] = 0
    types = torch.zeros_like(ids)
    types[0, 5:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _layer_params(hidden: int, heads: int, head_dim: int, ffn: int) -> int:
    inner = heads * head_dim
    attention = 3 * (hidden * inner + inner) + inner * hidden + hidden + 2 * hidden
    feed_forward = hidden * ffn + ffn + ffn * hidden + hidden + 2 * hidden
    return attention + feed_forward


def test_shapes_really_shrink(tiny_model, tmp_path):
    c = tiny_model.config
    sliced = slice_model(tiny_model, SubnetSpec(width=0.5, depth=0.5))
    assert sliced.config.heads == (2, 2) and sliced.config.ffn == (35, 35)
    assert sliced.config.source_layers == (0, 2)
    assert len(sliced.layers) == 2
    att, ffn = sliced.layers[0].attention, sliced.layers[0].ffn
    assert tuple(att.query.weight.shape) == (2 * 16, 48) and tuple(att.out.weight.shape) == (48, 2 * 16)
    assert tuple(ffn.up.weight.shape) == (35, 48) and tuple(ffn.down.weight.shape) == (48, 35)

    embeddings = sum(p.numel() for p in tiny_model.embeddings.parameters())
    assert tiny_model.num_parameters() == embeddings + 3 * _layer_params(48, 3, 16, 70)
    assert sliced.num_parameters() == embeddings + 2 * _layer_params(48, 2, 16, 35)
    encoder_ratio = (sliced.num_parameters() - embeddings) / (tiny_model.num_parameters() - embeddings)
    assert 0.3 < encoder_ratio < 0.45  # 2 of 3 layers at ~half width

    tiny_model.save(tmp_path / "full")
    sliced.save(tmp_path / "sliced")
    full_size = (tmp_path / "full" / WEIGHTS_FILE).stat().st_size
    sliced_size = (tmp_path / "sliced" / WEIGHTS_FILE).stat().st_size
    assert sliced_size < 0.75 * full_size
    assert sliced_size == pytest.approx(full_size * sliced.num_parameters() / tiny_model.num_parameters(), rel=0.05)
    assert c.heads == (3, 3, 3)  # the original config is untouched


def test_full_spec_is_an_exact_copy(tiny_model, batch):
    sliced = slice_model(tiny_model, SubnetSpec(1.0, 1.0))
    assert sliced is not tiny_model
    with torch.no_grad():
        assert torch.equal(sliced(**batch), tiny_model(**batch))


def test_slice_is_a_new_object_and_leaves_the_original_alone(tiny_model, batch):
    before = copy.deepcopy(tiny_model.state_dict())
    with torch.no_grad():
        out_before = tiny_model(**batch)
    sliced = slice_model(tiny_model, SubnetSpec(0.5, 0.5))
    with torch.no_grad():
        for p in sliced.parameters():  # writing to the slice must not reach the original
            p.add_(1.0)
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        assert torch.equal(tiny_model(**batch), out_before)
    assert tiny_model.config.heads == (3, 3, 3) and len(tiny_model.layers) == 3


def test_half_width_of_three_heads_keeps_two(tiny_model):
    assert slice_model(tiny_model, SubnetSpec(width=0.5)).config.heads == (2, 2, 2)
    assert slice_model(tiny_model, SubnetSpec(width=0.25)).config.heads == (1, 1, 1)
    assert slice_model(tiny_model, SubnetSpec(width=0.25)).config.ffn == (18, 18, 18)


def _masked_reference(model, spec, batch):
    """The full model with the dropped heads masked, dropped neurons zeroed, dropped layers skipped."""
    ref = copy.deepcopy(model)
    layers = kept_layers(spec.depth, model.config.num_layers)
    head_mask = []
    with torch.no_grad():
        for i in layers:
            h, f = model.config.heads[i], model.config.ffn[i]
            m = torch.zeros(h)
            m[: kept_count(spec.width, h)] = 1.0
            head_mask.append(m)
            up = ref.layers[i].ffn.up
            up.weight[kept_count(spec.width, f) :] = 0.0  # gelu(0) = 0: the neuron contributes nothing
            up.bias[kept_count(spec.width, f) :] = 0.0
        hidden = ref.encode(**batch, head_mask=head_mask, layers=[ref.layers[i] for i in layers])[-1]
        return ref.pool(hidden, batch["attention_mask"])


@pytest.mark.parametrize("task", ["embedding", "classification"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("depth", DEPTHS)
def test_slice_equals_masked_full_model(task, width, depth, batch):
    extra = {"task": "classification", "num_labels": 2, "labels": ("no", "yes")} if task == "classification" else {}
    model = make_tiny_model(**extra)
    spec = SubnetSpec(width, depth)
    with torch.no_grad():
        got = slice_model(model, spec)(**batch)
    want = _masked_reference(model, spec, batch)
    assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()


def test_uneven_layers_slice_per_layer(batch):
    model = make_tiny_model(heads=(3, 1, 2), ffn=(70, 33, 12))
    spec = SubnetSpec(0.5, 1.0)
    sliced = slice_model(model, spec)
    assert sliced.config.heads == (2, 1, 1) and sliced.config.ffn == (35, 17, 6)
    with torch.no_grad():
        got = sliced(**batch)
    assert torch.allclose(got, _masked_reference(model, spec, batch), atol=1e-5, rtol=0)


def test_slice_of_a_slice_keeps_provenance(tiny_model):
    once = slice_model(tiny_model, SubnetSpec(1.0, 0.75))
    assert once.config.source_layers == (0, 1)
    assert slice_model(once, SubnetSpec(1.0, 0.5)).config.source_layers == (0,)


def test_spec_that_does_not_fit_is_refused(tiny_model):
    with pytest.raises(SpecError, match="attention heads"):
        slice_model(tiny_model, SubnetSpec(width=0.1))
