"""Selector: the best expected quality that fits a latency budget and a memory limit on a device.

The grid is DynaBERT's widths × depths × the allowed formats (in the profile's order of
preference) × precisions. Latency and memory are predicted by the profile's latency model;
quality comes from the model's quality table or from a proxy measured on calibration text.
Every candidate considered is kept with why it fits or does not, for the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgebert.errors import BudgetError, SpecError
from edgebert.model.bert import BertConfig
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.select.costs import costs
from edgebert.select.latency import Prediction
from edgebert.select.profiles import DeviceProfile

__all__ = ["Candidate", "Verdict", "Selection", "enumerate_candidates", "judge", "select", "round_up", "typical_ms"]


@dataclass(frozen=True)
class Candidate:
    spec: SubnetSpec
    format: str
    precision: str
    seq_len: int
    threads: int
    latency: Prediction | None  # None: the device has no coefficients for this format/precision
    memory: Prediction | None
    quality: float | None  # None: no quality figure for this sub-network
    quality_source: str
    # An early-exit policy (select/exits.py's ExitChoice); `latency` is then the figure the budget is judged on.
    early_exit: object | None = None
    variant: str | None = None  # which of the model's compressed variants (select/variants.py); None: none compared

    @property
    def label(self) -> str:
        policy = f" exit {self.early_exit.text}" if self.early_exit is not None else ""
        of = f"{self.variant} " if self.variant is not None else ""
        return f"{of}{self.spec.key} {self.format}/{self.precision}{policy} seq {self.seq_len} ×{self.threads}"

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.to_dict(),
            "key": self.spec.key,
            "format": self.format,
            "precision": self.precision,
            "seq_len": self.seq_len,
            "threads": self.threads,
            "latency": self.latency.to_dict() if self.latency else None,
            "memory": self.memory.to_dict() if self.memory else None,
            "quality": self.quality,
            "quality_source": self.quality_source,
            "early_exit": self.early_exit.to_dict() if self.early_exit is not None else None,
            "variant": self.variant,
        }


@dataclass(frozen=True)
class Verdict:
    candidate: Candidate
    fits: bool
    reason: str  # why it fits or why not, in words

    def to_dict(self) -> dict:
        return {**self.candidate.to_dict(), "fits": self.fits, "reason": self.reason}


@dataclass(frozen=True)
class Selection:
    chosen: Candidate
    budget_ms: float
    memory_mb: float | None
    verdicts: tuple[Verdict, ...]  # every candidate considered, chosen one included

    def to_dict(self) -> dict:
        return {
            "chosen": self.chosen.to_dict(),
            "budget_ms": self.budget_ms,
            "memory_mb": self.memory_mb,
            "candidates": [v.to_dict() for v in self.verdicts],
        }


def enumerate_candidates(
    config: BertConfig,
    profile: DeviceProfile,
    formats,
    precisions,
    seq_len: int,
    quality: dict[str, tuple[float, str]],
    threads: int | None = None,
) -> list[Candidate]:
    """The grid for `config` (the full model's) on `profile`, with predictions and quality.

    `formats` are kept in the profile's order of preference (formats the profile does not list
    come after it). `quality` holds fp32 figures: an int8/fp16 candidate starts with its sub-network's
    fp32 figure as an upper bound, and choose.measured_quality replaces it by a measured (or derived)
    figure for that precision; the source says which.
    """
    threads = threads or profile.default_threads
    order = {f: i for i, f in enumerate(profile.formats)}
    formats = sorted(dict.fromkeys(formats), key=lambda f: order.get(f, len(order)))
    model = profile.latency_model
    out = []
    for width in WIDTHS:
        for depth in DEPTHS:
            spec = SubnetSpec(width, depth)
            try:
                c = costs(config, seq_len, spec)
            except SpecError:
                continue  # a grid point this model is too small for (e.g. width 0.25 of 2 heads)
            score, source = quality.get(spec.key, (None, "no quality figure for this sub-network"))
            for fmt in formats:
                for precision in precisions:
                    q, qsrc = score, source
                    if q is not None and precision != "fp32":
                        qsrc = f"upper bound, not measured for {precision}: {source}"
                    out.append(
                        Candidate(
                            spec=spec,
                            format=fmt,
                            precision=precision,
                            seq_len=seq_len,
                            threads=threads,
                            latency=model.predict_latency(c, fmt, precision, threads),
                            memory=model.predict_memory(c, fmt, precision),
                            quality=q,
                            quality_source=qsrc,
                        )
                    )
    return out


def judge(c: Candidate, budget_ms: float, memory_mb: float | None, margin: bool) -> Verdict:
    if c.latency is None:
        return Verdict(c, False, f"no latency coefficients for {c.format}/{c.precision} on this device")
    if c.quality is None:
        return Verdict(c, False, c.quality_source)
    # With margin, the prediction's p90 bound must fit: the budget is a promise about the measured p50.
    lat = c.latency.upper if margin else c.latency.value
    if lat > budget_ms:
        bound = f" (p90 bound {lat:.3g} ms)" if margin else ""
        return Verdict(c, False, f"latency {c.latency}{bound} > budget {budget_ms:g} ms")
    if memory_mb is not None:
        if c.memory is None:
            return Verdict(c, False, f"no memory model for {c.format} on this device")
        mem = c.memory.upper if margin else c.memory.value
        if mem > memory_mb:
            bound = f" (p90 bound {mem:.3g} MB)" if margin else ""
            return Verdict(c, False, f"memory {c.memory}{bound} > limit {memory_mb:g} MB")
    return Verdict(c, True, f"fits: latency {c.latency}" + (f", memory {c.memory}" if c.memory else ""))


def typical_ms(c: Candidate) -> float:
    """What an average input costs: an early-exit candidate's expected latency over its exit histogram (its
    `latency` is the p90 or worst case the budget is judged on), else the candidate's latency."""
    return c.early_exit.latency.expected_ms if c.early_exit is not None else c.latency.value


