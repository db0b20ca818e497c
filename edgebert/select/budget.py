"""Budgets: a latency budget and a memory limit, parsed once from what a user wrote ("40ms", "150MB").

A Budget also says where each limit came from (a flag, a config key, or the profile's default),
because the manifest and the report show it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgebert.errors import UsageError
from edgebert.select.profiles import DeviceProfile

__all__ = ["Budget", "parse_latency", "parse_memory"]

_NUMBER = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:e([+-]?\d+))?"
_TIME_UNITS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "µs": 1e-3}
_MEM_UNITS = {
    "b": 1e-6,
    "kb": 1e-3,
    "mb": 1.0,
    "gb": 1e3,
    "kib": 1024 / 1e6,
    "mib": 1024**2 / 1e6,
    "gib": 1024**3 / 1e6,
    "tb": 1e6,
    "tib": 1024**4 / 1e6,
}


# Far past any device budget, yet small enough that predictions, reports and plots stay finite numbers.
_LIMITS = {"latency budget": (3.6e6, "1 hour"), "memory limit": (1e7, "10 TB")}


def _shown(value) -> str:
    """The value as the user wrote it, cut short: a 10 KB budget string is not echoed in full."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "...'"


def _parse(value, units: dict, what: str, form: str) -> float:
    text = str(value).strip()
    m = re.fullmatch(_NUMBER + r"\s*([A-Za-zµ]+)", text)
    unit = m.group(3).lower() if m else None
    if not m or unit not in units:
        raise UsageError(f"{what} {_shown(value)} is not understood; expected {form}")
    # float() of the whole literal: an exponent like e400 becomes inf here instead of an OverflowError.
    number = float(m.group(1) + (f"e{m.group(2)}" if m.group(2) else "")) * units[unit]
    if number <= 0 or math.isnan(number):
        raise UsageError(f"{what} {_shown(value)} must be greater than zero; expected {form}")
    limit, words = _LIMITS[what]
    if number > limit:
        raise UsageError(f"{what} {_shown(value)} is too large (at most {words}); expected {form}")
    return number


def parse_latency(value) -> float:
    """'40ms', '40 ms', '0.04s' -> 40.0 (milliseconds)."""
    return _parse(value, _TIME_UNITS, "latency budget", "a positive number with a unit, like 40ms, 40 ms or 0.04s")


def parse_memory(value) -> float:
    """'150MB', '1.5GB', '512KiB' -> megabytes (1 MB = 10^6 bytes; KiB/MiB/GiB are powers of 1024)."""
    return _parse(value, _MEM_UNITS, "memory limit", "a positive number with a unit, like 150MB, 1.5GB or 512MiB")


@dataclass(frozen=True)
class Budget:
    """The limits a selection must fit: p90-bounded latency (ms) and model memory (MB)."""

    latency_ms: float
    memory_mb: float
    latency_text: str | None = None  # as written ("40ms"); None: the profile's default
    memory_text: str | None = None

    @classmethod
    def resolve(cls, profile: DeviceProfile, latency: str | None = None, memory: str | None = None) -> "Budget":
        """Parse what the user wrote; anything not given takes the profile's default."""
        return cls(
            latency_ms=parse_latency(latency) if latency else profile.default_budget_ms,
            memory_mb=parse_memory(memory) if memory else profile.model_memory_mb,
            latency_text=latency or None,
            memory_text=memory or None,
        )

    @property
    def latency_from(self) -> str:
        return "--budget" if self.latency_text else "profile default"

    @property
    def memory_from(self) -> str:
        return "--memory" if self.memory_text else "profile model_memory_mb"
