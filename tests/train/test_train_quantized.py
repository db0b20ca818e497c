"""`edgebert train` scores every (width, depth) per precision on its dev set (issue 16 item 4), and the
selector reads those figures as the measured quality of its int8/fp16 candidates."""

from __future__ import annotations

import json

import pytest
from conftest import make_tiny_model, save_tiny_model_dir, sentiment_csv

from edgebert.cli import main
from edgebert.commands.train import format_train
from edgebert.errors import UsageError
from edgebert.model.bert import load_model
from edgebert.model.loaded import load
from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import load_tokenizer
from edgebert.select.quality import QUALITY_FILE, keep_precisions
from edgebert.select.quantized import QuantizedQuality
from edgebert.train import evaluate as evaluate_mod
from edgebert.train.config import TrainConfig
from edgebert.train.data import load_data
from edgebert.train.evaluate import DEFAULT_QUANTIZED, measure, measure_quantized
from edgebert.train.recipe import train

GRID = dict(widths=(0.5, 1.0), depths=(1.0,))  # each subnet costs one ONNX conversion (~6 s)
KEYS = {SubnetSpec(w, d).key for w in GRID["widths"] for d in GRID["depths"]}
WHAT = ("score", "metric", "format", "precision", "recipe", "runtime", "data", "n", "measured_at")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny classifier trained with dev data (--eval), scored as ONNX int8 too. One precision keeps it short:
    each ONNX conversion, dynamo export included, takes ~6 s even for this model; the default pair is
    checked in test_config_defaults_skip_and_recipes."""
    tmp = tmp_path_factory.mktemp("trainq")
    model_dir = save_tiny_model_dir(tmp / "base", make_tiny_model())
    data, dev = sentiment_csv(tmp / "train.csv", n=160), sentiment_csv(tmp / "dev.csv", n=48, seed=1)
    cfg = TrainConfig(
        data=str(data),
        eval=str(dev),
        out=str(tmp / "out"),
        model=str(model_dir),
        batch_size=16,
        seq_len=16,
        max_steps=6,
        lr=1e-3,
        rewire_texts=32,
        quantized="onnx/int8",
        **GRID,
    )
    return train(cfg, progress=False), dev


def test_train_writes_per_precision_scores_for_every_subnet(trained):
    out, dev = trained
    table = json.loads((out / QUALITY_FILE).read_text())
    assert set(table) == KEYS
    for key, row in table.items():
        assert set(row["precisions"]) == {"onnx/int8"}
        for what, q in row["precisions"].items():
            assert all(k in q for k in WHAT), (key, what, q)
            assert f"{q['format']}/{q['recipe']}" == what and q["precision"] == what.split("/")[1]
            assert q["data"] == row["data"] and q["data"].endswith("dev.csv") and q["n"] == row["n"] == 48
            assert q["metric"] == "accuracy" and 0 <= q["score"] <= 1 and q["runtime"].startswith("onnxruntime ")
    log = json.loads((out / "training.json").read_text())["quantized_quality"]
    assert log["scored"] == ["onnx/int8"] and log["failed"] == [] and log["seconds"] >= 0
    assert json.loads((out / "train_config.json").read_text())["quantized"] == ["onnx/int8"]
    assert "quality per precision on the dev set: onnx/int8 (" in format_train(out)


def test_the_figures_are_the_artifacts_own_scores(trained):
    """Re-scoring one sub-network's ONNX int8 artifact on the same dev set gives the figure train wrote."""
    out, dev = trained
    model, data = load_model(out), load_data(str(dev))
    spec = SubnetSpec(0.5, 1.0)
    again = measure(model, data, load_tokenizer(out), [spec], seq_len=16, quantized=("onnx/int8",))
    written = json.loads((out / QUALITY_FILE).read_text())[spec.key]["precisions"]["onnx/int8"]["score"]
    assert again[spec.key]["precisions"]["onnx/int8"]["score"] == written


def test_the_selector_reads_them_as_measured(trained, monkeypatch):
    out, _ = trained
    loaded = load(str(out))
    q = QuantizedQuality(loaded, {})
    monkeypatch.setattr("edgebert.select.quantized.measure_recipe", lambda *a, **k: pytest.fail("converted"))
    table = json.loads((out / QUALITY_FILE).read_text())
    for key in KEYS:
        spec = SubnetSpec.from_key(key)
        score, source = q.recorded(spec, "onnx", "int8")
        assert score == table[key]["precisions"]["onnx/int8"]["score"]
        assert source.startswith("measured for onnx int8 (int8): accuracy") and "dev.csv" in source
        assert q.recorded(spec, "onnx", "fp16") is None  # not scored: the selector measures or derives it


