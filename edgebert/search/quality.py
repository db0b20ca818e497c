"""Quality estimates for searched sub-networks: measured on a sample, predicted for the rest.

A search visits thousands of configurations; measuring each costs a forward pass over held-out text
(about 1 s for MiniLM on one core). So a sample is measured (the grid points, the largest and smallest,
and random ones), a small ridge regressor on per-layer features is fitted to it, its Spearman rank
correlation on held-out sampled configurations is reported, and the search ranks by it. The points a
search finally returns are measured again, so the figures it reports are measurements. Every figure
carries its source: `measured: ...` (the proxy or the dev set) or `predicted: ...` (by the regressor).

What measures is a function `measure(specs) -> {spec.key: (score, source)}` given by the caller: the
embedding proxy of select/proxy.py (`proxy_measurer`, cached per weights), or the dev-set accuracy of
`edgebert evaluate` wired in by commands/search.py for classifiers with --data.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgebert.hashing import now_iso, write_atomic
from edgebert.model.spec import SubnetSpec
from edgebert.search.space import SearchSpace
from edgebert.select.proxy import proxy_quality

__all__ = [
    "Measure",
    "Predictor",
    "Estimates",
    "fit_predictor",
    "estimate",
    "sample_specs",
    "spearman",
    "proxy_measurer",
    "features",
]

Measure = Callable[[list[SubnetSpec]], dict[str, tuple[float, str]]]

_RIDGE = 1e-2  # on standardised features; small: the sample is ~4x the feature count


def features(space: SearchSpace, spec: SubnetSpec) -> list[float]:
    """Per source layer: kept, kept share of heads, kept share of FFN neurons; and the share of layers kept."""
    c = space.config
    plan = {i: (h, f) for i, h, f in spec.plan(c.heads, c.ffn)}
    row = []
    for i in range(c.num_layers):
        h, f = plan.get(i, (0, 0))
        row += [float(i in plan), h / c.heads[i], f / c.ffn[i]]
    return row + [len(plan) / c.num_layers]


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for v in np.unique(x):  # ties share their mean rank
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation (ties averaged); nan with fewer than 3 points or a constant side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass(frozen=True)
class Predictor:
    """Ridge regression on `features`: quality ≈ w · standardised(features) + b."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    n_train: int
    n_held_out: int
    held_out_spearman: float  # fitted without the held-out configurations, then scored on them
    held_out_mae: float
    source: str

    def __call__(self, space: SearchSpace, spec: SubnetSpec) -> float:
        x = (np.array(features(space, spec)) - np.array(self.mean)) / np.array(self.scale)
        return float(x @ np.array(self.weights) + self.bias)

    def to_dict(self) -> dict:
        return {
            "kind": "ridge on per-layer features",
            "n_train": self.n_train,
            "n_held_out": self.n_held_out,
            "held_out_spearman": self.held_out_spearman,
            "held_out_mae": self.held_out_mae,
            "source": self.source,
        }


def _ridge(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    w = np.linalg.solve(z.T @ z + _RIDGE * len(y) * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return w, float(y.mean()), mean, scale


def fit_predictor(space: SearchSpace, measured: dict[str, tuple[float, str]], held_out: float = 0.25, seed: int = 0):
    """Fit on all but a random `held_out` share, report rank correlation there, then refit on everything."""
    keys = sorted(measured)
    x = np.array([features(space, SubnetSpec.from_key(k)) for k in keys])
    y = np.array([measured[k][0] for k in keys])
    idx = list(range(len(keys)))
    random.Random(seed).shuffle(idx)
    n_test = max(3, int(round(held_out * len(idx)))) if len(idx) >= 8 else 0
    test, train = idx[:n_test], idx[n_test:]
    rho, mae = float("nan"), float("nan")
    if test:
        w, b, mean, scale = _ridge(x[train], y[train])
        pred = ((x[test] - mean) / scale) @ w + b
        rho, mae = spearman(pred, y[test]), float(np.abs(pred - y[test]).mean())
    w, b, mean, scale = _ridge(x, y)
    what = measured[keys[0]][1].split(": ", 1)[-1]
    return Predictor(
        weights=tuple(float(v) for v in w),
        bias=b,
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        n_train=len(train),
        n_held_out=len(test),
        held_out_spearman=rho,
        held_out_mae=mae,
        source=(
            f"predicted: ridge regressor on per-layer features, fitted on {len(keys)} measured configurations "
            f"({what}); Spearman {rho:.3f} on {len(test)} held out"
        ),
    )


@dataclass
class Estimates:
    """Measured figures where there are some, the predictor's elsewhere; measure() adds measurements."""

    space: SearchSpace
    measure_fn: Measure
    measured: dict[str, tuple[float, str]] = field(default_factory=dict)
    predictor: Predictor | None = None

    def __call__(self, spec: SubnetSpec) -> tuple[float, str]:
        if spec.key in self.measured:
            return self.measured[spec.key]
        return self.predictor(self.space, spec), self.predictor.source

    def measure(self, specs: list[SubnetSpec]) -> None:
        todo = list({s.key: s for s in specs if s.key not in self.measured}.values())
        if todo:
            self.measured.update(self.measure_fn(todo))


def sample_specs(space: SearchSpace, n: int, seed: int = 0) -> list[SubnetSpec]:
    """The grid points, the largest and smallest, and random configurations: n in all (at least the fixed ones)."""
    rng = random.Random(seed)
    out = {s.key: s for s in space.grid()}
    for g in (space.largest(), space.smallest()):
        s = space.spec(g)
        out[s.key] = s
    tries = 0
    while len(out) < n and tries < 50 * n:
        s = space.spec(space.sample(rng))
        out.setdefault(s.key, s)
        tries += 1
    return list(out.values())


def estimate(space: SearchSpace, measure: Measure, n_sample: int = 48, seed: int = 0) -> Estimates:
    """Measure a sample and fit the predictor on it."""
    est = Estimates(space, measure)
    est.measure(sample_specs(space, n_sample, seed))
    est.predictor = fit_predictor(space, est.measured, seed=seed)
    return est


def proxy_measurer(model, tokenizer, texts: list[str], seq_len: int, cache=None) -> Measure:
    """The embedding proxy of select/proxy.py (mean cosine to the full model) as a Measure.

    `cache`: a JSON file of figures already measured for these exact weights and texts (the caller keys
    it); read first, and rewritten with what was measured (best effort)."""

    def measure(specs: list[SubnetSpec]) -> dict[str, tuple[float, str]]:
        known = _read_cache(cache)
        todo = [s for s in specs if s.key not in known]
        if todo:
            got = proxy_quality(model, tokenizer, texts, todo, seq_len=seq_len)
            known.update({k: (v, f"measured {s}") for k, (v, s) in got.items()})
            _write_cache(cache, known)
        return {s.key: known[s.key] for s in specs}

    return measure


def _read_cache(path) -> dict:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())["figures"]
        return {k: (float(v), str(s)) for k, (v, s) in data.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_cache(path, figures: dict) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"written_at": now_iso(), "figures": {k: list(v) for k, v in figures.items()}}, indent=0)
        write_atomic(path, text + "\n")
    except OSError:
        pass  # an unwritable cache only costs the next run the same measurements
