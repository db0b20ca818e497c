"""Evolutionary search (Once-for-All / HAT style) over a SearchSpace under latency and memory constraints.

The search takes a quality estimate and an efficiency estimate as functions and knows nothing else about
them (as OFA's search takes its accuracy and efficiency predictors): quality(spec) -> (score, source);
efficiency(spec) -> (latency Prediction, memory Prediction or None). A configuration fits when the p90
bound of both predictions is within the limits, as the selector judges (select/selector.py, margin=True).

Each generation keeps the best `parents` share, then fills the population with mutations of random
parents and crossovers of two; infeasible children are redrawn. Every feasible configuration evaluated is
kept, and the Pareto front (no other is both faster and better) is returned with the best per budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from edgebert.model.spec import SubnetSpec
from edgebert.search.space import Genome, SearchSpace
from edgebert.select.latency import Prediction

__all__ = ["Point", "Limits", "EvolutionConfig", "evolve", "pareto_front"]

Quality = Callable[[SubnetSpec], "tuple[float, str]"]
Efficiency = Callable[[SubnetSpec], "tuple[Prediction | None, Prediction | None]"]


@dataclass(frozen=True)
class Point:
    spec: SubnetSpec
    quality: float
    quality_source: str
    latency: Prediction
    memory: Prediction | None

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "key": self.spec.key,
            "quality": self.quality,
            "quality_source": self.quality_source,
            "latency": self.latency.to_dict(),
            "memory": self.memory.to_dict() if self.memory else None,
        }


@dataclass(frozen=True)
class Limits:
    latency_ms: float
    memory_mb: float | None = None
    margin: bool = True  # judge by the p90 bound (value x (1 + error_p90)), as the selector does

    def fits(self, latency: Prediction | None, memory: Prediction | None) -> bool:
        if latency is None or (latency.upper if self.margin else latency.value) > self.latency_ms:
            return False
        if self.memory_mb is None:
            return True
        return memory is not None and (memory.upper if self.margin else memory.value) <= self.memory_mb


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 40
    generations: int = 15
    parents: float = 0.25  # share of the population kept as parents
    mutation: float = 0.5  # share of children made by mutation (the rest by crossover)
    mutate_prob: float = 0.2  # per choice of a mutated genome
    seed: int = 0
    max_tries: int = 200  # draws per child before giving up on a feasible one


def evolve(
    space: SearchSpace,
    quality: Quality,
    efficiency: Efficiency,
    limits: Limits,
    cfg: EvolutionConfig = EvolutionConfig(),
    seeds: tuple[SubnetSpec, ...] = (),
) -> list[Point]:
    """Every feasible configuration the search evaluated, best quality first (ties: the faster first).

    `seeds` (e.g. the uniform grid points) join the first population when they fit, so the search starts
    from, and can only improve on, the best of them under the same estimate."""
    rng = random.Random(cfg.seed)
    seen: dict[Genome, Point | None] = {}

    def point(g: Genome) -> Point | None:
        g = space.canonical(g)
        if g not in seen:
            spec = space.spec(g)
            lat, mem = efficiency(spec)
            seen[g] = None
            if limits.fits(lat, mem):
                q, src = quality(spec)
                seen[g] = Point(spec, q, src, lat, mem)
        return seen[g]

    def draw(make) -> Genome | None:
        for _ in range(cfg.max_tries):
            g = make()
            if point(g) is not None:
                return space.canonical(g)
        return None

    population = [space.canonical(space.genome(s)) for s in seeds if space.contains(s)]
    population = [g for g in dict.fromkeys(population) if point(g) is not None]
    population.append(space.canonical(space.smallest()))
    while len(population) < cfg.population:
        g = draw(lambda: space.sample(rng))
        if g is None:
            break
        population.append(g)
    population = [g for g in dict.fromkeys(population) if point(g) is not None]
    if not population:
        return []
    n_parents = max(2, int(cfg.parents * cfg.population))
    n_mutate = int(cfg.mutation * cfg.population)
    for _ in range(cfg.generations):
        parents = sorted(population, key=lambda g: _rank(seen[g]))[:n_parents]
        children = []
        for i in range(cfg.population - len(parents)):
            if i < n_mutate:
                g = draw(lambda ps=parents: space.mutate(rng.choice(ps), rng, cfg.mutate_prob))
            else:
                g = draw(lambda ps=parents: space.crossover(rng.choice(ps), rng.choice(ps), rng))
            if g is not None:
                children.append(g)
        population = list(dict.fromkeys(parents + children))
    return sorted((p for p in seen.values() if p is not None), key=_rank)


def _rank(p: Point):
    return (-p.quality, p.latency.value, p.memory.value if p.memory else 0.0)


def pareto_front(points: list[Point]) -> list[Point]:
    """The points no other point beats on both predicted latency (lower) and quality (higher), fastest first."""
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p.latency.value, -p.quality)):
        if p.quality > best:
            front.append(p)
            best = p.quality
    return front
