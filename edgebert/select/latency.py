"""Latency and memory model: predicted p50 latency and peak memory of a sub-network on a device.

    p50_ms = fixed_ms + per_layer_ms · layers
             + linear MACs / linear_gmacs_per_s + attention MACs / attention_gmacs_per_s

one set of coefficients per (format, precision, threads), fitted by non-negative least squares on
measurements (`fit`), or derived from published figures for devices edgebert cannot reach. A
thread count without its own coefficients is scaled from the nearest one with
speedup(n) = 1 + (n - 1) · parallel_efficiency.

    peak_mb = weight_factor · matrix bytes + embedding_factor · table bytes
              + activation_factor · activation bytes + overhead_mb

per (format, precision), weights counted at the precision the runtime holds them in. Every prediction carries its source and its expected error (median and p90 of the
|relative error| of the fit, or the stated uncertainty of an estimate).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import date

import numpy as np

from edgebert.select.costs import Costs

__all__ = [
    "Prediction",
    "LatencyEntry",
    "MemoryEntry",
    "LatencyModel",
    "Measurement",
    "fit",
    "fit_memory",
    "nnls",
    "KIND",
    "ESTIMATE_ERROR",
]

KIND = "linear-v1"
# Relative error assumed for a thread count scaled from another one, on top of the entry's own.
_THREAD_SCALING_ERROR = 0.15
# Default uncertainty of coefficients scaled from published figures (not measured on the device).
ESTIMATE_ERROR = 0.5


@dataclass(frozen=True)
class Prediction:
    value: float
    unit: str  # "ms" or "MB"
    source: str  # where the number came from, in words a report can print
    expected_error: float  # median |relative error| expected (0.1 = ±10%)
    error_p90: float  # 90% of predictions are expected within this relative error

    @property
    def upper(self) -> float:
        """A value the truth should stay under about 9 times in 10."""
        return self.value * (1.0 + self.error_p90)

    def to_dict(self) -> dict:
        return {"kind": "predicted", **asdict(self)}

    def __str__(self) -> str:
        return f"{self.value:.3g} {self.unit} (±{100 * self.expected_error:.0f}%, p90 ±{100 * self.error_p90:.0f}%)"


@dataclass(frozen=True)
class LatencyEntry:
    format: str
    precision: str
    threads: int
    linear_gmacs_per_s: float
    attention_gmacs_per_s: float
    per_layer_ms: float
    fixed_ms: float
    expected_error: float  # median |relative error| of the fit (or the estimate's stated uncertainty)
    error_p90: float
    # Where each coefficient came from ({coefficient: text}, plus "date", "method", "fit"...).
    provenance: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.format, self.precision, self.threads)

    def compute_ms(self, c: Costs) -> float:
        """The part of the latency that more threads can share."""
        return 1e-6 * (
            _div(c.linear_macs, self.linear_gmacs_per_s) + _div(c.attention_macs, self.attention_gmacs_per_s)
        )

    def predict_ms(self, c: Costs) -> float:
        return self.fixed_ms + self.per_layer_ms * c.layers + self.compute_ms(c)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MemoryEntry:
    format: str
    precision: str  # "" = any precision of the format
    weight_factor: float  # matrices: runtimes may hold them twice (file mapping + packed copy)
    embedding_factor: float  # tables: memory-mapped ones are only partly resident
    activation_factor: float  # how far the runtime's arena is from the live-set estimate
    overhead_mb: float  # runtime buffers that do not grow with the model
    expected_error: float
    error_p90: float
    provenance: dict = field(default_factory=dict, compare=False)

    def predict_mb(self, c: Costs, precision: str) -> float:
        matrices, tables = c.weight_parts(precision, self.format, runtime=True)
        return (
            self.weight_factor * matrices
            + self.embedding_factor * tables
            + self.activation_factor * c.activation_bytes()
        ) / 1e6 + self.overhead_mb

    def to_dict(self) -> dict:
        return asdict(self)


def _div(macs: int, gmacs_per_s: float) -> float:
    # An infinite rate is how a fit says this part costs nothing measurable on top of the rest.
    return 0.0 if math.isinf(gmacs_per_s) else macs / gmacs_per_s


@dataclass(frozen=True)
class LatencyModel:
    """A device's coefficients: latency entries, memory entries, and what they were derived from."""

    entries: tuple[LatencyEntry, ...] = ()
    memory: tuple[MemoryEntry, ...] = ()
    parallel_efficiency: float = 0.8
    device: str = ""
    source: str = ""  # one line for the report: "fitted on 96 measurements on host, 2026-11-21"
    kind: str = KIND

    def entry(self, fmt: str, precision: str, threads: int) -> tuple[LatencyEntry, bool] | None:
        """The entry for this key, else the one with the nearest thread count (scaled=True)."""
        same = [e for e in self.entries if e.format == fmt and e.precision == precision]
        if not same:
            return None
        exact = [e for e in same if e.threads == threads]
        if exact:
            return exact[0], False
        return min(same, key=lambda e: (abs(e.threads - threads), -e.threads)), True

    def covers(self, fmt: str, precision: str) -> bool:
        return any(e.format == fmt and e.precision == precision for e in self.entries)

    def speedup(self, threads: int) -> float:
        return 1.0 + (max(threads, 1) - 1) * self.parallel_efficiency

    def predict_latency(self, c: Costs, fmt: str, precision: str, threads: int) -> Prediction | None:
        found = self.entry(fmt, precision, threads)
        if found is None:
            return None
        e, scaled = found
        ms = e.predict_ms(c)
        err, p90 = e.expected_error, e.error_p90
        where = f"{fmt}/{precision} at {e.threads} thread{'s' if e.threads != 1 else ''}"
        if scaled:
            ms = (
                e.fixed_ms
                + e.per_layer_ms * c.layers
                + e.compute_ms(c) * self.speedup(e.threads) / self.speedup(threads)
            )
            err, p90 = err + _THREAD_SCALING_ERROR, p90 + _THREAD_SCALING_ERROR
            where += f", scaled to {threads} (parallel efficiency {self.parallel_efficiency:g})"
        origin = e.provenance.get("source") or self.source
        return Prediction(ms, "ms", f"predicted: {origin} [{where}]", err, p90)

    def predict_memory(self, c: Costs, fmt: str, precision: str) -> Prediction | None:
        # Runtimes differ by precision too (LiteRT keeps fp16 weights mapped, dequantized and packed).
        same = [m for m in self.memory if m.format == fmt and m.precision in (precision, "")]
        if not same:
            return None
        m = min(same, key=lambda m: m.precision == "")
        origin = m.provenance.get("source") or self.source
        return Prediction(
            m.predict_mb(c, precision), "MB", f"predicted: {origin} [{fmt} memory model]", m.expected_error, m.error_p90
        )

    def merged(self, other: "LatencyModel", note: str) -> "LatencyModel":
        """`other`'s entries replace ours with the same key; the rest of ours stay (calibration overrides)."""
        keys = {e.key for e in other.entries}
        mem = {(m.format, m.precision) for m in other.memory}
        return replace(
            self,
            entries=tuple(e for e in self.entries if e.key not in keys) + other.entries,
            memory=tuple(m for m in self.memory if (m.format, m.precision) not in mem) + other.memory,
            parallel_efficiency=other.parallel_efficiency,
            source=f"{other.source or self.source} ({note})",
        )

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "source": self.source,
            "parallel_efficiency": self.parallel_efficiency,
            "entries": [e.to_dict() for e in self.entries],
            "memory": [m.to_dict() for m in self.memory],
        }


