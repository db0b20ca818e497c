"""`edgebert export --early-exit POLICY`: the glue between the export pipeline and early-exit segments.

The pipeline exports and verifies the plain artifacts as always (the full sub-network, what `bench`
measures); its `finish` hook then writes the segments, verifies every exit, and adds the manifest's
`early_exit` section, all before the folder is published.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from edgebert.bench import measure_segments
from edgebert.errors import EdgebertError, RunnerError, UsageError
from edgebert.export.manifest import SUBNET_DIR
from edgebert.export.pipeline import ExportConfig
from edgebert.export.record import record_failure, record_skip
from edgebert.export.segments import SEGMENT_FORMATS, DevSet, export_segments
from edgebert.model.bert import load_model
from edgebert.model.loaded import Loaded, load
from edgebert.model.texts import calibration_texts
from edgebert.runners import BenchConfig, RunnerOptions, Target
from edgebert.runners.segments import unsupported
from edgebert.runtime.policy import Policy
from edgebert.select.exit_evidence import DevExitLogits
from edgebert.select.exit_latency import histogram_from, predict_exit_latency
from edgebert.select.exits import auto_policy
from edgebert.select.profiles import DeviceProfile
from edgebert.train.config import TRAIN_CONFIG_FILE, TrainConfig
from edgebert.train.data import BUILTIN, hash_split, load_data

__all__ = [
    "AUTO",
    "EarlyExitPlan",
    "choose_policy",
    "data_dev_set",
    "SegmentTiming",
    "prepare_early_exit",
    "dev_set",
    "early_exit_summary",
    "format_early_exit",
    "segment_latency",
]

DEV_LIMIT = 2000  # enough for a histogram; the PyTorch pass over them takes seconds
AUTO = "auto"  # --early-exit auto
AUTO_DROP_POINTS = 0.5  # --early-exit auto's default --max-quality-drop, in accuracy points


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
    return _dev_of(dev, labels)


def data_dev_set(data: str, labels: tuple[str, ...]) -> DevSet:
    """`export --data`: a built-in set's dev split, or a file used whole (labelled or not)."""
    dev = load_data(data, split="dev") if data in BUILTIN else load_data(data)
    if all(e.label is None for e in dev.examples):
        return DevSet(f"{dev.name} (unlabelled)", tuple(e.text for e in dev.examples[:DEV_LIMIT]))
    return _dev_of(dev, labels)


def _dev_of(dev, labels: tuple[str, ...]) -> DevSet:
    examples = [e for e in dev.examples if e.label in labels][:DEV_LIMIT]
    if not examples:
        raise UsageError(f"{dev.name} has no example labelled with the model's labels ({', '.join(labels)})")
    index = {name: i for i, name in enumerate(labels)}
    return DevSet(dev.name, tuple(e.text for e in examples), tuple(index[e.label] for e in examples))


@dataclass(frozen=True)
class SegmentTiming:
    """Where and how to time the segments (one run per segment), and the profile that predicts them."""

    targets: tuple[Target, ...] = ()
    config: BenchConfig = BenchConfig()
    options: RunnerOptions = RunnerOptions()
    profile: DeviceProfile | None = None  # predicted figures too (export --device)
    cooldown_s: float = 0.0  # --cooldown: idle before each segment's run
    # The device's threads (export --device): what the prediction assumes and what a device target runs with.
    # `config.threads` is this machine's share (at most its cores), for the local target only. None: config's.
    device_threads: int | None = None

    def threads_on(self, target: Target | None) -> int:
        """Threads for a prediction (target None) or a run on `target`, as the plain artifacts get them."""
        if self.device_threads is None or (target is not None and target.kind == "local"):
            return self.config.threads
        return self.device_threads


class EarlyExitPlan:
    """What `export --device` needs to choose an exit policy (deploy.device_export's `early_exit`): the dev texts
    the policies are judged on, and the finish hook that exports the chosen policy's segments."""

    def dev(self, model_dir: Path, labels: tuple[str, ...]) -> DevSet:
        return dev_set(model_dir, labels)

    def finish(self, cfg: ExportConfig, policy: Policy, profile, targets, options, measuring, after, threads=None):
        """The pipeline's finish hook: segments written, verified, predicted and timed on `targets`, then `after`.
        `threads`: the device's (predictions and device targets); `cfg.threads` is this machine's share."""
        bench = measuring.config(threads=cfg.threads, seq_len=cfg.seq_len)  # --sustained too, as for the artifacts
        timing = SegmentTiming(tuple(targets), bench, options, profile, measuring.cooldown_s, threads)
        return prepare_early_exit(cfg, policy, timing, after=after)[1]


