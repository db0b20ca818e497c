"""Search at several budgets: evolve under each, confirm the best by measuring them, compare with the grid.

For every budget the evolution ranks by the estimates (measured figures where the sample has them, the
predictor's elsewhere); then the `confirm` best feasible configurations not yet measured are measured, and
the budget's choice is the best *measured* one. The uniform grid points are always measured (they are in
the sample) and seed the search, so the choice is never below the best grid point under the same estimate:
where it equals it, the search found nothing better and says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from edgebert.model.bert import Bert, BertConfig
from edgebert.model.loaded import Loaded
from edgebert.model.spec import SubnetSpec
from edgebert.search.evolution import EvolutionConfig, Limits, Point, evolve, pareto_front
from edgebert.search.quality import Estimates, Measure, fit_predictor, proxy_measurer, sample_specs
from edgebert.search.space import SearchSpace
from edgebert.select.costs import costs
from edgebert.select.profiles import DeviceProfile
from edgebert.select.proxy import PROXY_SEQ_LEN, proxy_cache_dir, proxy_key, proxy_table, proxy_texts
from edgebert.select.quality import QUALITY_FILE

__all__ = ["Efficiency", "BudgetResult", "SearchResult", "search_budgets", "grid_best", "search_model"]


@dataclass(frozen=True)
class Efficiency:
    """Predicted latency and memory of a sub-network on one device, format, precision, length and thread count."""

    profile: DeviceProfile
    config: BertConfig  # the full model's
    format: str
    precision: str
    seq_len: int
    threads: int

    def __call__(self, spec: SubnetSpec):
        c = costs(self.config, self.seq_len, spec)
        model = self.profile.latency_model
        return (
            model.predict_latency(c, self.format, self.precision, self.threads),
            model.predict_memory(c, self.format, self.precision),
        )


@dataclass(frozen=True)
class BudgetResult:
    limits: Limits
    chosen: Point | None  # None: nothing fits
    grid: Point | None  # the best uniform grid point within the same limits
    evaluated: int  # feasible configurations the evolution scored
    measured: int  # of which measured (the rest ranked by the predictor)
    why: str

    def to_dict(self) -> dict:
        gain = None if self.chosen is None or self.grid is None else self.chosen.quality - self.grid.quality
        return {
            "budget_ms": self.limits.latency_ms,
            "memory_mb": self.limits.memory_mb,
            "chosen": self.chosen.to_dict() if self.chosen else None,
            "grid": self.grid.to_dict() if self.grid else None,
            "gain_over_grid": gain,
            "evaluated": self.evaluated,
            "measured": self.measured,
            "why": self.why,
        }


@dataclass(frozen=True)
class SearchResult:
    budgets: tuple[BudgetResult, ...]
    front: tuple[Point, ...]  # Pareto front of every measured feasible configuration, fastest first

    def best_for(self, latency_ms: float) -> BudgetResult:
        return next(b for b in self.budgets if b.limits.latency_ms == latency_ms)


def _measured(p: Point, est: Estimates) -> Point:
    q, src = est(p.spec)
    return dataclasses.replace(p, quality=q, quality_source=src)


def grid_best(space: SearchSpace, est: Estimates, efficiency: Efficiency, limits: Limits) -> Point | None:
    """The best uniform grid point within `limits` (its quality measured: grid points are always sampled)."""
    best = None
    for spec in space.grid():
        lat, mem = efficiency(spec)
        if limits.fits(lat, mem):
            est.measure([spec])
            q, src = est(spec)
            p = Point(spec, q, src, lat, mem)
            if best is None or (q, -lat.value) > (best.quality, -best.latency.value):
                best = p
    return best


def search_budgets(
    space: SearchSpace,
    est: Estimates,
    efficiency: Efficiency,
    limits: list[Limits],
    cfg: EvolutionConfig = EvolutionConfig(),
    confirm: int = 4,
) -> SearchResult:
    results, confirmed = [], {}
    for lim in limits:
        grid = grid_best(space, est, efficiency, lim)
        points = evolve(space, est, efficiency, lim, cfg, seeds=tuple(space.grid()))
        if not points:
            results.append(BudgetResult(lim, None, None, 0, 0, _nothing_fits(space, efficiency, lim)))
            continue
        est.measure([p.spec for p in points if p.spec.key not in est.measured][:confirm])
        measured = [_measured(p, est) for p in points if p.spec.key in est.measured]
        confirmed.update({p.spec.key: p for p in measured})
        chosen = max(measured, key=lambda p: (p.quality, -p.latency.value))
        if grid is not None and chosen.spec.key == grid.spec.key:
            why = "the best uniform grid point: no per-layer configuration measured better within this budget"
        else:
            why = f"best measured of the {len(measured)} measured configurations within the budget"
        results.append(BudgetResult(lim, chosen, grid, len(points), len(measured), why))
    return SearchResult(tuple(results), tuple(pareto_front(list(confirmed.values()))))


def _nothing_fits(space: SearchSpace, efficiency: Efficiency, lim: Limits) -> str:
    lat, _ = efficiency(space.spec(space.smallest()))
    if lat is None:
        return f"the device has no latency coefficients for {efficiency.format}/{efficiency.precision}"
    return (
        f"nothing fits {lim.latency_ms:g} ms: the smallest configuration is predicted at {lat} "
        f"(p90 bound {lat.upper:.3g} ms); raise the budget, shorten --seq-len or add threads"
    )


def search_model(
    loaded: Loaded,
    efficiency_of: Callable[[BertConfig], Efficiency],
    limits: list[Limits],
    measurer: Callable[[Bert], Measure] | None = None,
    cfg: EvolutionConfig = EvolutionConfig(),
    n_sample: int = 48,
    confirm: int = 4,
    progress: bool = False,
) -> tuple[SearchResult, Estimates, str]:
    """Search a loaded model (rewired first, as exports are) at several limits.

    measurer(model) -> Measure: how quality is measured (e.g. dev-set accuracy); None: the embedding proxy
    of select/proxy.py on its held-out calibration texts, cached per weights beside the proxy's grid table,
    whose grid figures it starts from. Returns (result, estimates, what the quality figures are)."""
    model, _ = loaded.for_slicing(_NARROW, True, progress)
    space = SearchSpace.for_config(model.config)
    if measurer is None:
        texts = proxy_texts()
        cache = proxy_cache_dir() / f"{proxy_key(loaded, texts)}.search.json"
        measure = proxy_measurer(model, loaded.tokenizer, texts, PROXY_SEQ_LEN, cache)
        est = Estimates(space, measure)
        table, what = proxy_table(loaded, progress)
        est.measured.update(
            {k: (v, f"measured {s}") for k, (v, s) in table.items() if space.contains(SubnetSpec.from_key(k))}
        )
        if (loaded.model_dir / QUALITY_FILE).exists():  # the table's dev-set figures cover the grid only
            what = what.replace(
                "(this model has no quality.json)",
                f"(the model's {QUALITY_FILE} covers only the uniform grid; `edgebert search --data` measures on a dev set)",
            )
        what = f"{what}; per-layer configurations measured the same way, cached in {cache}"
    else:
        est, what = Estimates(space, measurer(model)), "measured by the given measure (see each figure's source)"
    est.measure(sample_specs(space, n_sample, cfg.seed))
    est.predictor = fit_predictor(space, est.measured, seed=cfg.seed)
    result = search_budgets(space, est, efficiency_of(loaded.full.config), limits, cfg, confirm)
    return result, est, what


_NARROW = SubnetSpec(0.5, 1.0)  # any narrowing spec: asks for_slicing for the rewired model, as proxy_table does
