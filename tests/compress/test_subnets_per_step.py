"""`edgebert compress --subnets-per-step N`: each distillation step trains the largest, the smallest and
N - 2 random sub-networks of the width x depth grid (the sandwich rule on DynaBERT's grid), so a default
run costs 4 sub-networks a step instead of 12; every one is still scored afterwards."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import make_tiny_model, save_tiny_model_dir, sentiment_csv

import edgebert.train.distill as distill
from edgebert.compress.config import CompressConfig
from edgebert.compress.recipe import compress
from edgebert.errors import UsageError
from edgebert.model.compression import COMPRESSION_FILE
from edgebert.select.quality import QUALITY_FILE
from edgebert.train.distill import grid_this_step

WIDTHS, DEPTHS = (0.25, 0.5, 0.75, 1.0), (0.5, 0.75, 1.0)


def _cfg(n, seed=0):
    return SimpleNamespace(widths=WIDTHS, depths=DEPTHS, subnets_per_step=n, seed=seed)


def _batch(i):
    return {"input_ids": torch.arange(i, i + 12).reshape(2, 6)}


def _pairs(grid):
    return sorted((w, d) for w, ds in grid.items() for d in ds)


def test_the_largest_and_smallest_every_step_and_random_others_from_the_batch():
    seen = set()
    for i in range(40):
        pairs = _pairs(grid_this_step(_cfg(4), _batch(i)))
        assert len(pairs) == len(set(pairs)) == 4
        assert (1.0, 1.0) in pairs and (0.25, 0.5) in pairs
        assert pairs == _pairs(grid_this_step(_cfg(4), _batch(i)))  # a resumed run draws the same
        seen.update(pairs)
    assert len(seen) == 12  # over many batches every grid point is trained


@pytest.mark.parametrize("n", [0, 12, 20])
def test_zero_or_a_count_at_least_the_grid_trains_all_of_it(n):
    assert _pairs(grid_this_step(_cfg(n), _batch(0))) == sorted((w, d) for w in WIDTHS for d in DEPTHS)


@pytest.mark.parametrize("bad", [1, -1, 1.5, True])
def test_bad_counts_are_refused(bad):
    with pytest.raises(UsageError, match="--subnets-per-step takes 0"):
        CompressConfig(data="d", out="o", subnets_per_step=bad)


def test_compress_distils_n_subnets_per_step_and_scores_every_one(tmp_path, monkeypatch):
    model_dir = save_tiny_model_dir(
        tmp_path / "base", make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    )
    data = sentiment_csv(tmp_path / "train.csv", n=64)
    calls = []
    real = distill.dynamic_forward

    def spy(model, batch, spec):
        calls.append((model.training, spec))
        return real(model, batch, spec)

    monkeypatch.setattr(distill, "dynamic_forward", spy)
    cfg = CompressConfig(
        data=str(data), out=str(tmp_path / "out"), model=str(model_dir), batch_size=16, seq_len=16,
        max_steps=3, lr=1e-3, rewire_texts=16, embedding_rank=16, no_quantized=True, subnets_per_step=3,
    )  # fmt: skip
    out = compress(cfg, progress=False)
    students = [spec for training, spec in calls if training]
    assert len(students) == 3 * 3  # 3 steps x (largest, smallest, 1 random), not 3 x 12
    assert sum(s.width == 1.0 and s.depth == 1.0 for s in students) == 3
    assert sum(s.width == 0.25 and s.depth == 0.5 for s in students) == 3
    record = json.loads((out / COMPRESSION_FILE).read_text())
    assert record["distillation"]["subnets_per_step"] == 3
    assert len(json.loads((out / QUALITY_FILE).read_text())) == 12
