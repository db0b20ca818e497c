"""Evolutionary search and quality estimates (issue 17 part 2), on the tiny model with stand-in estimates."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import SENTENCES

from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import load_tokenizer
from edgebert.search import quality as quality_mod
from edgebert.search.evolution import EvolutionConfig, Limits, evolve, pareto_front
from edgebert.search.quality import estimate, fit_predictor, proxy_measurer, sample_specs, spearman
from edgebert.search.run import search_budgets
from edgebert.search.space import SearchSpace
from edgebert.select.latency import Prediction

SMALL = EvolutionConfig(population=12, generations=4, seed=1)


@dataclass(frozen=True)
class FakeEfficiency:
    """Latency from the kept heads and neurons (ms), memory from the layer count (MB): no device needed."""

    config: object
    format: str = "onnx"
    precision: str = "fp32"

    def __call__(self, spec):
        plan = spec.plan(self.config.heads, self.config.ffn)
        ms = 1.0 + sum(h + f / 10 for _, h, f in plan)
        return Prediction(ms, "ms", "predicted: test", 0.05, 0.1), Prediction(10.0 * len(plan), "MB", "test", 0.1, 0.2)


def synthetic_quality(space):
    """Rewards the last layer and FFN width more than heads: a shape the uniform grid cannot follow."""

    def q(spec):
        plan = spec.plan(space.config.heads, space.config.ffn)
        return sum((3.0 if i == 2 else 1.0) * (0.2 * h / 3 + f / 70) for i, h, f in plan), "measured: synthetic"

    return q


@pytest.fixture
def space(tiny_model):
    return SearchSpace.for_config(tiny_model.config)


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)


def test_search_returns_only_feasible_points_and_beats_the_grid(space):
    eff, q = FakeEfficiency(space.config), synthetic_quality(space)
    limits = Limits(latency_ms=12.0, memory_mb=25.0)
    points = evolve(space, q, eff, limits, SMALL, seeds=tuple(space.grid()))
    assert points
    for p in points:
        lat, mem = eff(p.spec)
        assert lat.upper <= 12.0 and mem.upper <= 25.0  # judged by the p90 bound, as the selector does
    fitting_grid = [s for s in space.grid() if limits.fits(*eff(s))]
    assert points[0].quality >= max(q(s)[0] for s in fitting_grid)
    front = pareto_front(points)
    assert [p.latency.value for p in front] == sorted(p.latency.value for p in front)
    assert [p.quality for p in front] == sorted(p.quality for p in front)
    for f in front:  # nothing evaluated is both faster and better than a front point
        assert not any(p.latency.value < f.latency.value and p.quality > f.quality for p in points)


def test_nothing_fits_is_said(space):
    eff = FakeEfficiency(space.config)
    assert evolve(space, synthetic_quality(space), eff, Limits(latency_ms=0.5), SMALL) == []


def test_predictor_ranks_held_out_configurations(space):
    q = synthetic_quality(space)
    measured = {s.key: q(s) for s in sample_specs(space, 40, seed=2)}
    pred = fit_predictor(space, measured, seed=0)
    assert pred.n_held_out == 10 and pred.n_train == 30
    assert pred.held_out_spearman > 0.9  # the synthetic quality is linear in the features
    assert pred.source.startswith("predicted: ridge") and "Spearman" in pred.source


def test_proxy_measurer_measures_once_and_caches(tiny_model, tiny_model_dir, space, tmp_path, monkeypatch):
    tok = load_tokenizer(tiny_model_dir)
    cache = tmp_path / "search.json"
    measure = proxy_measurer(tiny_model, tok, list(SENTENCES), 32, cache)
    specs = [SubnetSpec(1.0, 1.0), SubnetSpec.from_layers(tiny_model.config, (0, 2), (1, 3), (9, 53))]
    got = measure(specs)
    assert got["w1-d1"][0] == pytest.approx(1.0, abs=1e-5) and got[specs[1].key][0] < 0.999
    assert all(src.startswith("measured proxy") for _, src in got.values())
    monkeypatch.setattr(quality_mod, "proxy_quality", lambda *a, **k: pytest.fail("measured again"))
    again = proxy_measurer(tiny_model, tok, list(SENTENCES), 32, cache)(specs)
    assert again == got


def test_search_budgets_choose_measured_points_at_least_as_good_as_the_grid(space):
    q = synthetic_quality(space)
    calls = []

    def measure(specs):
        calls.append(len(specs))
        return {s.key: q(s) for s in specs}

    est = estimate(space, measure, n_sample=30, seed=0)
    eff = FakeEfficiency(space.config)
    res = search_budgets(space, est, eff, [Limits(6.0), Limits(12.0), Limits(0.5)], SMALL, confirm=3)
    low, mid, none = res.budgets
    assert none.chosen is None and "nothing fits" in none.why
    for b in (low, mid):
        assert b.chosen.quality_source == "measured: synthetic"  # the reported figure is a measurement
        assert b.grid is None or b.chosen.quality >= b.grid.quality
        assert b.limits.fits(b.chosen.latency, b.chosen.memory)
    assert mid.chosen.quality >= low.chosen.quality
    assert res.front and all(p.quality_source.startswith("measured") for p in res.front)
    row = mid.to_dict()
    assert (
        row["chosen"]["latency"]["kind"] == "predicted" and row["gain_over_grid"] is None or row["gain_over_grid"] >= 0
    )


def test_random_state_is_seeded(space):
    eff, q = FakeEfficiency(space.config), synthetic_quality(space)
    a = evolve(space, q, eff, Limits(9.0), SMALL)
    b = evolve(space, q, eff, Limits(9.0), SMALL)
    assert [p.spec for p in a] == [p.spec for p in b]
