"""The accuracy gate (issue 16 item 5): recipes in order, each tried one recorded, fallback said aloud."""

from __future__ import annotations

import pytest

from edgebert.cli import main
from edgebert.errors import ParityError
from edgebert.export import gate
from edgebert.export.manifest import validate
from edgebert.export.pipeline import ExportConfig, export


def _export(model_dir, out, **kw):
    return export(ExportConfig(out=str(out), model=str(model_dir), seq_len=32, **kw), progress=False)


def test_int8_passes_the_default_gate_and_records_it(tiny_model_dir, tmp_path):
    m = _export(tiny_model_dir, tmp_path / "q", formats=("onnx",), precision="int8")
    validate(m)
    a = m["artifacts"][0]
    g = a["quality_gate"]
    assert a["precision"] == "int8" and a["recipe"] == "int8" and g["chosen"] == "int8"
    assert g["max_drop"] == 0.005 and g["tried"][0]["passed"] and g["tried"][0]["drop"] <= 0.005
    assert g["tried"][0]["metric"] == "mean cosine to fp32" and g["tried"][0]["n"] >= 96


def _forced(monkeypatch, failing: set[str]):
    """Make the named recipes measure a large drop, whatever the artifact really does."""
    real = gate.recipe_quality

    def fake(sub, runtime, tokenizer, conv, acfg):
        q = real(sub, runtime, tokenizer, conv, acfg)
        return {**q, "quality": 0.5, "drop": 0.5} if acfg.quant_recipe in failing else q

    monkeypatch.setattr(gate, "recipe_quality", fake)


def test_a_failing_recipe_falls_back_and_says_so(tiny_model_dir, tmp_path, monkeypatch):
    _forced(monkeypatch, {"int8"})
    m = _export(tiny_model_dir, tmp_path / "q", formats=("onnx",), precision="int8")
    validate(m)
    onnx = m["artifacts"][0]
    assert onnx["recipe"] == "int8-keep-ends" and onnx["precision"] == "int8"
    assert [t["recipe"] for t in onnx["quality_gate"]["tried"]] == ["int8", "int8-keep-ends"]
    assert any("fell back to int8-keep-ends" in n and "exceeds" in n for n in onnx["notes"])
    assert any("first and last layer" in n and "kept fp32" in n for n in onnx["notes"])


class _FakeConverter:
    """A format that writes int8 and fp16 but cannot keep layers fp32 (like TFLite)."""

    name, precisions, extra_recipes = "fake", ("fp32", "fp16", "int8"), ()

    def load(self, path, threads=1):
        return None


def _gate_with(monkeypatch, tmp_path, tiny_model, drops: dict, given=None):
    monkeypatch.setattr(
        gate,
        "recipe_quality",
        lambda sub, rt, tok, conv, acfg: {
            "metric": "m",
            "quality": 1 - drops[acfg.quant_recipe],
            "drop": drops[acfg.quant_recipe],
            "n": 96,
        },
    )
    made = []

    def convert_and_verify(sub, tok, conv, acfg, folder, threads, card=None):
        made.append(acfg.quant_recipe)
        return {"file": "model.fake", "notes": []}

    acfg = gate.ArtifactConfig("fake", "int8", 32)
    entry = gate.gated(convert_and_verify, tiny_model, None, _FakeConverter(), acfg, tmp_path, 1, None, given)
    return entry, made


def test_a_format_without_keep_ends_says_so_and_goes_to_fp16(monkeypatch, tmp_path, tiny_model):
    entry, made = _gate_with(monkeypatch, tmp_path, tiny_model, {"int8": 0.02, "fp16": 0.0001})
    assert made == ["int8", "fp16"]
    tried = entry["quality_gate"]["tried"]
    assert [t["recipe"] for t in tried] == ["int8", "int8-keep-ends", "fp16"]
    assert "cannot write" in tried[1]["why"] and entry["quality_gate"]["chosen"] == "fp16"
    assert entry["requested_precision"] == "int8"  # so export --device judges the fp16 file's budgets again
    assert any("fell back to fp16" in n for n in entry["notes"])


def test_none_passing_is_exit_4_with_the_figures(monkeypatch, tmp_path, tiny_model):
    with pytest.raises(ParityError) as err:
        _gate_with(monkeypatch, tmp_path, tiny_model, {"int8": 0.02, "fp16": 0.01})
    assert err.value.exit_code == 4
    text = str(err.value)
    assert "int8: m 0.9800" in text and "fp16: m 0.9900" in text and "Nothing was written" in text


def test_classifier_gate_is_in_points(tiny_classifier_dir, tmp_path):
    m = _export(tiny_classifier_dir, tmp_path / "c", formats=("onnx",), precision="int8", max_quality_drop=100)
    g = m["artifacts"][0]["quality_gate"]
    assert g["max_drop"] == 1.0 and g["max_drop_given"] == "100 accuracy points"
    assert g["tried"][0]["metric"] == "argmax agreement with fp32"


@pytest.mark.parametrize(
    ("value", "extra"),
    [("-0.1", ()), ("nan", ()), ("inf", ()), ("abc", ()), ("2", ()), ("0.01", ("--quantize", "fp32"))],
)
def test_bad_max_quality_drop_exits_2(tiny_model_dir, tmp_path, value, extra, capsys):
    args = [
        "export",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(tmp_path / "o"),
        "--formats",
        "onnx",
        "--seq-len",
        "32",
    ]
    args += ["--max-quality-drop", value, "--no-measure", *(extra or ("--quantize", "int8"))]
    assert main(args) == 2
    assert "max-quality-drop" in capsys.readouterr().err.lower().replace("'", "")
    assert not (tmp_path / "o").exists()


def test_a_classifier_refused_for_one_changed_label_is_told_the_gates_resolution(monkeypatch, tmp_path):
    """96 texts: one changed label is 1.04 points, above the default 0.5, so the default accepts no change;
    the note says so and names the --max-quality-drop that accepts it."""
    from conftest import make_tiny_model

    classifier = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    entry, _ = _gate_with(monkeypatch, tmp_path, classifier, {"int8": 1 / 96, "fp16": 0.0})
    note = next(n for n in entry["notes"] if "fell back to fp16" in n)
    assert "one changed label is 1.04 accuracy points" in note and "--max-quality-drop 1.05 accepts 1 " in note
    # an encoder's drop is a cosine, not labels: no such hint
    encoder = make_tiny_model()
    entry, _ = _gate_with(monkeypatch, tmp_path, encoder, {"int8": 1 / 96, "fp16": 0.0})
    assert not any("changed label" in n for n in entry["notes"])
    # allowed drop above one label: nothing to explain
    entry, _ = _gate_with(monkeypatch, tmp_path, classifier, {"int8": 3 / 96, "fp16": 0.0}, given=2.0)
    assert not any("changed label" in n for n in entry["notes"])
