"""Choosing for a device: the formats and precisions allowed, the candidates, the selection, and the
manifest's `selection` section that says why the chosen one won."""

from __future__ import annotations

from edgebert.errors import UsageError
from edgebert.model.bert import BertConfig
from edgebert.registry import CONVERTERS
from edgebert.select.budget import Budget
from edgebert.select.costs import costs
from edgebert.select.profiles import DeviceProfile
from edgebert.select.selector import Selection, enumerate_candidates, select

__all__ = ["PRECISION_PENALTY", "allowed", "choose", "selection_section", "predictor"]

# Quality cost charged to quantized candidates when the quality table holds fp32 figures only.
# From measured parity on MiniLM (verify.py, seq 128): int8 mean cosine 0.995-0.996 to fp32,
# fp16 1.000. Without it int8 and fp32 of one sub-network tie and the faster always wins.
PRECISION_PENALTY = {"int8": 0.005, "fp16": 0.0005}


def allowed(profile: DeviceProfile, formats, quantize) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The formats to consider (given, else the profile's that edgebert can write) and each one's precisions."""
    formats = tuple(formats) if formats else tuple(f for f in profile.formats if f in CONVERTERS.names())
    if not formats:
        raise UsageError(f"profile {profile.name} prefers no format edgebert can write; pass --formats")
    precisions = {}
    for f in formats:
        have = CONVERTERS.get(f).precisions
        precisions[f] = tuple(p for p in have if quantize in (None, p))
    if not any(precisions.values()):
        raise UsageError(f"no format among {', '.join(formats)} can produce {quantize}")
    return formats, precisions


def choose(
    config: BertConfig,
    profile: DeviceProfile,
    budget: Budget,
    quality: dict,
    formats,
    quantize,
    seq_len: int,
    threads: int,
) -> Selection:
    """Enumerate, predict and select. Raises BudgetError (exit 3) when nothing fits."""
    formats, precisions = allowed(profile, formats, quantize)
    cands = []
    for f in formats:
        if precisions[f]:
            cands += enumerate_candidates(
                config,
                profile,
                [f],
                precisions[f],
                seq_len,
                quality,
                threads=threads,
                precision_penalty=PRECISION_PENALTY,
            )
    return select(cands, budget.latency_ms, budget.memory_mb)


def selection_section(selection: Selection, quality_source: str) -> dict:
    cands = []
    for v in selection.verdicts:
        c = v.candidate
        if c.latency is None or c.quality is None:
            continue
        cands.append(
            {
                "spec": c.spec.key,
                "width": c.spec.width,
                "depth": c.spec.depth,
                "format": c.format,
                "precision": c.precision,
                "predicted_latency_ms": c.latency.value,
                "predicted_latency_p90_bound_ms": c.latency.upper,
                "predicted_memory_mb": c.memory.value if c.memory else 0.0,
                "quality": c.quality,
                "fits": v.fits,
                "why": v.reason,
            }
        )
    ch = selection.chosen
    chosen = next(
        x for x in cands if x["spec"] == ch.spec.key and x["format"] == ch.format and x["precision"] == ch.precision
    )
    n_fit = sum(x["fits"] for x in cands)
    why = (
        f"highest quality ({ch.quality:.4f}) among the {n_fit} of {len(cands)} candidates whose predicted p90 "
        f"bound fits {selection.budget_ms:g} ms and {selection.memory_mb:g} MB (ties go to the faster)"
    )
    return {
        "chosen": chosen,
        "why": why,
        "candidates": cands,
        "quality_source": quality_source,
        "latency_source": ch.latency.source,
    }


def predictor(profile: DeviceProfile, full_config: BertConfig, seq_len: int, threads: int):
    """Predicted latency/memory for every artifact, in the manifest's `predicted` form."""

    def predict(entry: dict, spec) -> None:
        c = costs(full_config, seq_len, spec)
        lat = profile.latency_model.predict_latency(c, entry["format"], entry["precision"], threads)
        mem = profile.latency_model.predict_memory(c, entry["format"], entry["precision"])
        entry["latency"]["predicted"] = lat.to_dict() if lat else None
        entry["memory"]["predicted"] = mem.to_dict() if mem else None

    return predict
