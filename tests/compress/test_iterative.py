"""Structured pruning in steps with distillation between them (LadaBERT's schedule): shapes shrink step by
step to the one-shot shape, the loss stays finite, an interrupted run resumes, and the result exports with
parity."""

import json
import math
from dataclasses import replace

import pytest
from conftest import make_tiny_model, save_tiny_model_dir, sentiment_csv

from edgebert.cli import main
from edgebert.compress.config import CompressConfig
from edgebert.compress.iterative import prune_to, step_budgets, step_shares
from edgebert.compress.prune import prune_structured
from edgebert.compress.recipe import compress
from edgebert.export.pipeline import ExportConfig, export
from edgebert.model.bert import load_model
from edgebert.model.compression import COMPRESSION_FILE
from edgebert.model.spec import SubnetSpec


def _rewired():
    model = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    model.config = replace(model.config, extra={"rewired": {"loss": "test"}})
    return model


def test_each_step_keeps_fewer_heads_and_neurons_and_the_last_is_the_one_shot_shape():
    model = _rewired()
    shapes, current = [], model
    for share in step_shares(0.6, 3):
        current = prune_to(current, model.config, share)
        shapes.append((current.config.heads, current.config.ffn))
    assert [s[1] for s in shapes] == [(56,) * 3, (42,) * 3, (28,) * 3]
    assert [s[0] for s in shapes] == [(2,) * 3, (2,) * 3, (1,) * 3]
    one_shot = prune_structured(model, 0.6)
    assert shapes[-1] == (one_shot.config.heads, one_shot.config.ffn)
    # Slicing keeps the first (most important) heads: the last step's weights are the one-shot slice's.
    assert current.layers[0].ffn.up.weight.equal(one_shot.layers[0].ffn.up.weight)


def test_the_distillation_budget_is_split_and_keeps_its_total():
    cfg = CompressConfig(data="d", out="o", max_steps=10, epochs=1.5, prune=0.4, prune_steps=3)
    budgets = step_budgets(cfg, 3)
    assert [b["max_steps"] for b in budgets] == [4, 3, 3] and budgets[0]["epochs"] == 0.5


def test_compress_prunes_in_steps_resumes_and_the_result_exports_with_parity(tmp_path, capsys):
    model_dir = save_tiny_model_dir(tmp_path / "cls", make_tiny_model(task="classification", num_labels=2,
                                                                      labels=("neg", "pos")))  # fmt: skip
    kw = dict(
        data=str(sentiment_csv(tmp_path / "train.csv")), out=str(tmp_path / "p"), model=str(model_dir),
        batch_size=16, seq_len=16, max_steps=6, lr=1e-3, checkpoint_every=1, rewire_texts=32,
        prune=0.6, prune_steps=3, embedding_rank=16, widths=(0.5, 1.0), depths=(0.5, 1.0), no_quantized=True,
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):  # in step 1's distillation: step 1 then finishes on --resume
        compress(CompressConfig(**kw), progress=False, _stop_at=("depth", 1))
    compress(CompressConfig(**kw, resume=True), progress=False)
    record = json.loads((tmp_path / "p" / COMPRESSION_FILE).read_text())
    assert record["plan"]["prune_steps"] == 3
    steps = record["distillation"]["prune_steps"]
    assert [s["ffn"] for s in steps] == [[56] * 3, [42] * 3, [28] * 3]
    assert [s["steps"] for s in steps] == [2, 2, 2] and record["distillation"]["steps"] == 6
    assert all(math.isfinite(s["loss_first"]) and math.isfinite(s["loss_last"]) for s in steps)
    result = load_model(tmp_path / "p")
    assert (result.config.heads, result.config.embedding_rank) == ((1, 1, 1), 16)
    for fmt, precision in (("onnx", "int8"), ("torchscript", "fp32")):
        cfg = ExportConfig(str(tmp_path / fmt), model=str(tmp_path / "p"), spec=SubnetSpec(1.0, 1.0),
                           formats=(fmt,), precision=precision, seq_len=16)  # fmt: skip
        manifest = export(cfg, progress=False)  # raises ParityError when the gate fails
        assert manifest["artifacts"][0]["parity"]["passed"]
        assert manifest["compression"]["source_record"]["plan"]["prune_steps"] == 3


def test_prune_steps_with_unstructured_pruning_is_refused(tmp_path, capsys):
    model_dir = save_tiny_model_dir(tmp_path / "cls", _rewired())
    argv = ["compress", "--model", str(model_dir), "--data", str(sentiment_csv(tmp_path / "t.csv")), "--out"]
    argv += [str(tmp_path / "o"), "--prune", "0.5", "--prune-kind", "unstructured", "--prune-steps", "2"]
    assert main(argv) == 2
    assert "--prune-steps is for structured pruning" in capsys.readouterr().err
    assert main([*argv[:-6], "--prune", "0.5", "--prune-steps", "0"]) == 2
    assert ">= 1" in capsys.readouterr().err
