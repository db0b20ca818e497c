"""Memory-driven compression: which ranks and pruning make a model's predicted size fit a limit on a device.

Every candidate is judged on predictions only (select/costs.py for the file, the device profile's memory
model for peak memory) of the full-size (w1, d1) compressed model, so every (width, depth) it serves fits
too. Among the candidates that fit, a fixed rule picks: the least encoder compression first (no weight
factorisation, then the smallest structured pruning), then the largest embedding rank. Why this order:
LadaBERT and issue 15's benchmark find the word table the cheapest place to lose parameters, and the
encoder's weights the dearest. There is no quality predictor for compression levels: the choice is a rule,
and the quality of what it chose is measured after distillation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from edgebert.errors import BudgetError
from edgebert.model.config import BertConfig
from edgebert.model.spec import SubnetSpec, subnet_config
from edgebert.registry import CONVERTERS
from edgebert.select.costs import costs
from edgebert.select.profiles import DeviceProfile

__all__ = ["Candidate", "search", "EMBEDDING_RANKS", "WEIGHT_SHARES", "PRUNE_SHARES"]

EMBEDDING_RANKS = (0, 256, 192, 128, 96, 64, 48, 32)  # 0: dense
WEIGHT_SHARES = (0.0, 0.5, 0.25)  # of the full rank (hidden size); 0: dense
PRUNE_SHARES = (0.0, 0.2, 0.4, 0.6)  # structured: heads and neurons


@dataclass(frozen=True)
class Candidate:
    embedding_rank: int
    weight_rank: int
    prune: float
    file_mb: float  # predicted: select/costs.py weight bytes in the format at the precision
    memory_mb: float | None  # predicted: the profile's memory model (None: it has none for the format)
    parameters: int

    @property
    def plan(self) -> dict:
        return {
            "embedding_rank": self.embedding_rank,
            "weight_rank": self.weight_rank,
            "prune": self.prune,
            "prune_kind": "structured",
        }

    def fits(self, limit_mb: float) -> bool:
        return self.file_mb <= limit_mb and (self.memory_mb is None or self.memory_mb <= limit_mb)

    def describe(self) -> str:
        mem = f", peak memory {self.memory_mb:.1f} MB" if self.memory_mb is not None else ""
        return (
            f"embedding rank {self.embedding_rank or 'full'}, weight rank {self.weight_rank or 'full'}, "
            f"structured prune {self.prune:g}: file {self.file_mb:.1f} MB{mem} (predicted)"
        )


def _compressed_config(config: BertConfig, embedding_rank: int, weight_rank: int, prune: float) -> BertConfig:
    pruned = subnet_config(config, SubnetSpec(1.0 - prune, 1.0)) if prune else config
    return replace(pruned, embedding_rank=embedding_rank, weight_rank=weight_rank)


def candidates(config: BertConfig, profile: DeviceProfile, fmt: str, precision: str, seq_len: int) -> list[Candidate]:
    out = []
    h = config.hidden_size
    for prune in PRUNE_SHARES:
        for share in WEIGHT_SHARES:
            for er in EMBEDDING_RANKS:
                if er >= h:
                    continue
                wr = max(1, round(share * h)) if share else 0
                cfg = _compressed_config(config, er, wr, prune)
                c = costs(cfg, seq_len)
                mem = profile.latency_model.predict_memory(c, fmt, precision)
                out.append(
                    Candidate(er, wr, prune, c.weight_bytes(precision, fmt) / 1e6, mem.value if mem else None, c.params)
                )
    return out


def _preference(c: Candidate) -> tuple:
    return (c.weight_rank != 0, c.prune, -c.weight_rank, -(c.embedding_rank or 10**9))


def search(
    config: BertConfig, profile: DeviceProfile, limit_mb: float, seq_len: int = 128, precision: str = "int8"
) -> tuple[Candidate, dict]:
    """(the chosen candidate, a JSON-able account of the search). Raises BudgetError (exit 3) when nothing
    fits, naming the smallest predicted size any candidate reaches."""
    fmt = profile.formats[0]
    conv = CONVERTERS.get(fmt)
    if precision not in conv.precisions:
        precision = "fp32"
    found = candidates(config, profile, fmt, precision, seq_len)
    fitting = [c for c in found if c.fits(limit_mb)]
    uncompressed = costs(config, seq_len)
    account = {
        "limit_mb": limit_mb,
        "device": profile.name,
        "format": fmt,
        "precision": precision,
        "seq_len": seq_len,
        "uncompressed_file_mb": round(uncompressed.weight_bytes(precision, fmt) / 1e6, 2),
        "candidates": len(found),
        "fitting": len(fitting),
        "rule": "least encoder compression first (no weight factorisation, then the smallest structured pruning), "
        "then the largest embedding rank; sizes are predictions (select/costs.py, the profile's memory model)",
    }
    if not fitting:
        smallest = min(found, key=lambda c: max(c.file_mb, c.memory_mb or 0.0))
        reach = max(smallest.file_mb, smallest.memory_mb or 0.0)
        raise BudgetError(
            f"no compression edgebert searches fits {limit_mb:g} MB on {profile.name} ({fmt} {precision}): "
            f"the smallest reachable is {reach:.1f} MB ({smallest.describe()}). "
            f"Raise --memory to at least {reach:.1f}MB, or pick a larger device"
        )
    chosen = min(fitting, key=_preference)
    account["chosen"] = {**asdict(chosen), "file_mb": round(chosen.file_mb, 2)}
    return chosen, account
