"""Shared by the converter tests: tiny models built once per module, and PyTorch comparison helpers.

Not a conftest.py on purpose: a second conftest module would shadow `from conftest import ...` elsewhere.
Test modules import the fixtures they use from here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SENTENCES, make_tiny_model, save_tiny_model_dir

from edgebert.model.tokenizer import INPUT_NAMES, encode, load_tokenizer

SEQ_LEN = 32


@pytest.fixture(scope="module")
def tiny_embedder():
    return make_tiny_model()


@pytest.fixture(scope="module")
def tiny_cls():
    return make_tiny_model(seed=1, task="classification", num_labels=2, labels=("neg", "pos"))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load_tokenizer(save_tiny_model_dir(tmp_path_factory.mktemp("tok"), make_tiny_model()))


@pytest.fixture(scope="module")
def feeds(tok):
    """The shared sentences as one padded batch (padded to the longest, shorter than SEQ_LEN)."""
    enc = encode(tok, SENTENCES)
    assert enc["input_ids"].shape[1] < SEQ_LEN
    return enc


def torch_outputs(model, feeds: dict) -> np.ndarray:
    with torch.no_grad():
        return model(*(torch.from_numpy(np.asarray(feeds[n], dtype=np.int64)) for n in INPUT_NAMES)).numpy()


def random_feeds(model, batch: int, length: int, seed: int = 0) -> dict:
    g = np.random.default_rng(seed)
    ids = g.integers(5, model.config.vocab_size, size=(batch, length))
    mask = np.ones_like(ids)
    mask[-1, max(1, length // 2) :] = 0  # the last row is padded: masks must be honoured
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
