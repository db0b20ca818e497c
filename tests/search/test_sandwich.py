"""`edgebert train --sandwich N` (issue 17 part 5): the width+depth stage trains per-layer configurations."""

from __future__ import annotations

import json

import pytest
from conftest import make_tiny_model, save_tiny_model_dir, sentiment_csv

import edgebert.train.distill as distill
from edgebert.cli import main
from edgebert.errors import UsageError
from edgebert.train.config import TrainConfig
from edgebert.train.recipe import train


def test_sandwich_trains_largest_smallest_and_random_per_layer_configs(tmp_path, monkeypatch):
    model_dir = save_tiny_model_dir(tmp_path / "base", make_tiny_model())
    data = sentiment_csv(tmp_path / "train.csv", n=64)
    seen = []
    real = distill.dynamic_forward

    def spy(model, batch, spec):
        seen.append(spec)
        return real(model, batch, spec)

    monkeypatch.setattr(distill, "dynamic_forward", spy)
    cfg = TrainConfig(
        data=str(data),
        out=str(tmp_path / "out"),
        model=str(model_dir),
        batch_size=16,
        seq_len=16,
        max_steps=2,
        lr=1e-3,
        rewire_texts=16,
        sandwich=2,
        no_quantized=True,  # the int8/fp16 dev scores (issue 16) would add 24 ONNX conversions here
    )
    out = train(cfg, progress=False)
    log = json.loads((out / "training.json").read_text())
    assert log["stages"]["depth"]["steps"] == 2
    per_layer = [s for s in seen if s.per_layer]
    # per depth step: the teacher's full pass, then largest (w1-d1), smallest (1 layer) and 2 random
    assert len(per_layer) >= 2 * 2 and any(len(s.layers) == 1 and s.heads == (1,) for s in per_layer)
    assert json.loads((out / "train_config.json").read_text())["sandwich"] == 2


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_sandwich(bad):
    with pytest.raises(UsageError, match="--sandwich"):
        TrainConfig(data="d", out="o", sandwich=bad)


def test_cli_passes_sandwich(monkeypatch):
    seen = []
    monkeypatch.setattr("edgebert.commands.train.train", lambda cfg, progress: seen.append(cfg) or "o")
    assert main(["train", "--data", "d.csv", "--out", "o", "--sandwich", "3"]) == 0
    assert seen[0].sandwich == 3
