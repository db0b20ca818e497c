"""Early-exit candidates for the selector: every (sub-network, format, precision) of a model with exits also
comes with each (policy, threshold) of a small grid, judged on the latency its exit histogram implies.

A candidate with a policy carries an ExitLatency (select/exit_latency.py): its per-segment prediction composed
with the exit histogram measured on dev data for that sub-network and policy. Its `latency` is the figure the
budget is judged on, a Prediction like any other: the p90 of the per-input latency distribution by default
(`budget_on="p90"`), or the worst case, every layer run (`budget_on="worst"`). Its quality is the
sub-network's figure minus what the policy loses on the dev texts: the accuracy drop against running every
layer (labelled dev data), or the share of inputs whose label differs from the last exit's (unlabelled texts).

`auto_policy` is `export --early-exit auto`: the same judgement over the finer SWEEPS grid, for one sub-network,
without a device: the policy that runs the fewest layers on average among those within a quality limit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgebert.model.bert import BertConfig
from edgebert.model.spec import SubnetSpec
from edgebert.registry import SEGMENT_WRITERS
from edgebert.runtime.policy import POLICIES, SWEEPS, Confidence, Entropy, Patience, Policy, run_policy, to_text
from edgebert.select.exit_latency import ExitLatency, predict_exit_latency
from edgebert.select.latency import Prediction
from edgebert.select.profiles import DeviceProfile
from edgebert.select.selector import Candidate

__all__ = [
    "AUTO_GRID",
    "ExitChoice",
    "ExitEvidence",
    "POLICY_GRID",
    "BUDGET_ON",
    "auto_policy",
    "exit_candidates",
    "policy_outcome",
]

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
# What `--early-exit auto` tries: every threshold of the manifest's dev sweep. It holds entropy=0 (never exits
# early, loses nothing), so some policy is always within any limit >= 0.
AUTO_GRID: tuple[Policy, ...] = tuple(POLICIES[kind](v) for kind, values in SWEEPS.items() for v in values)

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


def auto_policy(logits: np.ndarray, labels, data: str, max_drop: float, grid=AUTO_GRID) -> tuple[Policy, dict]:
    """(the chosen policy, the manifest's record of what was tried and why it won) for `--early-exit auto`.

    Among the policies of `grid` whose quality drop on the dev texts (policy_outcome) is at most `max_drop` (a
    fraction: 0.005 = 0.5 pt), the one with the smallest mean exit layer wins; ties go to the smaller drop, then
    to grid order. The mean exit layer ranks policies as their expected latency does for a uniform sub-network,
    whatever the device: every input pays segment 1's embeddings, and each further segment costs the same layer
    plus exit head (and one policy check), so expected latency = constant + cost per segment x mean exit layer."""
    n_exits = logits.shape[1]
    full = None if labels is None else float((logits[:, -1].argmax(-1) == np.asarray(labels)).mean())
    tried, source = [], ""
    for policy in grid:
        hist, drop, source = policy_outcome(logits, labels, policy)
        mean = sum(k * c for k, c in enumerate(hist, start=1)) / max(sum(hist), 1)
        row = {"policy": to_text(policy), "histogram": list(hist), "mean_exit_layer": round(mean, 4)}
        row["accuracy"] = None if full is None else round(full - drop, 6)
        tried.append({**row, "quality_drop": round(drop, 6), "within_limit": drop <= max_drop + 1e-12})
    within = [i for i, t in enumerate(tried) if t["within_limit"]]
    if not within:
        raise ValueError(f"no policy of the grid is within {max_drop}; the grid needs entropy=0")
    best = min(within, key=lambda i: (tried[i]["mean_exit_layer"], tried[i]["quality_drop"], i))
    fastest = min(range(len(tried)), key=lambda i: (tried[i]["mean_exit_layer"], i))
    win = tried[best]
    why = (
        f"{win['policy']} runs {win['mean_exit_layer']:.2f} of {n_exits} layers on average, the fewest among the "
        f"{len(within)} of {len(tried)} policies whose dev quality drop is at most {max_drop * 100:g} pt "
        f"(its drop: {win['quality_drop'] * 100:.2f} pt)"
    )
    if tried[fastest]["mean_exit_layer"] < win["mean_exit_layer"]:
        f = tried[fastest]
        why += f"; faster but over the limit: {f['policy']} ({f['mean_exit_layer']:.2f} layers, {f['quality_drop'] * 100:.2f} pt)"
    record = {
        "data": data,
        "n": int(logits.shape[0]),
        "max_quality_drop_points": max_drop * 100,
        "full_accuracy": None if full is None else round(full, 6),
        "quality_drop": source,
        "ranked_by": "mean exit layer (expected segments run; ranks as expected latency does on any device)",
        "tried": tried,
        "chosen": win["policy"],
        "why": why,
    }
    return grid[best], record
