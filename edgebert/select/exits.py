"""Early-exit candidates for the selector: every (sub-network, format, precision) of a model with exits also
comes with each (policy, threshold) of a small grid, judged on the latency its exit histogram implies.

A candidate with a policy carries an ExitLatency (select/exit_latency.py): its per-segment prediction composed
with the exit histogram measured on dev data for that sub-network and policy. Its `latency` is the figure the
budget is judged on, a Prediction like any other: the p90 of the per-input latency distribution by default
(`budget_on="p90"`), or the worst case, every layer run (`budget_on="worst"`). Its quality is the
sub-network's figure minus what the policy loses on the dev texts: the accuracy drop against running every
layer (labelled dev data), or the share of inputs whose label differs from the last exit's (unlabelled texts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgebert.model.bert import BertConfig
from edgebert.model.spec import SubnetSpec
from edgebert.registry import SEGMENT_WRITERS
from edgebert.runtime.policy import Confidence, Entropy, Patience, Policy, run_policy, to_text
from edgebert.select.exit_latency import ExitLatency, predict_exit_latency
from edgebert.select.latency import Prediction
from edgebert.select.profiles import DeviceProfile
from edgebert.select.selector import Candidate

__all__ = ["ExitChoice", "ExitEvidence", "POLICY_GRID", "BUDGET_ON", "exit_candidates", "policy_outcome"]

# Small on purpose: each (policy, threshold) multiplies the grid. Thresholds from the ranges DeeBERT (entropy),
# PABEE (patience 1-3 on GLUE) and max-probability exits use; the manifest's dev sweep shows the finer grid.
POLICY_GRID: tuple[Policy, ...] = (
    Entropy(0.1),
    Entropy(0.3),
    Patience(1),
    Patience(2),
    Confidence(0.9),
    Confidence(0.99),
)
BUDGET_ON = ("p90", "worst")

# evidence(spec) -> every exit's logits on the dev texts [n, exits, labels] and their labels (None: unlabelled)
ExitEvidence = Callable[[SubnetSpec], "tuple[np.ndarray, np.ndarray | None, str]"]


@dataclass(frozen=True)
class ExitChoice:
    policy: Policy
    latency: ExitLatency
    histogram: tuple[int, ...]
    quality_drop: float  # what the policy loses on the dev texts, as a fraction (0.01 = 1 pt)
    drop_source: str

    @property
    def text(self) -> str:
        return to_text(self.policy)

    def to_dict(self) -> dict:
        return {
            "policy": self.text,
            "histogram": list(self.histogram),
            "quality_drop": round(self.quality_drop, 6),
            "quality_drop_source": self.drop_source,
            "latency": self.latency.to_dict(),
        }


def policy_outcome(logits: np.ndarray, labels, policy: Policy) -> tuple[tuple[int, ...], float, str]:
    """(exits taken per layer, quality drop vs running every layer, what the drop is) on dev exit logits."""
    n_exits = logits.shape[1]
    taken = [run_policy(policy, list(row)) for row in logits]
    layers = np.array([t[0] for t in taken])
    hist = tuple(int((layers == k).sum()) for k in range(1, n_exits + 1))
    early = np.array([int(np.argmax(t[1])) for t in taken])
    last = logits[:, -1].argmax(-1)
    if labels is not None:
        gold = np.asarray(labels)
        drop = float((last == gold).mean() - (early == gold).mean())
        return hist, drop, "dev accuracy of every layer minus the policy's (measured in PyTorch)"
    return hist, float((early != last).mean()), "share of unlabelled texts whose label differs from the last exit's"


def _judged(lat: ExitLatency, budget_on: str, base: Prediction) -> Prediction:
    value = lat.p90_ms if budget_on == "p90" else lat.worst_ms
    what = "p90 of the per-input latency over the exit histogram" if budget_on == "p90" else "worst case, every layer"
    return Prediction(value, "ms", f"{lat.source}; {what}", base.expected_error, lat.error_p90)


def exit_candidates(
    cands: list[Candidate],
    config: BertConfig,
    profile: DeviceProfile,
    evidence: ExitEvidence,
    budget_on: str = "p90",
    grid: tuple[Policy, ...] = POLICY_GRID,
) -> list[Candidate]:
    """`cands` plus, for each with a latency and a quality in a format segments can be written in, one
    candidate per policy of `grid`."""
    if budget_on not in BUDGET_ON:
        raise ValueError(f"budget_on must be one of {BUDGET_ON}, got {budget_on!r}")
    out = list(cands)
    seen: dict[str, tuple] = {}
    for c in cands:
        if c.latency is None or c.quality is None or c.format not in SEGMENT_WRITERS.names():
            continue
        if c.spec.key not in seen:
            seen[c.spec.key] = evidence(c.spec)
        logits, labels, data = seen[c.spec.key]
        for policy in grid:
            hist, drop, drop_source = policy_outcome(logits, labels, policy)
            lat = predict_exit_latency(
                profile.latency_model, config, c.spec, c.seq_len, c.format, c.precision, c.threads, hist, data
            )
            if lat is None:
                continue
            choice = ExitChoice(policy, lat, hist, drop, drop_source)
            out.append(
                dataclasses.replace(
                    c,
                    latency=_judged(lat, budget_on, c.latency),
                    quality=c.quality - max(drop, 0.0),
                    quality_source=f"{c.quality_source}; minus {to_text(policy)}'s loss {drop:.4f} ({drop_source})",
                    early_exit=choice,
                )
            )
    return out
