"""Latency of an early-exit model: each segment's cost composed with how often each exit is taken.

An input that exits at layer k has run segments 1..k and asked the policy k times, so

    latency(k)   = sum_{j<=k} segment_ms[j] + k * policy_ms
    expected_ms  = sum_k P(exit at k) * latency(k)
    p90_ms       = latency(k90), k90 the first exit with P(exit <= k90) >= 0.9
    worst_ms     = latency(L): every segment, as an input the policy never lets out early

P comes from an exit histogram (measured on dev data, or on unlabelled texts for a model without a labelled
dev split: `histogram_from` says which). The segment figures are predicted by a device's latency model
(select/costs.py's segment_costs, one runtime call each) or measured per segment file on a target; `source`
says which. Pure functions over frozen values: the selector and the export manifest both use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebert.model.config import BertConfig
from edgebert.model.spec import SubnetSpec
from edgebert.select.costs import segment_costs
from edgebert.select.latency import LatencyModel

__all__ = [
    "ExitLatency",
    "POLICY_MS",
    "P90",
    "exit_probabilities",
    "histogram_from",
    "predict_exit_latency",
    "measured_exit_latency",
]

# The policy's own cost per exit asked (softmax over the labels, a comparison): edgebert.runtime.policy's
# run_policy measured 0.020-0.030 ms per exit (entropy the dearest) on this project's AMD EPYC host, numpy,
# 2 labels, 20,000 inputs of 6 exits. An app's port in Kotlin/Swift costs less; this is the upper figure.
POLICY_MS = 0.03
P90 = 0.9


def histogram_from(dev: dict | None) -> str:
    """Which texts a manifest's exit histogram (early_exit.dev) comes from, in words a report can print."""
    if not dev:
        return "no dev texts"
    kind = "labelled dev split" if dev.get("accuracy") is not None else "unlabelled proxy texts (no labels)"
    return f"{dev['data']}, n={dev['n']}, {kind}, exits taken by the fp32 model in PyTorch"


def exit_probabilities(histogram) -> tuple[float, ...]:
    """Exits taken per layer (counts) -> P(exit at k); an empty histogram is refused by the caller."""
    total = float(sum(histogram))
    if total <= 0:
        raise ValueError("an exit histogram with no inputs says nothing about where they exit")
    return tuple(n / total for n in histogram)


@dataclass(frozen=True)
class ExitLatency:
    segments_ms: tuple[float, ...]  # each segment's own time, in order
    probabilities: tuple[float, ...]  # P(exit at k), k = 1..L
    source: str  # "predicted: ..." or "measured: ..." (the segment figures)
    histogram_from: str  # which texts the exit histogram was measured on
    policy_ms: float = POLICY_MS
    error_p90: float = 0.0  # relative error 9 in 10 predictions stay within (0 for measured figures)

    def __post_init__(self):
        if len(self.segments_ms) != len(self.probabilities) or not self.segments_ms:
            raise ValueError("one exit probability per segment is needed")

    @property
    def latencies_ms(self) -> tuple[float, ...]:
        """latency(k): an input that exits at layer k."""
        out, total = [], 0.0
        for k, ms in enumerate(self.segments_ms, start=1):
            total += ms
            out.append(total + k * self.policy_ms)
        return tuple(out)

    @property
    def expected_ms(self) -> float:
        return sum(p * t for p, t in zip(self.probabilities, self.latencies_ms))

    def quantile_ms(self, q: float) -> float:
        cdf = 0.0
        for p, t in zip(self.probabilities, self.latencies_ms):
            cdf += p
            if cdf >= q - 1e-12:
                return t
        return self.latencies_ms[-1]

    @property
    def p90_ms(self) -> float:
        return self.quantile_ms(P90)

    @property
    def worst_ms(self) -> float:
        return self.latencies_ms[-1]

    def bound(self, which: str, margin: bool = True) -> float:
        """'p90' or 'worst' (or 'expected'), widened by the prediction's p90 error when margin."""
        value = {"p90": self.p90_ms, "worst": self.worst_ms, "expected": self.expected_ms}[which]
        return value * (1.0 + self.error_p90) if margin else value

    def to_dict(self) -> dict:
        kind = "measured" if self.source.startswith("measured") else "predicted"
        return {
            "kind": kind,
            "source": self.source,
            "histogram_from": self.histogram_from,
            "segments_ms": [round(x, 4) for x in self.segments_ms],
            "exit_probabilities": [round(p, 6) for p in self.probabilities],
            "latency_at_exit_ms": [round(x, 4) for x in self.latencies_ms],
            "policy_ms_per_exit": self.policy_ms,
            "expected_ms": round(self.expected_ms, 4),
            "p90_ms": round(self.p90_ms, 4),
            "worst_ms": round(self.worst_ms, 4),
            "error_p90": self.error_p90,
        }

    def __str__(self) -> str:
        return f"expected {self.expected_ms:.3g} ms, p90 {self.p90_ms:.3g} ms, worst {self.worst_ms:.3g} ms"


def predict_exit_latency(
    model: LatencyModel,
    config: BertConfig,
    spec: SubnetSpec | None,
    seq_len: int,
    fmt: str,
    precision: str,
    threads: int,
    histogram,
    histogram_from: str,
) -> ExitLatency | None:
    """Each segment predicted by `model` (None when it has no coefficients for fmt/precision)."""
    preds = [model.predict_latency(c, fmt, precision, threads) for c in segment_costs(config, seq_len, spec)]
    if any(p is None for p in preds):
        return None
    return ExitLatency(
        segments_ms=tuple(p.value for p in preds),
        probabilities=exit_probabilities(histogram),
        source=f"{preds[0].source}, per segment (one call each: segment_costs)",
        histogram_from=histogram_from,
        error_p90=max(p.error_p90 for p in preds),
    )


def measured_exit_latency(segment_p50_ms, histogram, histogram_from: str, where: str) -> ExitLatency:
    """Each segment's measured p50 (one benchmark run per segment file or signature on `where`)."""
    return ExitLatency(
        segments_ms=tuple(float(x) for x in segment_p50_ms),
        probabilities=exit_probabilities(histogram),
        source=f"measured: p50 of each segment on {where}, one benchmark run per segment",
        histogram_from=histogram_from,
    )
