"""`edgebert export --device D --budget B`: profile → candidates → select → export → measure → report.

Everything arrives resolved: a DeviceProfile, a Budget, Targets and RunnerOptions (parsed once by
the CLI or the build config); nothing here parses a string.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgebert.bench import target_measurer
from edgebert.export.pipeline import ExportConfig, export
from edgebert.export.report import write_report
from edgebert.model.loaded import Loaded, load
from edgebert.runners import RunnerOptions, Target, parse_target
from edgebert.runners.interface import DEFAULT_TIMEOUT_S
from edgebert.select.budget import Budget
from edgebert.select.choose import choose, predictor, selection_section
from edgebert.select.profiles import DeviceProfile
from edgebert.select.quality import quality_for

__all__ = ["DeviceExport", "device_export"]


@dataclass(frozen=True)
class DeviceExport:
    """One `export --device` request (also what `edgebert build` runs per matrix entry)."""

    profile: DeviceProfile
    budget: Budget
    model: str | None = None
    formats: tuple[str, ...] | None = None  # None: the chosen candidate's format
    quantize: str | None = None  # None: the selector chooses
    seq_len: int = 128
    threads: int | None = None  # None: the profile's default
    out: str | None = None  # None: out/<device>-<budget>ms
    force: bool = False
    target: Target | None = None  # also measure there
    measure: bool = True  # time on this machine
    runs: int = 50
    options: RunnerOptions = RunnerOptions()
    timeout_s: float = DEFAULT_TIMEOUT_S  # per artifact and target

    @property
    def default_out(self) -> str:
        return f"out/{self.profile.name}-{self.budget.latency_ms:g}ms"


def device_export(req: DeviceExport, progress: bool = True, loaded: Loaded | None = None) -> tuple[dict, str]:
    """Select the sub-network for the device within its budgets and export it; returns (manifest, out folder).

    Raises BudgetError (exit 3) when nothing fits, ParityError (exit 4) when an artifact fails. A target
    that cannot run a format, or fails, does not raise: see the artifacts' `latency.skipped`/`failed`.
    """
    profile, budget = req.profile, req.budget
    threads = req.threads or profile.default_threads
    loaded = loaded or load(req.model)
    quality, quality_source = quality_for(loaded, progress)
    selection = choose(loaded.full.config, profile, budget, quality, req.formats, req.quantize, req.seq_len, threads)
    ch = selection.chosen
    out = req.out or req.default_out
    cfg = ExportConfig(
        out=out,
        model=req.model,
        spec=ch.spec,
        formats=tuple(req.formats or (ch.format,)),
        precision=ch.precision,
        seq_len=req.seq_len,
        force=req.force,
        threads=min(threads, os.cpu_count() or 1),
    )
    extra = {
        "device": profile.to_dict(),
        "budget": {
            "latency_ms": budget.latency_ms,
            "memory_mb": budget.memory_mb,
            "threads": threads,
            "seq_len": req.seq_len,
            "latency_from": budget.latency_from,
            "memory_from": budget.memory_from,
        },
        "selection": selection_section(selection, quality_source),
    }
    predict = predictor(profile, loaded.full.config, req.seq_len, threads)
    targets = ([parse_target("local")] if req.measure else []) + ([req.target] if req.target else [])
    options = req.options.with_device_defaults(profile.big_core_mask, profile.device_models)
    measure = target_measurer(
        targets,
        threads,
        req.seq_len,
        req.runs,
        options,
        before=lambda entry: predict(entry, ch.spec),
        timeout_s=req.timeout_s,
    )
    manifest = export(
        cfg,
        progress=progress,
        loaded=loaded,
        extra_manifest=extra,
        measure=measure,
        finish=lambda folder, m: write_report(m, folder),
    )
    return manifest, out
