"""Early-exit policies: when to stop after an exit's logits. Pure numpy, parsed once from text.

  entropy=T     DeeBERT: exit once the entropy (nats) of the exit's softmax is below T; T=0 never exits early
  patience=K    PABEE: exit once the predicted class has stayed the same for K exits after the one
                that first predicted it (K+1 agreeing exits in a row)
  confidence=P  exit once the largest softmax probability is at least P; P=0 exits at layer 1

Every policy exits at the last layer when it has not fired before. A policy is a frozen dataclass;
`parse_policy` is the one place text becomes a policy (the CLI calls it, errors exit 2), `to_dict` /
`policy_from_dict` round-trip it through manifest.json. A mobile app ports `run_policy` (about 20 lines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgebert.errors import UsageError

__all__ = [
    "Entropy",
    "Patience",
    "Confidence",
    "Policy",
    "POLICIES",
    "SWEEPS",
    "parse_policy",
    "policy_from_dict",
    "run_policy",
    "softmax",
    "to_dict",
    "to_text",
]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


@dataclass(frozen=True)
class Entropy:
    threshold: float
    kind = "entropy"

    def __post_init__(self):
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise UsageError(f"entropy=T needs a threshold T >= 0 (nats; 0 never exits early), got {self.threshold}")

    @property
    def value(self) -> float:
        return self.threshold


@dataclass(frozen=True)
class Patience:
    k: int
    kind = "patience"

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise UsageError(
                f"patience=K needs an integer K >= 1 (agreeing exits in a row after the first), got {self.k}"
            )

    @property
    def value(self) -> int:
        return self.k


@dataclass(frozen=True)
class Confidence:
    p: float
    kind = "confidence"

    def __post_init__(self):
        if not (math.isfinite(self.p) and 0.0 <= self.p <= 1.0):
            raise UsageError(f"confidence=P needs a probability P in [0, 1] (0 exits at layer 1), got {self.p}")

    @property
    def value(self) -> float:
        return self.p


Policy = Entropy | Patience | Confidence
POLICIES = {"entropy": Entropy, "patience": Patience, "confidence": Confidence}
# Thresholds tried on dev data for each policy kind: the manifest's dev sweep, and what `--early-exit auto`
# chooses from. entropy=0 and confidence=1 (almost) never exit early: auto's fallback when nothing else holds.
SWEEPS = {
    "entropy": (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
    "confidence": (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
    "patience": (1, 2, 3, 4, 5),
}
_EXAMPLES = "entropy=0.3, patience=2 or confidence=0.9"


def parse_policy(text: str) -> Policy:
    """'patience=2' -> Patience(2); anything else is a UsageError saying what is accepted."""
    name, sep, raw = str(text).strip().partition("=")
    name = name.strip().lower()
    if not sep or name not in POLICIES:
        raise UsageError(f"unknown early-exit policy {str(text)[:40]!r}: expected NAME=VALUE, e.g. {_EXAMPLES}")
    try:
        value = int(raw) if name == "patience" else float(raw)
    except ValueError:
        kind = "an integer" if name == "patience" else "a number"
        raise UsageError(f"{name}= needs {kind}, got {raw.strip()[:40]!r} (e.g. {_EXAMPLES})") from None
    return POLICIES[name](value)


def to_text(policy: Policy) -> str:
    return f"{policy.kind}={policy.value:g}"


def to_dict(policy: Policy) -> dict:
    return {"kind": policy.kind, "value": policy.value, "text": to_text(policy)}


def policy_from_dict(d: dict) -> Policy:
    return parse_policy(f"{d['kind']}={d['value']}")


def run_policy(policy: Policy, exits) -> tuple[int, np.ndarray]:
    """(1-based exit layer, logits there) for one input; `exits` yields each exit's logits [L] lazily, so
    layers after the exit are never computed. The loop an app ports."""
    streak, previous, logits, layer = 0, None, None, 0
    for layer, logits in enumerate(exits, start=1):
        probs = softmax(logits)
        if isinstance(policy, Entropy):
            fire = float(-(probs * np.log(np.maximum(probs, 1e-30))).sum()) < policy.threshold
        elif isinstance(policy, Confidence):
            fire = float(probs.max()) >= policy.p
        else:  # PABEE counts how many exits in a row repeat the previous exit's prediction
            label = int(probs.argmax())
            streak = streak + 1 if label == previous else 0
            previous = label
            fire = streak >= policy.k
        if fire:
            return layer, np.asarray(logits)
    if logits is None:
        raise ValueError("no exits to run")
    return layer, np.asarray(logits)
