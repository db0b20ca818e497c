"""The search space: per-layer head count and FFN width (from the rewired importance order) and which
layers to keep (any subset), around one model's shape.

A genome holds, per source layer, whether it is kept and how many heads and FFN neurons it keeps. Heads
may be any count from 1 to the layer's; FFN widths are kept_count(k/steps, ffn) for k = 1..steps (eighths
by default, which include DynaBERT's quarters), so every uniform grid point is in the space. The bounds
(>= 1 layer, >= 1 head, >= ffn/steps neurons per kept layer) are what every converter exports: checked by
tests/search/test_search_space.py on ONNX, TFLite and TorchScript.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from edgebert.errors import SpecError
from edgebert.model.config import BertConfig
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec, kept_count

__all__ = ["Gene", "Genome", "SearchSpace"]

Gene = tuple[bool, int, int]  # (kept, heads, ffn) of one source layer
Genome = tuple[Gene, ...]


@dataclass(frozen=True)
class SearchSpace:
    config: BertConfig  # the full model's shape
    head_choices: tuple[tuple[int, ...], ...]  # per source layer
    ffn_choices: tuple[tuple[int, ...], ...]
    min_layers: int = 1

    @classmethod
    def for_config(cls, config: BertConfig, ffn_steps: int = 8, min_layers: int = 1) -> "SearchSpace":
        if not 1 <= min_layers <= config.num_layers:
            raise SpecError(f"min_layers must be 1..{config.num_layers}, got {min_layers}")
        heads = tuple(tuple(range(1, h + 1)) for h in config.heads)
        ffn = tuple(
            tuple(sorted({max(1, kept_count(k / ffn_steps, f)) for k in range(1, ffn_steps + 1)})) for f in config.ffn
        )
        return cls(config, heads, ffn, min_layers)

    @property
    def num_layers(self) -> int:
        return self.config.num_layers

    @property
    def size(self) -> int:
        """How many distinct sub-networks the space holds (subsets of at least min_layers layers)."""
        total = 0
        for mask in range(1 << self.num_layers):
            kept = [i for i in range(self.num_layers) if mask >> i & 1]
            if len(kept) >= self.min_layers:
                n = 1
                for i in kept:
                    n *= len(self.head_choices[i]) * len(self.ffn_choices[i])
                total += n
        return total

    def largest(self) -> Genome:
        return tuple((True, h[-1], f[-1]) for h, f in zip(self.head_choices, self.ffn_choices))

    def smallest(self) -> Genome:
        return tuple(
            (i < self.min_layers, h[0], f[0]) for i, (h, f) in enumerate(zip(self.head_choices, self.ffn_choices))
        )

    def sample(self, rng: random.Random) -> Genome:
        """A random genome: the number of kept layers uniform first, so small sub-networks are as likely as big."""
        n = rng.randint(self.min_layers, self.num_layers)
        kept = set(rng.sample(range(self.num_layers), n))
        return tuple(
            (i in kept, rng.choice(self.head_choices[i]), rng.choice(self.ffn_choices[i]))
            for i in range(self.num_layers)
        )

    def mutate(self, g: Genome, rng: random.Random, prob: float) -> Genome:
        out = []
        for i, (keep, h, f) in enumerate(g):
            if rng.random() < prob:
                keep = not keep
            if rng.random() < prob:
                h = rng.choice(self.head_choices[i])
            if rng.random() < prob:
                f = rng.choice(self.ffn_choices[i])
            out.append((keep, h, f))
        return self.repair(tuple(out), rng)

    def crossover(self, a: Genome, b: Genome, rng: random.Random) -> Genome:
        return self.repair(tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b)), rng)

    def repair(self, g: Genome, rng: random.Random) -> Genome:
        """Keep at least min_layers layers (switching random dropped ones back on)."""
        dropped = [i for i, (keep, _, _) in enumerate(g) if not keep]
        missing = self.min_layers - (len(g) - len(dropped))
        if missing <= 0:
            return g
        back = set(rng.sample(dropped, missing))
        return tuple((keep or i in back, h, f) for i, (keep, h, f) in enumerate(g))

    def spec(self, g: Genome) -> SubnetSpec:
        """The genome as a SubnetSpec: the uniform grid spec where it is one (its quality-table key), else per-layer."""
        grid = self._grid_genomes.get(self.canonical(g))
        if grid is not None:
            return grid
        kept = [(i, h, f) for i, (keep, h, f) in enumerate(g) if keep]
        return SubnetSpec.from_layers(self.config, *zip(*kept))

    def genome(self, spec: SubnetSpec) -> Genome:
        """A spec of this model as a genome (dropped layers keep their full choices, as largest() has them)."""
        plan = {i: (h, f) for i, h, f in spec.plan(self.config.heads, self.config.ffn)}
        full = self.largest()
        return tuple((True, *plan[i]) if i in plan else (False, full[i][1], full[i][2]) for i in range(self.num_layers))

    def contains(self, spec: SubnetSpec) -> bool:
        try:
            plan = spec.plan(self.config.heads, self.config.ffn)
        except SpecError:
            return False
        return len(plan) >= self.min_layers and all(
            h in self.head_choices[i] and f in self.ffn_choices[i] for i, h, f in plan
        )

    def grid(self) -> list[SubnetSpec]:
        """DynaBERT's uniform grid points that fit this model and this space."""
        specs = [SubnetSpec(w, d) for w in WIDTHS for d in DEPTHS]
        return [s for s in specs if self.contains(s)]

    @cached_property
    def _grid_genomes(self) -> dict:
        return {self.genome(s): s for s in self.grid()}

    def canonical(self, g: Genome) -> Genome:
        """Dropped layers' choices do not change the sub-network: set them as genome() does."""
        full = self.largest()
        return tuple(gene if gene[0] else (False, full[i][1], full[i][2]) for i, gene in enumerate(g))
