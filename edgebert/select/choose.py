"""Choosing for a device: the formats and precisions allowed, the candidates, the selection, and the
manifest's `selection` section that says why the chosen one won."""

from __future__ import annotations

import dataclasses
from typing import Protocol

from edgebert.errors import UsageError
from edgebert.model.bert import BertConfig
from edgebert.model.spec import SubnetSpec
from edgebert.registry import CONVERTERS
from edgebert.select.budget import Budget
from edgebert.select.costs import costs
from edgebert.select.exits import ExitEvidence, exit_candidates
from edgebert.select.profiles import DeviceProfile
from edgebert.select.selector import Candidate, Selection, enumerate_candidates, judge, select

__all__ = ["allowed", "choose", "measured_quality", "selection_section", "predictor"]


class QuantizedQuality(Protocol):
    """The quality of an int8/fp16 candidate as (figure, source), or None where it cannot say
    (select/quantized.py implements it)."""

    def recorded(self, spec: SubnetSpec, fmt: str, precision: str) -> tuple[float, str] | None:
        """Already measured on the dev set (the model's quality.json): free to ask for every candidate."""

    def __call__(self, spec: SubnetSpec, fmt: str, precision: str) -> tuple[float, str] | None:
        """Measured now if need be: converts the sub-network (seconds each), so asked only where it matters."""


