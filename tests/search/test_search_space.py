"""Per-layer sub-networks (issue 17 part 1): the spec, slicing, dynamic forward, the space, and export."""

from __future__ import annotations

import json
import random

import pytest
import torch
from conftest import make_tiny_model

from edgebert.errors import SpecError
from edgebert.export.manifest import validate
from edgebert.export.pipeline import ExportConfig, export
from edgebert.model.dynamic import dynamic_encode
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec, subnet_config
from edgebert.search.space import SearchSpace

# Tiny model: 3 layers of 3 heads, FFN 70. Non-contiguous layers, 1 head, different widths per layer.
ODD = dict(layers=(0, 2), heads=(1, 3), ffn=(9, 53))


def test_per_layer_spec_round_trips_and_summarises(tiny_model):
    spec = SubnetSpec.from_layers(tiny_model.config, **ODD)
    assert spec.per_layer and spec.depth == pytest.approx(0.667) and 0 < spec.width < 1
    assert SubnetSpec.from_key(spec.key) == spec
    assert SubnetSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.plan(tiny_model.config.heads, tiny_model.config.ffn) == ((0, 1, 9), (2, 3, 53))
    c = subnet_config(tiny_model.config, spec)
    assert c.heads == (1, 3) and c.ffn == (9, 53) and c.source_layers == (0, 2)
    # a uniform spec is unchanged: its key, dict and plan are DynaBERT's
    assert SubnetSpec(0.5, 0.75).key == "w0.5-d0.75" and SubnetSpec(0.5, 0.75).to_dict() == {
        "width": 0.5,
        "depth": 0.75,
    }


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(layers=(2, 0), heads=(1, 1), ffn=(5, 5)), "ascending"),
        (dict(layers=(0,), heads=(0,), ffn=(5,)), ">= 1 head"),
        (dict(layers=(0, 1), heads=(1,), ffn=(5, 5)), "one head count"),
        (dict(layers=(3,), heads=(1,), ffn=(5,)), "has 3 layers"),
        (dict(layers=(1,), heads=(4,), ffn=(5,)), "which has 3"),
        (dict(layers=(), heads=(), ffn=()), "at least one layer"),
    ],
)
def test_bad_per_layer_specs_are_spec_errors(tiny_model, kw, match):
    with pytest.raises(SpecError, match=match):
        SubnetSpec.from_layers(tiny_model.config, **kw)


def test_slice_matches_dynamic_forward(tiny_model):
    spec = SubnetSpec.from_layers(tiny_model.config, **ODD)
    ids = torch.randint(5, tiny_model.config.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    sub = slice_model(tiny_model, spec).eval()
    with torch.no_grad():
        states, layers = dynamic_encode(tiny_model, ids, mask, None, spec)
        assert layers == [0, 2]
        torch.testing.assert_close(sub.encode(ids, mask, torch.zeros_like(ids))[-1], states[-1])


def test_space_holds_the_grid_and_stays_in_bounds(tiny_model):
    space = SearchSpace.for_config(tiny_model.config)
    assert space.head_choices[0] == (1, 2, 3) and space.ffn_choices[0][0] == 9 and space.ffn_choices[0][-1] == 70
    grid = space.grid()
    assert len(grid) == 12 and all(space.spec(space.genome(s)) == s for s in grid)  # grid points keep their keys
    rng = random.Random(0)
    for _ in range(200):
        g = space.crossover(space.mutate(space.sample(rng), rng, 0.5), space.sample(rng), rng)
        spec = space.spec(g)
        assert space.contains(spec) and spec.fits(tiny_model.config.heads, tiny_model.config.ffn)
    assert space.spec(space.largest()) == SubnetSpec(1.0, 1.0)


def test_non_uniform_slice_exports_in_every_format(tiny_model_dir, tmp_path):
    """Bounds of the space (1 head, the smallest FFN step, a gap in the layers) pass every converter's parity gate."""
    model = make_tiny_model()
    spec = SubnetSpec.from_layers(model.config, **ODD)
    cfg = ExportConfig(out=str(tmp_path / "odd"), model=str(tiny_model_dir), spec=spec, seq_len=16)
    m = export(cfg, progress=False)
    validate(m)
    assert {a["format"] for a in m["artifacts"]} == {"onnx", "tflite", "torchscript"}
    assert all(a["parity"]["passed"] for a in m["artifacts"])
    assert m["subnet"]["spec"]["layers"] == [0, 2] and m["subnet"]["heads"] == [1, 3] and m["subnet"]["ffn"] == [9, 53]


@pytest.mark.slow  # ~45 s here: ExecuTorch lowering
def test_non_uniform_slice_exports_to_executorch(tiny_model_dir, tmp_path):
    pytest.importorskip("executorch.exir", reason="executorch is not installed (converters/executorch.py)")
    spec = SubnetSpec.from_layers(make_tiny_model().config, **ODD)
    cfg = ExportConfig(
        out=str(tmp_path / "pte"), model=str(tiny_model_dir), spec=spec, formats=("executorch",), seq_len=16
    )
    (art,) = export(cfg, progress=False)["artifacts"]
    assert art["format"] == "executorch" and art["parity"]["passed"]
