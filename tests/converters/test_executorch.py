"""ExecuTorch converter: export -> lower to XNNPACK -> serialize -> load in executorch.runtime -> compare.

Each stage is checked on its own (the program is delegated, the file loads with the planned bound, rows
run at their own length, the gate passes), not only the end. Lowering is slow (~15 s for one layer on a
busy 2-core machine: no XNNPACK LayerNorm, so one delegate per stretch between LayerNorms), so the tiny
models here have one layer and each file is made once per module.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import make_tiny_model
from converter_helpers import feeds, random_feeds, tok, torch_outputs  # noqa: F401

from edgebert.artifact import ArtifactConfig
from edgebert.errors import MissingExtraError
from edgebert.export.verify import verify
from edgebert.registry import CONVERTERS

SEQ_LEN = 32


@pytest.fixture(scope="module")
def conv():
    return CONVERTERS.get("executorch")()


@pytest.fixture(scope="module")
def one_layer():
    return make_tiny_model(seed=2, heads=(3,), ffn=(70,))


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, conv, one_layer):
    made = {}

    def get(precision="fp32"):
        pytest.importorskip("executorch.exir", reason="executorch is not installed (converters/executorch.py)")
        if precision not in made:
            path = tmp_path_factory.mktemp("pte") / "model.pte"
            made[precision] = (path, conv.convert(one_layer, ArtifactConfig("executorch", precision, SEQ_LEN), path))
        return made[precision]

    return get


def test_registered_with_its_facts(conv):
    assert conv.name == "executorch" and conv.suffix == ".pte" and conv.precisions == ("fp32", "int8")
    assert "executorch" in CONVERTERS.names() and conv.dynamic_shapes


def test_fp32_file_is_xnnpack_delegated_with_a_bounded_length(artifact, conv):
    path, facts = artifact()
    assert path.read_bytes()[4:8] == b"ET12"  # ExecuTorch's flatbuffer file identifier
    assert b"XnnpackBackend" in path.read_bytes()
    run = conv.load(path)
    assert run.seq_len == SEQ_LEN  # buffers planned for the bound
    assert facts["inputs"][0] == {"name": "input_ids", "dtype": "int64", "shape": [1, "sequence"]}
    assert any("XNNPACK" in n for n in facts["notes"])


def test_fp32_matches_torch_row_by_row_at_any_length(artifact, conv, one_layer):
    run = conv.load(artifact()[0], threads=2)
    for batch, length in ((1, 3), (3, 20), (2, SEQ_LEN + 9)):  # shorter than the minimum, padded, truncated
        f = random_feeds(one_layer, batch, length, seed=length)
        ref = torch_outputs(one_layer, {k: v[:, :SEQ_LEN] for k, v in f.items()})
        out = run(f)
        assert out.shape == ref.shape and out.dtype == np.float32
        assert np.abs(out - ref).max() <= 1e-5


def test_fp32_and_int8_pass_the_parity_gate(artifact, conv, one_layer, tok):
    for precision in ("fp32", "int8"):
        acfg = ArtifactConfig("executorch", precision, SEQ_LEN)
        fig = verify(one_layer, conv.load(artifact(precision)[0]), tok, conv, acfg)
        assert fig["passed"], fig["failures"]
        assert fig["batch_sizes"][0] == 1 and max(fig["batch_sizes"]) > 1  # batched and one by one
    int8_path, int8_facts = artifact("int8")
    assert int8_path.stat().st_size < artifact()[0].stat().st_size  # int8 weights of the linear layers
    assert any("PT2E" in n for n in int8_facts["notes"])


def test_fp16_is_refused_with_the_supported_precisions(conv):
    with pytest.raises(Exception, match="fp32, int8"):
        conv.resolve_precision("fp16")


def test_missing_executorch_says_which_pip_line(monkeypatch, conv, one_layer, tmp_path):
    for name in ("executorch", "executorch.exir", "executorch.runtime"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ModuleNotFoundError, as when not installed
    with pytest.raises(MissingExtraError, match="pip install --no-deps executorch==1.5.1") as err:
        conv.convert(one_layer, ArtifactConfig("executorch", "fp32", SEQ_LEN), tmp_path / "model.pte")
    assert err.value.exit_code == 2 and not (tmp_path / "model.pte").exists()
    with pytest.raises(MissingExtraError, match="ExecuTorch artifacts needs ExecuTorch"):
        conv.load(tmp_path / "model.pte")


@pytest.mark.slow
def test_minilm_slice_parity(minilm_dir, conv, tmp_path):
    """Real weights: a 3-layer, 3-head MiniLM slice at the export's default length (fp32 only: lowering MiniLM
    takes minutes here; int8 on MiniLM is measured by benchmarks/export_bench.py, see README)."""
    pytest.importorskip("executorch.exir", reason="executorch is not installed (converters/executorch.py)")
    from edgebert.model.bert import load_model
    from edgebert.model.slicing import slice_model
    from edgebert.model.spec import SubnetSpec
    from edgebert.model.tokenizer import load_tokenizer

    model = slice_model(load_model(minilm_dir), SubnetSpec(0.25, 0.5)).eval()
    cfg = ArtifactConfig("executorch", "fp32", 128)
    conv.convert(model, cfg, tmp_path / "model.pte")
    figures = verify(model, conv.load(tmp_path / "model.pte"), load_tokenizer(minilm_dir), conv, cfg)
    assert figures["passed"] and figures["max_abs_diff"] <= 1e-4, figures


def test_a_profile_format_that_is_not_installed_is_skipped(monkeypatch):
    import dataclasses
    import importlib.util

    from edgebert.select.choose import allowed
    from edgebert.select.profiles import load_profile

    profile = dataclasses.replace(load_profile("pixel6"), formats=("executorch", "tflite"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "executorch" else real(n, *a))
    assert allowed(profile, None, None)[0] == ("tflite",)
    assert allowed(profile, ("executorch",), None)[0] == ("executorch",)  # asked for: it says so when used
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert allowed(profile, None, None)[0] == ("executorch", "tflite")


def test_edgebert_runtime_opens_the_pte_one_text_at_a_time(artifact, one_layer):
    """`edgebert predict` (edgebert.runtime, no converter): batch 1, shorter than 8 tokens padded with mask 0."""
    from edgebert.model.tokenizer import INPUT_NAMES
    from edgebert.runtime.backends import FORMAT_OF_SUFFIX, open_session

    path = artifact()[0]
    session = open_session(FORMAT_OF_SUFFIX[path.suffix], path, inputs=INPUT_NAMES, outputs=["embeddings"])
    for length in (3, 20):
        f = random_feeds(one_layer, 1, length, seed=length)
        out = session(f)["embeddings"]
        assert out.shape == (1, 48) and np.abs(out - torch_outputs(one_layer, f)).max() <= 1e-5