def test_a_failing_conversion_is_skipped_and_reported(tiny_classifier_dir, tmp_path, monkeypatch):
    def boom(sub, what, batches, seq_len):
        raise RuntimeError(f"{what} broke")

    monkeypatch.setattr(evaluate_mod, "_artifact_outputs", boom)
    model, data = load_model(tiny_classifier_dir), load_data(str(sentiment_csv(tmp_path / "d.csv", n=8)))
    tok, spec = load_tokenizer(tiny_classifier_dir), SubnetSpec(1.0, 1.0)
    table = measure(model, data, tok, [spec], seq_len=16)
    failed = measure_quantized(model, data, tok, table, ("onnx/int8",), seq_len=16, strict=False)
    assert failed == [{"spec": "w1-d1", "what": "onnx/int8", "error": "RuntimeError: onnx/int8 broke"}]
    assert "precisions" not in table["w1-d1"]
    with pytest.raises(RuntimeError, match="broke"):
        measure_quantized(model, data, tok, table, ("onnx/int8",), seq_len=16)


def test_config_defaults_skip_and_recipes():
    assert TrainConfig(data="d", out="o").quantized == DEFAULT_QUANTIZED == ("onnx/int8", "onnx/fp16")
    assert TrainConfig(data="d", out="o", no_quantized=True).quantized == ()
    cfg = TrainConfig(data="d", out="o", quantized="onnx/int8-keep-ends, tflite/int8,onnx/int8-keep-ends")
    assert cfg.quantized == ("onnx/int8-keep-ends", "tflite/int8")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # Asking for other scores is no reason to refuse --resume: they are measured after the last stage.
    assert cfg.run_identity() == TrainConfig(data="d", out="o", no_quantized=True).run_identity()


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--quantized", "onnx/int8", "--no-quantized"], "--no-quantized"),
        (["--quantized", "onnx/fp32"], "--quantized 'onnx/fp32'"),
        (["--quantized", "torchscript/int8"], "--quantized 'torchscript/int8'"),
        (["--quantized", "onnx/int4"], "FORMAT/PRECISION or FORMAT/RECIPE"),
        (["--quantized", "nope/int8"], "onnx: fp16, int8"),
        (["--quantized", " , "], "names nothing"),
    ],
)
def test_bad_flags_exit_2_before_training(flags, match, capsys, monkeypatch):
    monkeypatch.setattr("edgebert.commands.train.train", lambda *a, **k: pytest.fail("trained"))
    assert main(["train", "--data", "d.csv", "--out", "o", *flags]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_a_missing_toolchain_is_refused_up_front(monkeypatch):
    from edgebert.registry import CONVERTERS

    monkeypatch.setattr(CONVERTERS.get("executorch"), "unavailable", classmethod(lambda cls: "not here (pip x)"))
    with pytest.raises(UsageError, match="executorch/int8.*not here"):
        TrainConfig(data="d", out="o", quantized="executorch/int8")


def test_evaluate_keeps_scores_it_did_not_remeasure_on_the_same_data():
    row = {"score": 0.8, "metric": "accuracy", "data": "dev.csv", "n": 10}
    old = {"w1-d1": {**row, "precisions": {"onnx/int8": {**row, "score": 0.7}, "tflite/int8": {**row, "score": 0.6}}}}
    new = {"w1-d1": {**row, "precisions": {"onnx/int8": {**row, "score": 0.75}}}, "w0.5-d1": dict(row)}
    kept = keep_precisions(new, old)
    assert kept["w1-d1"]["precisions"] == {"onnx/int8": {**row, "score": 0.75}, "tflite/int8": {**row, "score": 0.6}}
    assert "precisions" not in kept["w0.5-d1"]
    other = {"w1-d1": {**row, "n": 11}}  # another dev set: nothing of the old one is kept
    assert "precisions" not in keep_precisions(other, old)["w1-d1"]


def test_artifacts_are_scored_one_text_at_a_time_at_its_own_length(tiny_classifier_dir, tmp_path, monkeypatch):
    """As an app runs them: ORT's dynamic int8 quantizes activations per tensor, so padded batch-mates would
    change a text's result. No conversion here: the converter is stubbed, the runtime records its feeds."""
    import numpy as np

    from edgebert.registry import CONVERTERS

    seen = []

    def fake_runtime(feeds):
        seen.append((feeds["input_ids"].shape, int(feeds["attention_mask"].sum())))
        return np.zeros((len(feeds["input_ids"]), 2), dtype=np.float32)

    conv = CONVERTERS.get("onnx")
    monkeypatch.setattr(conv, "convert", lambda self, model, config, path: {})
    monkeypatch.setattr(conv, "load", lambda self, path, threads=1, signature=None: fake_runtime)
    model, data = load_model(tiny_classifier_dir), load_data(str(sentiment_csv(tmp_path / "d.csv", n=20)))
    table = measure(model, data, load_tokenizer(tiny_classifier_dir), [SubnetSpec(1.0, 1.0)], quantized=("onnx/int8",))
    assert len(seen) == 20 and all(shape == (1, length) for shape, length in seen)
    assert table["w1-d1"]["precisions"]["onnx/int8"]["n"] == 20


def test_evaluate_scores_the_grid_train_trained(tiny_classifier_dir, tmp_path):
    from edgebert.train.evaluate import evaluate

    (tiny_classifier_dir / "train_config.json").write_text(json.dumps({"widths": [0.5, 1.0], "depths": [1.0]}))
    table = evaluate(tiny_classifier_dir, str(sentiment_csv(tmp_path / "d.csv", n=8)))
    assert set(table) == {"w0.5-d1", "w1-d1"}
