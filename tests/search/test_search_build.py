"""`edgebert build` with `search = true` (issue 17): the entry exports a per-layer searched sub-network."""

from __future__ import annotations

import json

import pytest
from conftest import make_tiny_model, save_tiny_model_dir

import edgebert.search.pick as pick
from edgebert.build.cache import cache_inputs
from edgebert.build.config import BuildConfigError, load_build_config
from edgebert.cli import main
from edgebert.search.evolution import EvolutionConfig

# TorchScript: converted in a fraction of a second (ONNX's exporter takes ~8 s on the tiny model).
CONFIG = 'model = "tiny"\nformats = ["torchscript"]\nseq_len = 32\nquantize = "fp32"\n'


def _config(tmp_path, body: str):
    save_tiny_model_dir(tmp_path / "tiny", make_tiny_model())
    path = tmp_path / "edgebert.toml"
    path.write_text(CONFIG + body)
    return path


def test_search_entry_builds_a_searched_subnet(tmp_path, monkeypatch):
    real = pick.search_model  # the real search, small enough for a test
    small = EvolutionConfig(population=8, generations=2)
    monkeypatch.setattr(pick, "search_model", lambda *a, **k: real(*a, **{**k, "cfg": small, "n_sample": 16}))
    body = '[matrix.host]\nlatency = "15ms"\nsearch = true\n'
    path = _config(tmp_path, body)
    assert main(["build", str(path)]) == 0
    (row,) = json.loads((tmp_path / "dist" / "index.json").read_text())["entries"]
    assert row["status"] == "built"
    m = json.loads((tmp_path / "dist" / row["folder"] / "manifest.json").read_text())
    assert m["selection"]["method"] == "search" and m["build"]["inputs"]["search"] is True
    assert m["selection"]["chosen"]["predicted_latency_p90_bound_ms"] <= 15.0
    assert m["artifacts"][0]["parity"]["passed"]


def test_search_key_is_a_boolean_and_part_of_the_cache_key(tmp_path):
    path = _config(
        tmp_path,
        '[matrix.raspberry-pi-4]\nlatency = "15ms"\n[[entry]]\ndevice = "raspberry-pi-4"\n'
        'latency = "20ms"\nsearch = true\n',
    )
    cfg = load_build_config(path)
    plain, searched = cfg.entries
    assert not plain.search and searched.search
    assert "search" not in cache_inputs(cfg, plain, "sha", {})  # keys of entries without it are unchanged
    assert cache_inputs(cfg, searched, "sha", {})["search"] is True
    path.write_text(CONFIG + '[matrix.raspberry-pi-4]\nlatency = "15ms"\nsearch = "yes"\n')
    with pytest.raises(BuildConfigError, match=r"\[matrix.raspberry-pi-4\] search: expected true or false"):
        load_build_config(path)