def prepare_early_exit(
    cfg: ExportConfig,
    policy: Policy | str,
    timing: SegmentTiming | None = None,
    after=None,
    data: str | None = None,
    max_quality_drop: float | None = None,
    progress: bool = False,
) -> tuple[Loaded, object]:
    """(the loaded model, the pipeline's `finish` hook); refuses what cannot work before any export starts.
    `policy` "auto" is chosen here on `data` (export --data; required) within `max_quality_drop` points
    (default 0.5). `data` is also what the manifest's histogram is measured on; default: the model's own dev
    split. `after(folder, manifest)` runs last (the device export's report)."""
    unsupported = [f for f in cfg.formats if f not in SEGMENT_FORMATS]
    if unsupported:
        raise UsageError(f"--early-exit cannot write {unsupported[0]} segments; formats: {', '.join(SEGMENT_FORMATS)}")
    if policy == AUTO and data is None:
        raise UsageError(
            "--early-exit auto chooses the policy on dev data: give --data (rotten-tomatoes, or a labelled "
            ".csv/.tsv/.jsonl), or name a policy such as patience=2"
        )
    loaded = load(cfg.model)
    if not loaded.full.config.exits:
        raise UsageError(
            f"{loaded.model_dir} has no exit heads, so --early-exit has nothing to take; train one with "
            "`edgebert train --exits ...`"
        )
    dev = None if data is None else data_dev_set(data, loaded.full.config.labels)
    auto = None
    if policy == AUTO:
        policy, auto = choose_policy(
            loaded, cfg, dev, AUTO_DROP_POINTS if max_quality_drop is None else max_quality_drop, progress
        )

    def finish(folder: Path, manifest: dict) -> None:
        sub = load_model(folder / SUBNET_DIR)  # the sliced sub-network the pipeline just wrote and verified
        manifest["early_exit"] = export_segments(
            sub,
            loaded.tokenizer,
            cfg.formats,
            folder,
            policy,
            seq_len=cfg.seq_len,
            threads=cfg.threads,
            dev=dev or dev_set(loaded.model_dir, sub.config.labels),
            precision=cfg.precision,
            buckets=cfg.buckets,
        )
        if auto is not None:
            manifest["early_exit"]["auto"] = auto
        if timing is not None:
            config = loaded.full.config
            segment_latency(manifest["early_exit"], folder, timing, config, cfg.spec, cfg.seq_len)
        if after is not None:
            after(folder, manifest)

    return loaded, finish


def choose_policy(loaded: Loaded, cfg: ExportConfig, dev: DevSet, max_drop_points: float, progress: bool):
    """`--early-exit auto`: (policy, record) judged as the selector judges exit policies (select/exits.py) on
    every exit's fp32 logits of the sub-network to export, over up to DEV_LIMIT dev texts."""
    model, _ = loaded.for_slicing(cfg.spec, cfg.rewire, progress)
    evidence = DevExitLogits(model, loaded.tokenizer, dev.texts, dev.labels, dev.name, cfg.seq_len, limit=DEV_LIMIT)
    logits, labels, data = evidence(cfg.spec)
    return auto_policy(logits, labels, data, max_drop_points / 100)


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
            threads = timing.threads_on(None)
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
                config = replace(timing.config, threads=timing.threads_on(target))
                measured = measure_segments(section, folder, target, fmt, config, timing.options, timing.cooldown_s)
            except RunnerError as exc:
                record_failure(entry, target.uri, exc)
                continue
            out["measured"].append(measured)


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
        "auto": {k: ee["auto"][k] for k in ("chosen", "why", "data", "n")} if ee.get("auto") else None,
    }


def format_early_exit(s: dict | None) -> list[str]:
    if not s:
        return []
    d = s["dev"]
    lines = [
        f"early exit: {s['policy']}; segments "
        + "; ".join(f"{k}: {len(v)} files, {s['precisions'].get(k, 'fp32')}" for k, v in s["segments"].items())
    ]
    if s.get("auto"):
        a = s["auto"]
        lines.append(f"  --early-exit auto chose {a['chosen']} on {a['data']}: {a['why']}")
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