# ---- fitting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    costs: Costs
    format: str
    precision: str
    threads: int
    p50_ms: float
    peak_mb: float | None = None  # memory attributable to the model, when it was measured
    label: str = ""  # e.g. the spec key, for tables

    @property
    def seq_len(self) -> int:
        return self.costs.seq_len


def nnls(a: np.ndarray, b: np.ndarray, iters: int = 200) -> np.ndarray:
    """Non-negative least squares (Lawson-Hanson active set): min |a x - b|, x >= 0.

    Written out because scipy is not a dependency; the problems here have 3 or 4 unknowns.
    """
    m, n = a.shape
    x, passive = np.zeros(n), np.zeros(n, dtype=bool)
    for _ in range(iters):
        w = a.T @ (b - a @ x)
        if passive.all() or (w[~passive] <= 1e-12 * max(1.0, np.abs(w).max())).all():
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
            x[~passive] = 0.0
    return x


def _features(c: Costs) -> list[float]:
    # MACs in millions: the fitted coefficient is then ms per MMAC = 1 / (GMAC/s).
    return [1.0, float(c.layers), c.linear_macs / 1e6, c.attention_macs / 1e6]


def _errors(pred: np.ndarray, meas: np.ndarray) -> tuple[float, float]:
    rel = np.abs(pred - meas) / meas
    return float(np.median(rel)), float(np.percentile(rel, 90))


def _fit_entry(ms: list[Measurement], source: str, today: str) -> LatencyEntry:
    a = np.array([_features(m.costs) for m in ms])
    b = np.array([m.p50_ms for m in ms])
    # Weighting rows by 1/measured turns the objective into relative error: small sub-networks
    # matter as much as big ones, which is how predictions are judged.
    w = 1.0 / b
    x = nnls(a * w[:, None], b * w)
    fixed, per_layer, ms_per_mmac_lin, ms_per_mmac_att = (float(v) for v in x)
    med, p90 = _errors(a @ x, b)
    seqs = sorted({m.seq_len for m in ms})
    fitted = f"fitted by NNLS on {len(ms)} measurements (seq {seqs}), {today}"
    m0 = ms[0]
    return LatencyEntry(
        format=m0.format,
        precision=m0.precision,
        threads=m0.threads,
        linear_gmacs_per_s=(1.0 / ms_per_mmac_lin) if ms_per_mmac_lin > 0 else math.inf,
        attention_gmacs_per_s=(1.0 / ms_per_mmac_att) if ms_per_mmac_att > 0 else math.inf,
        per_layer_ms=per_layer,
        fixed_ms=fixed,
        expected_error=med,
        error_p90=p90,
        provenance={
            "source": source,
            "date": today,
            "method": fitted,
            "n": len(ms),
            "fit": {"median_abs_rel_error": round(med, 4), "p90_abs_rel_error": round(p90, 4)},
            **{k: fitted for k in ("linear_gmacs_per_s", "attention_gmacs_per_s", "per_layer_ms", "fixed_ms")},
        },
    )


