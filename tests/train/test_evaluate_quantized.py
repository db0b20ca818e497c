"""`edgebert evaluate --quantized`: per-precision scores of the artifacts themselves (issue 16 item 4)."""

import pytest
from conftest import SENTENCES

from edgebert.cli import main
from edgebert.model.bert import load_model
from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import load_tokenizer
from edgebert.select.quality import read_table
from edgebert.train.data import load_data
from edgebert.train.evaluate import measure


def test_per_precision_scores_come_from_the_artifact(tiny_model_dir, tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(SENTENCES * 3))
    model = load_model(tiny_model_dir)
    specs = [SubnetSpec(1.0, 1.0)]
    table = measure(
        model,
        load_data(str(tmp_path / "c.txt"), labelled=False),
        load_tokenizer(tiny_model_dir),
        specs,
        seq_len=32,
        quantized=("onnx/int8",),
    )
    row = table["w1-d1"]
    q = row["precisions"]["onnx/int8"]
    assert q["metric"] == "cosine_fidelity" and q["recipe"] == "int8" and q["n"] == row["n"]
    assert 0.9 < q["score"] < row["score"]  # int8 loses a little against the fp32 slice's 1.0


@pytest.mark.parametrize("bad", ["onnx/int4", "torchscript/int8", "nope/int8", "onnx"])
def test_bad_quantized_values_exit_2(tiny_model_dir, tmp_path, bad, capsys):
    (tmp_path / "c.txt").write_text("\n".join(SENTENCES))
    args = ["evaluate", "--model", str(tiny_model_dir), "--data", str(tmp_path / "c.txt"), "--quantized", bad]
    assert main(args) == 2
    assert "--quantized" in capsys.readouterr().err


def test_old_tables_stay_readable(tiny_model_dir):
    (tiny_model_dir / "quality.json").write_text('{"w1-d1": {"score": 0.9, "metric": "accuracy", "data": "d", "n": 3}}')
    assert read_table(tiny_model_dir)["w1-d1"]["score"] == 0.9