def allowed(
    profile: DeviceProfile, formats, quantize, loadable: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The formats to consider (given, else the profile's that edgebert can write here: an optional toolchain
    that is not installed, e.g. ExecuTorch, is skipped) and each one's precisions; `loadable`: only these
    precisions (those the app's runtime loads, export/runtimes.py)."""
    formats = (
        tuple(formats)
        if formats
        else tuple(f for f in profile.formats if f in CONVERTERS.names() and CONVERTERS.get(f).unavailable() is None)
    )
    if not formats:
        raise UsageError(f"profile {profile.name} prefers no format edgebert can write; pass --formats")
    precisions = {}
    for f in formats:
        have = CONVERTERS.get(f).precisions
        precisions[f] = tuple(p for p in have if quantize in (None, p) and (loadable is None or p in loadable))
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
    quantized: QuantizedQuality | None = None,
    loadable: tuple[str, ...] | None = None,
    exits: ExitEvidence | None = None,
    budget_on: str = "p90",
) -> Selection:
    """Enumerate, predict, measure the quantized candidates that could win, and select.

    `exits` (a model with exit heads): every candidate also comes with each early-exit policy of the grid,
    judged on the p90 of its latency distribution (`budget_on="worst"`: every layer run). Raises BudgetError
    (exit 3) when nothing fits."""
    formats, precisions = allowed(profile, formats, quantize, loadable)
    cands = []
    for f in formats:
        if precisions[f]:
            cands += enumerate_candidates(config, profile, [f], precisions[f], seq_len, quality, threads=threads)
    cands = measured_quality(cands, budget.latency_ms, budget.memory_mb, quantized)
    if exits is not None:
        cands = exit_candidates(cands, config, profile, exits, budget_on)
    return select(cands, budget.latency_ms, budget.memory_mb)


def measured_quality(
    cands: list[Candidate], budget_ms: float, memory_mb: float | None, quantized: QuantizedQuality | None
) -> list[Candidate]:
    """Every int8/fp16 candidate gets a quality for its own precision instead of its fp32 upper bound.

    First every figure already measured on the dev set (quality.json's per-precision rows, written by `edgebert
    train` / `evaluate --quantized`), for every candidate. Converting costs seconds per artifact, so of the
    rest only the candidates that fit the budget and could still win are measured: best fp32 bound first,
    until the best quality found reaches every bound left. The others are derived from the measured ones:
    their fp32 figure minus the largest drop measured for the same format and precision (else the same
    precision in any format); with nothing measured, the fp32 figure stays as an upper bound and the source
    says so. None of them can be chosen: they cannot beat the figure that stopped the measuring, or they do
    not fit."""
    fits = [judge(c, budget_ms, memory_mb, margin=True).fits for c in cands]  # as select() judges
    quantized_ones = [i for i, c in enumerate(cands) if c.precision != "fp32" and c.quality is not None]
    got: dict[int, tuple[float, str]] = {}
    if quantized is not None:
        for i in quantized_ones:
            found = quantized.recorded(cands[i].spec, cands[i].format, cands[i].precision)
            if found is not None:
                got[i] = found
    known = [c.quality for c, ok in zip(cands, fits) if ok and c.precision == "fp32" and c.quality is not None]
    best = max(known + [got[i][0] for i in got if fits[i]], default=float("-inf"))
    todo = sorted(
        (i for i in quantized_ones if fits[i] and i not in got),
        key=lambda i: (-cands[i].quality, cands[i].latency.value),
    )
    for i in todo:
        # A quantized artifact never beats its own fp32 figure in practice, so a bound equal to the best cannot win.
        if quantized is None or cands[i].quality <= best:
            break
        found = quantized(cands[i].spec, cands[i].format, cands[i].precision)
        if found is not None:
            got[i] = found
            best = max(best, found[0])
    drops: dict[tuple[str, str], list[float]] = {}
    for i, (q, _) in got.items():
        drops.setdefault((cands[i].format, cands[i].precision), []).append(cands[i].quality - q)
    out = []
    for i, c in enumerate(cands):
        if i in got:
            c = dataclasses.replace(c, quality=got[i][0], quality_source=got[i][1])
        elif c.precision != "fp32" and c.quality is not None:
            below = quantized is not None and best > float("-inf")  # else nothing measured stopped the measuring
            why = f"its fp32 figure is below {best:.4f}" if below else "no quantized figure is measured for it"
            c = _derived(c, drops, "it does not fit the budget" if not fits[i] else why)
        out.append(c)
    return out


def _derived(c: Candidate, drops: dict, why: str) -> Candidate:
    same = drops.get((c.format, c.precision))
    any_format = [d for (_, p), ds in drops.items() if p == c.precision for d in ds]
    measured, where = (same, f"{c.format} {c.precision}") if same else (any_format, f"{c.precision} in other formats")
    fp32_source = c.quality_source.split(": ", 1)[-1]
    if not measured:
        return dataclasses.replace(
            c, quality_source=f"not measured for {c.precision} ({why}): the fp32 figure, an upper bound: {fp32_source}"
        )
    drop = max(measured)
    return dataclasses.replace(
        c,
        quality=c.quality - drop,
        quality_source=f"derived for {c.precision}, not measured ({why}): fp32 figure minus the largest drop "
        f"measured for {where} ({drop:.4f}, {len(measured)} sub-networks): {fp32_source}",
    )


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
                "quality_source": c.quality_source,
                "fits": v.fits,
                "why": v.reason,
                "early_exit": c.early_exit.to_dict() if c.early_exit is not None else None,
                "variant": c.variant,
            }
        )
    ch = selection.chosen
    policy = ch.early_exit.to_dict()["policy"] if ch.early_exit is not None else None
    chosen = next(
        x
        for x in cands
        if x["spec"] == ch.spec.key
        and x["format"] == ch.format
        and x["precision"] == ch.precision
        and (x["early_exit"] or {}).get("policy") == policy
        and x["variant"] == ch.variant
    )
    n_fit = sum(x["fits"] for x in cands)
    why = (
        f"highest quality ({ch.quality:.4f}) among the {n_fit} of {len(cands)} candidates whose predicted p90 "
        f"bound fits {selection.budget_ms:g} ms and {selection.memory_mb:g} MB (ties go to the faster on average)"
    )
    if ch.early_exit is not None:
        lat = ch.early_exit.latency
        why += (
            f"; early exit {ch.early_exit.text}: expected {lat.expected_ms:.2f} ms per input, p90 {lat.p90_ms:.2f},"
            f" worst case {lat.worst_ms:.2f} ({lat.source.split(':')[0]})"
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
