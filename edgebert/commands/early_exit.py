"""`edgebert export --early-exit POLICY`: the glue between the export pipeline and early-exit segments.

The pipeline exports and verifies the plain artifacts as always (the full sub-network, what `bench`
measures); its `finish` hook then writes the segments, verifies every exit, and adds the manifest's
`early_exit` section, all before the folder is published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgebert.errors import EdgebertError, RunnerError, UsageError
from edgebert.export.manifest import SUBNET_DIR
from edgebert.export.pipeline import ExportConfig
from edgebert.export.record import measured_entry, record_failure, record_skip
from edgebert.export.segments import SEGMENT_FORMATS, DevSet, export_segments
from edgebert.model.bert import load_model
from edgebert.model.loaded import Loaded, load
from edgebert.model.texts import calibration_texts
from edgebert.runners import BenchConfig, RunnerOptions, Target
from edgebert.runners.segments import bench_segments, unsupported
from edgebert.runtime.policy import Policy
from edgebert.select.exit_latency import measured_exit_latency, predict_exit_latency
from edgebert.select.profiles import DeviceProfile
from edgebert.train.config import TRAIN_CONFIG_FILE, TrainConfig
from edgebert.train.data import BUILTIN, hash_split, load_data

__all__ = [
    "EarlyExitPlan",
    "SegmentTiming",
    "prepare_early_exit",
    "dev_set",
    "early_exit_summary",
    "format_early_exit",
    "segment_latency",
    "histogram_from",
]

DEV_LIMIT = 2000  # enough for a histogram; the PyTorch pass over them takes seconds


def dev_set(model_dir: Path, labels: tuple[str, ...]) -> DevSet:
    """The dev split the model was trained with (its train_config.json), else the calibration texts unlabelled."""
    cfg_file = Path(model_dir) / TRAIN_CONFIG_FILE
    try:
        cfg = TrainConfig.from_dict(json.loads(cfg_file.read_text()))
        cols = dict(text_column=cfg.text_column, text_pair_column=cfg.text_pair_column, label_column=cfg.label_column)
        if cfg.eval:
            dev = load_data(cfg.eval, **cols)
        elif cfg.data in BUILTIN:
            dev = load_data(cfg.data, split="dev", **cols)
        else:
            dev = hash_split(load_data(cfg.data, **cols))[1]
    except (OSError, ValueError, KeyError, EdgebertError):
        texts = tuple(calibration_texts()[:DEV_LIMIT])
        return DevSet("edgebert calibration texts (unlabelled)", texts)
    examples = [e for e in dev.examples if e.label in labels][:DEV_LIMIT]
    index = {name: i for i, name in enumerate(labels)}
    return DevSet(dev.name, tuple(e.text for e in examples), tuple(index[e.label] for e in examples))


@dataclass(frozen=True)
class SegmentTiming:
    """Where and how to time the segments (one run per segment), and the profile that predicts them."""

    targets: tuple[Target, ...] = ()
    config: BenchConfig = BenchConfig()
    options: RunnerOptions = RunnerOptions()
    profile: DeviceProfile | None = None  # predicted figures too (export --device)


class EarlyExitPlan:
    """What `export --device` needs to choose an exit policy (deploy.device_export's `early_exit`): the dev texts
    the policies are judged on, and the finish hook that exports the chosen policy's segments."""

    def dev(self, model_dir: Path, labels: tuple[str, ...]) -> DevSet:
        return dev_set(model_dir, labels)

    def finish(self, cfg: ExportConfig, policy: Policy, profile, targets, options, measuring, after):
        """The pipeline's finish hook: segments written, verified, predicted and timed on `targets`, then `after`."""
        bench = measuring.config(threads=cfg.threads, seq_len=cfg.seq_len)  # --sustained too, as for the artifacts
        timing = SegmentTiming(targets=tuple(targets), config=bench, options=options, profile=profile)
        return prepare_early_exit(cfg, policy, timing, after=after)[1]


def prepare_early_exit(
    cfg: ExportConfig, policy: Policy, timing: SegmentTiming | None = None, after=None
) -> tuple[Loaded, object]:
    """(the loaded model, the pipeline's `finish` hook); refuses what cannot work before any export starts.
    `after(folder, manifest)` runs last (the device export's report)."""
    unsupported = [f for f in cfg.formats if f not in SEGMENT_FORMATS]
    if unsupported:
        raise UsageError(f"--early-exit cannot write {unsupported[0]} segments; formats: {', '.join(SEGMENT_FORMATS)}")
    loaded = load(cfg.model)
    if not loaded.full.config.exits:
        raise UsageError(
            f"{loaded.model_dir} has no exit heads, so --early-exit has nothing to take; train one with "
            "`edgebert train --exits ...`"
        )

    def finish(folder: Path, manifest: dict) -> None:
        sub = load_model(folder / SUBNET_DIR)  # the sliced sub-network the pipeline just wrote and verified
        dev = dev_set(loaded.model_dir, sub.config.labels)
        manifest["early_exit"] = export_segments(
            sub,
            loaded.tokenizer,
            cfg.formats,
            folder,
            policy,
            seq_len=cfg.seq_len,
            threads=cfg.threads,
            dev=dev,
            precision=cfg.precision,
        )
        if timing is not None:
            config = loaded.full.config
            segment_latency(manifest["early_exit"], folder, timing, config, cfg.spec, cfg.seq_len)
        if after is not None:
            after(folder, manifest)

    return loaded, finish


def histogram_from(dev: dict | None) -> str:
    """Which texts the exit probabilities come from, in words a report can print."""
    if not dev:
        return "no dev texts"
    kind = "labelled dev split" if dev.get("accuracy") is not None else "unlabelled proxy texts (no labels)"
    return f"{dev['data']}, n={dev['n']}, {kind}, exits taken by the fp32 model in PyTorch"


def segment_latency(section: dict, folder: Path, timing: SegmentTiming, full_config, spec, seq_len: int) -> None:
    """The section's `latency`, per format: predicted by the profile (per segment, composed with the dev
    histogram) and measured on each target (one run per segment), or why not; never raises a RunnerError."""
    dev = section.get("dev") or {}
    hist = dev.get("histogram") or [0] * (section["layers"] - 1) + [1]  # no dev texts: every input runs all
    where_from = histogram_from(dev)
    section["latency"] = {}
    for fmt, precision in (section.get("precisions") or {f: section["precision"] for f in section["files"]}).items():
        out = section["latency"][fmt] = {"predicted": None, "measured": [], "skipped": [], "failed": []}
        if timing.profile is not None:
            threads = timing.config.threads
            pred = predict_exit_latency(
                timing.profile.latency_model, full_config, spec, seq_len, fmt, precision, threads, hist, where_from
            )
            out["predicted"] = pred.to_dict() if pred else None
        entry = {"latency": out}
        for target in timing.targets:
            why = unsupported(target, fmt, timing.options)
            if why:
                record_skip(entry, target.uri, why)
                continue
            try:
                results = bench_segments(target, folder, section, fmt, timing.config, timing.options)
            except RunnerError as exc:
                record_failure(entry, target.uri, exc)
                continue
            composed = measured_exit_latency([r.p50_ms for r in results], hist, where_from, target.uri)
            out["measured"].append(
                {**composed.to_dict(), "where": target.uri, "segments": [measured_entry(r.to_dict()) for r in results]}
            )


def early_exit_summary(manifest: dict) -> dict | None:
    ee = manifest.get("early_exit")
    if not ee:
        return None
    dev = ee.get("dev") or {}
    return {
        "policy": ee["policy"]["text"],
        "precisions": ee.get("precisions") or {fmt: ee["precision"] for fmt in ee["files"]},
        "segments": {fmt: [f["file"] for f in files] for fmt, files in ee["files"].items()},
        "parity_max_abs_diff": {fmt: max(e["max_abs_diff"] for e in p["per_exit"]) for fmt, p in ee["parity"].items()},
        "dev": {k: dev.get(k) for k in ("data", "n", "histogram", "mean_exit_layer", "accuracy", "exit_accuracy")},
        "latency": ee.get("latency"),
    }


def format_early_exit(s: dict | None) -> list[str]:
    if not s:
        return []
    d = s["dev"]
    lines = [
        f"early exit: {s['policy']}; segments "
        + "; ".join(f"{k}: {len(v)} files, {s['precisions'].get(k, 'fp32')}" for k, v in s["segments"].items())
    ]
    lines.append(
        "  parity (every exit vs PyTorch, max|diff|): "
        + ", ".join(f"{k} {v:.2e}" for k, v in s["parity_max_abs_diff"].items())
    )
    acc = "-" if d["accuracy"] is None else f"{d['accuracy']:.4f}"
    lines.append(
        f"  on {d['data']} (n={d['n']}, measured in PyTorch): exits taken per layer {d['histogram']}, "
        f"mean exit layer {d['mean_exit_layer']}, accuracy {acc}"
    )
    for fmt, lat in (s.get("latency") or {}).items():
        rows = ([lat["predicted"]] if lat["predicted"] else []) + lat["measured"]
        for r in rows:
            where = r.get("where") or "predicted"
            segs = ", ".join(f"{x:.3g}" for x in r["segments_ms"])
            lines.append(
                f"  {fmt} latency ({where}): expected {r['expected_ms']:.3g} ms, p90 {r['p90_ms']:.3g} ms, "
                f"worst (all layers) {r['worst_ms']:.3g} ms; per segment [{segs}] ms ({r['kind']})"
            )
        lines += [f"  {fmt} not timed on {e['where']}: {e['why']}" for e in lat["skipped"] + lat["failed"]]
    return lines
