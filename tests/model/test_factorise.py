"""Factorised layers: equal to their dense product, exact at full rank, real smaller tensors, saved and
loaded in edgebert's format, sliced and run dynamically like dense ones."""

import pytest
import torch
from conftest import make_tiny_model

from edgebert.compress.factorise import factorise
from edgebert.errors import ModelError, UsageError
from edgebert.model.bert import load_model
from edgebert.model.dynamic import dynamic_forward, grid
from edgebert.model.factorise import (
    FactorisedEmbedding,
    FactorisedLinear,
    dense_weight,
    is_factorised,
    svd_factors,
)
from edgebert.model.rewire import rewire
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def test_factorised_linear_equals_its_dense_product():
    torch.manual_seed(0)
    lin = FactorisedLinear(20, 30, rank=5)
    x = torch.randn(4, 20)
    dense = torch.nn.functional.linear(x, dense_weight(lin), lin.expand.bias)
    assert torch.allclose(lin(x), dense, atol=1e-6)
    emb = FactorisedEmbedding(50, 12, rank=4, padding_idx=0)
    ids = torch.tensor([[0, 3, 49]])
    assert torch.allclose(emb(ids), dense_weight(emb)[ids], atol=1e-6)
    assert torch.all(emb(torch.tensor([0])) == 0)  # the padding row stays zero


def test_svd_is_exact_at_full_rank_and_best_below():
    torch.manual_seed(0)
    w = torch.randn(30, 12)
    left, right = svd_factors(w, 12)
    assert torch.allclose(left @ right, w, atol=1e-5)
    left, right = svd_factors(w, 4)
    s = torch.linalg.svdvals(w.double())
    # Eckart-Young: the error of the best rank-4 approximation is the norm of the dropped singular values
    assert torch.linalg.norm((left @ right).double() - w.double()) == pytest.approx(float(s[4:].norm()), rel=1e-4)


def test_only_tensors_whose_factors_are_smaller_get_factorised():
    assert is_factorised(384, 384, 191) and not is_factorised(384, 384, 192)  # square at half rank: no saving
    assert is_factorised(1536, 384, 192) and is_factorised(30522, 384, 128)
    assert not is_factorised(10, 10, 0)


def test_factorised_model_before_training_is_the_svd_approximation(tiny_model):
    b = _batch()
    f = factorise(tiny_model, embedding_rank=16, weight_rank=12).eval()
    assert isinstance(f.embeddings.word, FactorisedEmbedding) and isinstance(f.layers[0].ffn.up, FactorisedLinear)
    assert f.num_parameters() < 0.6 * tiny_model.num_parameters()
    for name in ("embeddings.word", "layers.1.attention.query", "layers.2.ffn.down"):
        old, new = dense_weight(tiny_model.get_submodule(name)), dense_weight(f.get_submodule(name))
        left, right = svd_factors(old, 16 if name.startswith("emb") else 12)
        assert torch.allclose(new, left @ right, atol=1e-5), name
    # A table of rank 8 factorised at rank 8 (its full rank): the same function, the SVD is exact.
    with torch.no_grad():
        w = tiny_model.embeddings.word.weight
        w.copy_(torch.randn(w.shape[0], 8) @ torch.randn(8, w.shape[1]))
        w[0] = 0  # padding row
    exact = factorise(tiny_model, embedding_rank=8, weight_rank=0).eval()
    assert isinstance(exact.embeddings.word, FactorisedEmbedding)
    with torch.no_grad():
        assert torch.allclose(exact(**b), tiny_model(**b), atol=1e-5)


def test_dynamic_forward_equals_the_real_slice_of_a_factorised_model():
    model = factorise(make_tiny_model(task="classification", num_labels=2, labels=("a", "b")), 16, 12).eval()
    b = _batch()
    with torch.no_grad():
        for spec in grid(WIDTHS, DEPTHS):
            out, _, _ = dynamic_forward(model, b, spec)
            sliced = slice_model(model, spec).eval()
            assert torch.allclose(out, sliced(**b), atol=1e-5), spec.key
    # width 0.25 keeps one head of 16: a 16 x 48 matrix at rank 12 is smaller dense, so the slice merges it
    narrow = slice_model(model, SubnetSpec(0.25, 1.0))
    assert isinstance(narrow.layers[0].attention.query, torch.nn.Linear)
    assert isinstance(narrow.layers[0].ffn.up, FactorisedLinear)


def test_gradients_of_the_dynamic_forward_reach_the_factors(tiny_model):
    model = factorise(tiny_model, 16, 12).train()  # width 0.5 of 3 heads of 16: 2 heads, 32 rows
    out, _, _ = dynamic_forward(model, _batch(), SubnetSpec(0.5, 1.0))
    out.sum().backward()
    q = model.layers[0].attention.query
    assert q.reduce.weight.grad.abs().sum() > 0
    assert torch.all(q.expand.weight.grad[32:] == 0) and q.expand.weight.grad[:32].abs().sum() > 0


def test_save_and_load_keep_the_ranks(tiny_model, tmp_path):
    f = factorise(tiny_model, 16, 12).eval()
    f.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert (again.config.embedding_rank, again.config.weight_rank) == (16, 12)
    assert tuple(again.embeddings.word.table.weight.shape) == (tiny_model.config.vocab_size, 16)
    b = _batch()
    with torch.no_grad():
        assert torch.equal(again(**b), f(**b))


def test_ranks_are_checked(tiny_model):
    from dataclasses import replace

    with pytest.raises(ModelError, match="full rank"):
        replace(tiny_model.config, embedding_rank=49)
    with pytest.raises(ModelError, match="embedding_rank"):
        replace(tiny_model.config, embedding_rank=-1)


def test_rewiring_a_factorised_model_is_refused(tiny_model, sentences):
    with pytest.raises(UsageError, match="before factorising"):
        rewire(factorise(tiny_model, 0, 12), sentences, tokenizer=None, progress=False)