def _parallel_efficiency(entries: list[LatencyEntry]) -> float | None:
    """Mean efficiency implied by pairs of entries that differ only in threads."""
    effs = []
    for e1 in entries:
        for e2 in entries:
            if (e1.format, e1.precision) != (e2.format, e2.precision) or e2.threads <= e1.threads:
                continue
            if math.isinf(e1.linear_gmacs_per_s) or math.isinf(e2.linear_gmacs_per_s):
                continue
            # r = speedup(t2) / speedup(t1), solved for the efficiency e.
            r, t1, t2 = e2.linear_gmacs_per_s / e1.linear_gmacs_per_s, e1.threads, e2.threads
            effs.append((r - 1) / ((t2 - 1) - r * (t1 - 1)))
    return float(np.clip(np.mean(effs), 0.0, 1.0)) if effs else None


def fit(
    measurements: list[Measurement], device: str = "host", source: str | None = None, today: str | None = None
) -> LatencyModel:
    """Fit one latency entry per (format, precision, threads) of `measurements` (≥ 4 each)."""
    today = today or date.today().isoformat()
    groups: dict[tuple, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.format, m.precision, m.threads), []).append(m)
    source = source or f"latency model fitted on {len(measurements)} measurements on {device}, {today}"
    entries = []
    for key, ms in sorted(groups.items()):
        if len(ms) < 4:
            raise ValueError(f"{key}: {len(ms)} measurements cannot fit 4 coefficients; measure at least 4")
        entries.append(_fit_entry(ms, source, today))
    eff = _parallel_efficiency(entries)
    return LatencyModel(
        entries=tuple(entries), parallel_efficiency=0.8 if eff is None else round(eff, 3), device=device, source=source
    )


# With every measurement at one sequence length the activation column cannot be told apart from the
# others; this prior (arena plus temporaries about 1.5x the live set) is used instead.
_ACTIVATION_PRIOR = 1.5
_FEW_POINTS_ERROR = 0.2


def fit_memory(measurements: list[Measurement], source: str, today: str | None = None) -> tuple[MemoryEntry, ...]:
    """Fit memory entries per (format, precision) from measurements with peak_mb.

    One joint fit per format: a matrix factor for each precision (runtimes hold some precisions
    more than once), shared table and activation factors and overhead. Within one precision the
    tables are the same size for every sub-network, so only sharing them across precisions (whose
    table sizes differ) tells tables from overhead.
    """
    today = today or date.today().isoformat()
    groups: dict[str, list[Measurement]] = {}
    for m in measurements:
        if m.peak_mb is not None:
            groups.setdefault(m.format, []).append(m)
    out = []
    for fmt, ms in sorted(groups.items()):
        precisions = sorted({m.precision for m in ms})
        rows = []
        for m in ms:
            matrices, tables = m.costs.weight_parts(m.precision, fmt, runtime=True)
            rows.append(
                [matrices / 1e6 if p == m.precision else 0.0 for p in precisions]
                + [tables / 1e6, m.costs.activation_bytes() / 1e6, 1.0]
            )
        a, b = np.array(rows), np.array([m.peak_mb for m in ms])
        act = len(precisions) + 1
        one_seq = len({m.seq_len for m in ms}) == 1
        if one_seq:
            keep = [i for i in range(a.shape[1]) if i != act]
            x = np.insert(nnls(a[:, keep], b - _ACTIVATION_PRIOR * a[:, act]), act, _ACTIVATION_PRIOR)
        else:
            x = nnls(a, b)
        pred = a @ x
        method = f"joint NNLS fit on {len(ms)} {fmt} measurements" + (
            f" (one sequence length: activation factor fixed at {_ACTIVATION_PRIOR})" if one_seq else ""
        )
        for i, precision in enumerate(precisions):
            idx = [j for j, m in enumerate(ms) if m.precision == precision]
            med, p90 = _errors(pred[idx], b[idx])
            if len(idx) < 4:  # a factor fitted to so few points says little about its error elsewhere
                med, p90 = max(med, _FEW_POINTS_ERROR), max(p90, 2 * _FEW_POINTS_ERROR)
            out.append(
                MemoryEntry(
                    format=fmt,
                    precision=precision,
                    weight_factor=float(x[i]),
                    embedding_factor=float(x[act - 1]),
                    activation_factor=float(x[act]),
                    overhead_mb=float(x[act + 1]),
                    expected_error=med,
                    error_p90=p90,
                    provenance={
                        "source": source,
                        "date": today,
                        "method": method,
                        "n": len(idx),
                        "fit": {"median_abs_rel_error": round(med, 4), "p90_abs_rel_error": round(p90, 4)},
                    },
                )
            )
    return tuple(out)
