"""`edgebert export --device D --budget B`: profile → candidates → select → export → measure → report.

Everything arrives resolved: a DeviceProfile, a Budget, Targets and RunnerOptions (parsed once by
the CLI or the build config); nothing here parses a string.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from edgebert.bench import MeasureSettings, target_measurer
from edgebert.errors import BudgetError
from edgebert.export.pipeline import ExportConfig, export
from edgebert.export.report import write_report
from edgebert.export.runtimes import APP_RUNTIMES, formats_for, profile_runtime
from edgebert.model.loaded import Loaded, load
from edgebert.model.spec import SubnetSpec
from edgebert.runners import RunnerOptions, Target, parse_target
from edgebert.search.pick import searched_selection
from edgebert.select.budget import Budget
from edgebert.select.choose import choose, predictor, selection_section
from edgebert.select.exit_evidence import DevExitLogits
from edgebert.select.profiles import DeviceProfile
from edgebert.select.quality import quality_for
from edgebert.select.quantized import QuantizedQuality
from edgebert.select.ranks import rank_selection
from edgebert.select.variants import choose_variant, find_variants, variants_section

__all__ = ["DeviceExport", "device_export"]


@dataclass(frozen=True)
class DeviceExport:
    """One `export --device` request (also what `edgebert build` runs per matrix entry)."""

    profile: DeviceProfile
    budget: Budget
    model: str | None = None
    formats: tuple[str, ...] | None = None  # None: the chosen candidate's format
    quantize: str | None = None  # None: the selector chooses
    app_runtime: str | None = None  # the runtime the app ships (None: the profile's, if it names one)
    seq_len: int = 128  # the length the budget applies to: the largest bucket when there are buckets
    buckets: tuple[int, ...] = ()  # --seq-len 32,64,128: one TFLite signature per length, each predicted
    threads: int | None = None  # None: the profile's default
    out: str | None = None  # None: out/<device>-<budget>ms
    force: bool = False
    target: Target | None = None  # also measure there
    measure: bool = True  # time on this machine
    options: RunnerOptions = RunnerOptions()  # how to reach the target
    measuring: MeasureSettings = MeasureSettings()  # runs, timeout, cooldown, sustained (local and target)
    max_quality_drop: float | None = None  # the accuracy gate of int8/fp16 artifacts (export/gate.py)
    search: bool = False  # per-layer search (edgebert/search) instead of the uniform grid
    budget_on: str = "p90"  # early-exit candidates: the latency distribution's p90, or "worst" (every layer)

    @property
    def default_out(self) -> str:
        return f"out/{self.profile.name}-{self.budget.latency_ms:g}ms"


def device_export(
    req: DeviceExport, progress: bool = True, loaded: Loaded | None = None, early_exit=None
) -> tuple[dict, str]:
    """Select the sub-network for the device within its budgets and export it; returns (manifest, out folder).

    `early_exit` (commands/early_exit.py's EarlyExitPlan) lets a model with exit heads be chosen with an exit
    policy: `dev(model_dir, labels)` gives the texts the policies are judged on, `finish(...)` exports the
    segments. Raises BudgetError (exit 3) when nothing fits, ParityError (exit 4) when an artifact fails. A
    target that cannot run a format, or fails, does not raise: see the artifacts' `latency.skipped`/`failed`.
    """
    profile, budget = req.profile, req.budget
    threads = req.threads or profile.default_threads
    # Only what the app's runtime loads (export/runtimes.py): its formats, and its precisions for the selector.
    app_runtime = req.app_runtime or profile_runtime(profile)
    if app_runtime is not None:
        req = replace(req, formats=formats_for(app_runtime, req.formats, req.quantize, req.buckets))
    loadable = APP_RUNTIMES[app_runtime].precisions if app_runtime is not None else None
    loaded = loaded or load(req.model)
    if req.search:  # issue 17: a per-layer sub-network searched under this budget (proxy quality, measured)
        ch, section = searched_selection(
            loaded, profile, budget, req.formats, req.quantize, req.seq_len, threads, progress, loadable=loadable
        )
    else:
        loaded, ch, section = _grid_selection(req, loaded, threads, loadable, early_exit, progress)
    out = req.out or req.default_out
    cfg = ExportConfig(
        out=out,
        model=req.model if req.model is None else str(loaded.model_dir),  # a compressed variant's, when chosen
        spec=ch.spec,
        formats=tuple(req.formats or (ch.format,)),
        precision=ch.precision,
        seq_len=req.seq_len,
        buckets=req.buckets,
        force=req.force,
        threads=min(threads, os.cpu_count() or 1),
        max_quality_drop=req.max_quality_drop,
    )
    extra = {
        "device": profile.to_dict(),
        "budget": {
            "latency_ms": budget.latency_ms,
            "memory_mb": budget.memory_mb,
            "threads": threads,
            "seq_len": req.seq_len,
            "seq_len_from": "the largest --seq-len bucket" if req.buckets else "--seq-len",
            "latency_from": budget.latency_from,
            "memory_from": budget.memory_from,
        },
        "selection": section,
    }
    if app_runtime is not None:
        extra["app_runtime"] = {
            "name": app_runtime,
            "from": "--runtime" if req.app_runtime else f"profile {profile.name}",
            "formats": list(req.formats),
            "precisions": list(loadable),
        }
    predict = predictor(profile, loaded.full.config, req.seq_len, threads)
    per_bucket = {n: predictor(profile, loaded.full.config, n, threads) for n in req.buckets}

    def predict_all(entry: dict) -> None:
        predict(entry, ch.spec)  # the artifact's figures: the stated (largest) length the budget applies to
        check_fallback_budget(entry, budget)
        for b in entry.get("buckets", []):
            view = {"format": entry["format"], "precision": entry["precision"], "latency": b["latency"], "memory": {}}
            per_bucket[b["seq_len"]](view, ch.spec)

    targets = ([parse_target("local")] if req.measure else []) + ([req.target] if req.target else [])
    options = req.options.with_device_defaults(profile.big_core_mask, profile.device_models)
    measure = target_measurer(targets, threads, req.seq_len, options, req.measuring, before=predict_all)
    finish = lambda folder, m: write_report(m, folder)  # noqa: E731
    if ch.early_exit is not None:
        finish = early_exit.finish(cfg, ch.early_exit.policy, profile, targets, options, req.measuring, finish, threads)
    manifest = export(cfg, progress=progress, loaded=loaded, extra_manifest=extra, measure=measure, finish=finish)
    return manifest, out


def check_fallback_budget(entry: dict, budget: Budget) -> None:
    """The accuracy gate may publish another precision than the one selected (int8 -> fp16, export/gate.py),
    after the selector judged the budgets: judge that artifact again by the selector's rule (the p90 bound)
    and record the verdict in `budget_check`, with a note when it no longer fits. Nothing is claimed to fit
    that was not judged."""
    requested = entry.get("requested_precision", entry["precision"])
    if entry["precision"] == requested:
        return
    over = []
    for kind, limit, words in (("latency", budget.latency_ms, "budget"), ("memory", budget.memory_mb, "limit")):
        pred = entry[kind]["predicted"]  # the manifest's form of select.latency.Prediction
        if pred and pred["value"] * (1 + pred["error_p90"]) > limit:  # Prediction.upper, as select.judge uses
            bound = pred["value"] * (1 + pred["error_p90"])
            over.append(f"predicted {kind} p90 bound {bound:.3g} {pred['unit']} > {words} {limit:g} {pred['unit']}")
    entry["budget_check"] = {
        "precision": entry["precision"],
        "selected_precision": requested,
        "fits": not over,
        "why": over,
    }
    if over:
        entry["notes"].append(
            f"the accuracy gate published {entry['precision']} instead of the selected {requested}, and it does not "
            f"fit: {'; '.join(over)}: a larger --max-quality-drop lets the selected precision through; a larger --budget/--memory fits this one"
        )


def _grid_selection(req: DeviceExport, loaded: Loaded, threads: int, loadable, early_exit, progress: bool):
    """(the model to export, the chosen candidate, the manifest's `selection`) over the width x depth x format x
    precision grid of the model and of each compressed variant in its folder (select/variants.py); with no
    variant there and nothing fitting, over untrained SVD ranks of its embedding table (select/ranks.py)."""

    def choose_config(config, quality: dict, quantized=None, exits=None):
        args = (req.profile, req.budget, quality, req.formats, req.quantize, req.seq_len, threads, quantized)
        return choose(config, *args, loadable=loadable, exits=exits, budget_on=req.budget_on)

    def choose_one(one: Loaded):
        quality, _ = quality_for(one, progress)
        quantized = QuantizedQuality(one, quality, progress)  # int8/fp16 figures, measured as the selector asks
        exits = _exit_evidence(one, early_exit, req.seq_len, progress)
        return choose_config(one.full.config, quality, quantized, exits)

    variants, left_out = find_variants(loaded)
    if len(variants) == 1 and not left_out:
        try:
            selection = choose_one(loaded)
        except BudgetError as nothing:  # no compressed variant to fall back on: untrained embedding ranks
            return rank_selection(loaded, choose_config, req.budget, nothing, progress)
        return loaded, selection.chosen, selection_section(selection, quality_for(loaded, progress)[1])
    chosen, selection = choose_variant(variants, choose_one, req.budget)
    sources = "; ".join(f"{v.name}: {quality_for(v.loaded, progress)[1]}" for v in variants)
    section = selection_section(selection, f"each variant's own table ({sources})")
    section["why"] += f"; variant {chosen.name} of the {len(variants)} compared"
    section["variants"] = variants_section(variants, left_out, chosen)
    return chosen.loaded, selection.chosen, section


def _exit_evidence(loaded: Loaded, early_exit, seq_len: int, progress: bool) -> DevExitLogits | None:
    """For a model with exit heads: every exit's logits per sub-network on its dev texts (the rewired model,
    as exported); None when the model has none or the caller cannot export segments."""
    if early_exit is None or not loaded.full.config.exits:
        return None
    dev = early_exit.dev(loaded.model_dir, loaded.full.config.labels)
    model, _ = loaded.for_slicing(SubnetSpec(0.5, 1.0), True, progress)
    return DevExitLogits(model, loaded.tokenizer, dev.texts, dev.labels, dev.name, seq_len)