def _rank(c: Candidate):
    # Best quality first; on equal quality the faster on average (an early-exit policy that fits the budget on
    # its p90/worst case and loses nothing on the dev texts beats running every layer), then the smaller; then
    # the preferred order.
    return (-c.quality, typical_ms(c), c.memory.value if c.memory else 0.0)


def select(
    candidates: list[Candidate], budget_ms: float, memory_mb: float | None = None, margin: bool = True
) -> Selection:
    """The best-quality candidate that fits both limits (ties go to the faster one on average: typical_ms).

    margin=True judges by each prediction's p90 bound (value × (1 + error_p90)) rather than its
    central value, so that a chosen artifact's measured p50 stays within budget about 9 times in 10
    or better. Raises BudgetError (exit code 3) naming the fastest candidate when nothing fits.
    """
    verdicts = [judge(c, budget_ms, memory_mb, margin) for c in candidates]
    fitting = [v.candidate for v in verdicts if v.fits]
    if fitting:
        return Selection(min(fitting, key=_rank), budget_ms, memory_mb, tuple(verdicts))
    raise _nothing_fits(verdicts, budget_ms, memory_mb, margin)


def _nothing_fits(verdicts: list[Verdict], budget_ms: float, memory_mb: float | None, margin: bool) -> BudgetError:
    known = [v.candidate for v in verdicts if v.candidate.latency is not None]
    if not known:
        err = BudgetError(
            "no candidate has a latency prediction on this device: the profile has no coefficients for "
            "the formats/precisions asked for; allow other --formats or add entries to the profile"
        )
        err.verdicts = tuple(verdicts)
        return err
    fastest = min(known, key=lambda c: c.latency.value)
    lat = fastest.latency.upper if margin else fastest.latency.value
    mem = fastest.memory
    relax = []
    if lat > budget_ms:
        relax.append(f"a --budget of at least {round_up(lat)} ms")
    if memory_mb is not None and mem is not None and (mem.upper if margin else mem.value) > memory_mb:
        smallest = min((c.memory.upper if margin else c.memory.value) for c in known if c.memory is not None)
        relax.append(f"a --memory of at least {round_up(smallest)} MB")
    relax.append("a shorter --seq-len, more threads or other --formats/precisions")
    limits = f"{budget_ms:g} ms" + (f" and {memory_mb:g} MB" if memory_mb is not None else "")
    err = BudgetError(
        f"no candidate fits {limits}: the fastest, {fastest.label}, is predicted at {fastest.latency}"
        + (f" and {mem}" if mem else "")
        + (" (judged by the p90 bound)" if margin else "")
        + f". Relax the limits: {'; or '.join(relax)}."
    )
    err.verdicts = tuple(verdicts)
    return err


def round_up(x: float) -> str:
    """`x` rounded up (two significant figures below 10, a whole number above): a limit of this value holds `x`.
    (`f"{x:.2g}"` rounded 0.2747 to 0.27, a --memory that the advice's own candidate then did not fit.)"""
    if x >= 10:
        return str(math.ceil(x))
    if x <= 0:
        return "0"
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    return f"{round(math.ceil(round(x / step, 6)) * step, 12):g}"
