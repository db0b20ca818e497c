"""Compression levels as candidates: `export --device` over a model folder holding compressed variants."""

import json
from dataclasses import replace

import pytest
import yaml
from conftest import make_tiny_model, save_tiny_model_dir

from edgebert.cli import main
from edgebert.compress.factorise import factorise
from edgebert.export.manifest import validate
from edgebert.model.bert import load_model
from edgebert.model.compression import COMPRESSION_FILE
from edgebert.model.loaded import weights_sha256
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.select.costs import costs
from edgebert.select.profiles import load_profile
from edgebert.select.quality import write_table

DATA = "dev.csv"


def _table(top: float, data: str = DATA) -> dict:
    # Quality falls steeply with width and depth, so only a full-size network can reach the top.
    return {
        SubnetSpec(w, d).key: {"score": round(top - (1 - w) * 0.4 - (1 - d) * 0.4, 4), "metric": "accuracy",
                               "data": data, "n": 100}
        for w in WIDTHS for d in DEPTHS
    }  # fmt: skip


def _variant(base_dir, name, ranks, top, data=DATA, sibling=False):
    base = load_model(base_dir)
    model = factorise(base, *ranks)
    model.config = replace(model.config, extra={**base.config.extra, "compressed": True})
    folder = save_tiny_model_dir((base_dir.parent if sibling else base_dir) / name, model)
    if sibling:  # kept beside the model, joined by a symbolic link in its folder
        (base_dir / name).symlink_to(f"../{name}")
    record = {
        "plan": {"embedding_rank": ranks[0], "weight_rank": ranks[1], "prune": 0.0, "prune_kind": "structured"},
        "source": {"path": str(base_dir), "weights_sha256": weights_sha256(base_dir)},
        "distillation": {"steps": 4, "seconds": 1.0},
        "quality": None,
    }
    (folder / COMPRESSION_FILE).write_text(json.dumps(record))
    write_table(folder, _table(top, data))
    return folder


@pytest.fixture
def family(tmp_path):
    model = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    model.config = replace(model.config, extra={"rewired": {"loss": "test"}})
    base = save_tiny_model_dir(tmp_path / "rt-dyna", model)
    write_table(base, _table(0.90))
    _variant(base, "r16-w12", (16, 12), 0.88, sibling=True)
    _variant(base, "other-data", (16, 6), 0.95, data="elsewhere.csv")  # not comparable: left out
    host = yaml.safe_load(open(load_profile("host").path))
    host["name"] = "board"  # a named profile: no host calibration in the test
    (tmp_path / "board.yaml").write_text(yaml.safe_dump(host))
    return tmp_path, base


def _export(tmp_path, base, out, *extra):
    argv = ["export", "--model", str(base), "--device", str(tmp_path / "board.yaml"), "--budget", "1000ms"]
    argv += ["--seq-len", "32", "--formats", "torchscript", "--quantize", "fp32", "--no-measure", "--out", str(out)]
    assert main([*argv, *extra]) == 0
    m = json.loads((out / "manifest.json").read_text())
    validate(m)
    return m


def _memory(model_dir, spec=SubnetSpec(1.0, 1.0)) -> float:
    prof = load_profile("host")
    return prof.latency_model.predict_memory(costs(load_model(model_dir).config, 32, spec), "torchscript", "fp32").upper


def test_the_uncompressed_model_wins_when_it_fits_and_the_incomparable_variant_is_left_out(family):
    tmp_path, base = family
    m = _export(tmp_path, base, tmp_path / "roomy")
    sel = m["selection"]
    assert sel["variants"]["chosen"] == "rt-dyna" and sel["chosen"]["variant"] == "rt-dyna"
    assert [v["name"] for v in sel["variants"]["considered"]] == ["rt-dyna", "rt-dyna/r16-w12"]
    (left,) = sel["variants"]["left_out"]
    assert left["path"].endswith("other-data") and "elsewhere.csv" in left["why"]
    assert {c["variant"] for c in sel["candidates"]} == {"rt-dyna", "rt-dyna/r16-w12"}
    assert m["compression"] is None and m["source_model"]["path"] == str(base.resolve())


def test_a_memory_limit_only_the_compressed_variant_fits_picks_it_and_says_so(family, capsys):
    tmp_path, base = family
    small, big = _memory(base / "r16-w12"), _memory(base)
    assert small < big
    limit = (small + big) / 2
    m = _export(tmp_path, base, tmp_path / "tight", "--memory", f"{limit:.6f}MB")
    sel = m["selection"]
    assert sel["chosen"]["variant"] == "rt-dyna/r16-w12" and sel["chosen"]["spec"] == "w1-d1"
    assert sel["chosen"]["quality"] == 0.88 and "variant rt-dyna/r16-w12" in sel["why"]
    assert m["source_model"]["path"] == str((tmp_path / "r16-w12").resolve())  # the sibling the link points to
    assert m["compression"]["subnet"]["embedding_rank"] == 16  # the variant's folder and record were exported
    assert m["artifacts"][0]["parity"]["passed"]
    base_full = next(c for c in sel["candidates"] if c["variant"] == "rt-dyna" and c["spec"] == "w1-d1")
    assert not base_full["fits"] and "memory" in base_full["why"]
    assert "rt-dyna/r16-w12" in (tmp_path / "tight" / "report.md").read_text()


def test_without_a_measured_table_the_variants_are_left_out_and_say_why(family):
    tmp_path, base = family
    (base / "quality.json").unlink()
    m = _export(tmp_path, base, tmp_path / "proxy")
    sel = m["selection"]
    assert [v["name"] for v in sel["variants"]["considered"]] == ["rt-dyna"]
    assert all("no measured quality table" in x["why"] for x in sel["variants"]["left_out"])
