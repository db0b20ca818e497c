"""`edgebert export --early-exit POLICY`: the glue between the export pipeline and early-exit segments.

The pipeline exports and verifies the plain artifacts as always (the full sub-network, what `bench`
measures); its `finish` hook then writes the segments, verifies every exit, and adds the manifest's
`early_exit` section, all before the folder is published.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgebert.errors import EdgebertError, UsageError
from edgebert.export.manifest import SUBNET_DIR
from edgebert.export.pipeline import ExportConfig
from edgebert.export.segments import SEGMENT_FORMATS, DevSet, export_segments
from edgebert.model.bert import load_model
from edgebert.model.loaded import Loaded, load
from edgebert.model.texts import calibration_texts
from edgebert.runtime.policy import Policy
from edgebert.train.config import TRAIN_CONFIG_FILE, TrainConfig
from edgebert.train.data import BUILTIN, hash_split, load_data

__all__ = ["prepare_early_exit", "dev_set", "early_exit_summary", "format_early_exit"]

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


def prepare_early_exit(cfg: ExportConfig, policy: Policy) -> tuple[Loaded, object]:
    """(the loaded model, the pipeline's `finish` hook); refuses what cannot work before any export starts."""
    unsupported = [f for f in cfg.formats if f not in SEGMENT_FORMATS]
    if unsupported:
        raise UsageError(f"--early-exit cannot write {unsupported[0]} segments; formats: {', '.join(SEGMENT_FORMATS)}")
    if cfg.precision != "fp32":
        raise UsageError("--early-exit segments are fp32 for now; drop --quantize (int8 segments are not done yet)")
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
            sub, loaded.tokenizer, cfg.formats, folder, policy, seq_len=cfg.seq_len, threads=cfg.threads, dev=dev
        )

    return loaded, finish


def early_exit_summary(manifest: dict) -> dict | None:
    ee = manifest.get("early_exit")
    if not ee:
        return None
    dev = ee.get("dev") or {}
    return {
        "policy": ee["policy"]["text"],
        "segments": {fmt: [f["file"] for f in files] for fmt, files in ee["files"].items()},
        "parity_max_abs_diff": {fmt: max(e["max_abs_diff"] for e in p["per_exit"]) for fmt, p in ee["parity"].items()},
        "dev": {k: dev.get(k) for k in ("data", "n", "histogram", "mean_exit_layer", "accuracy", "exit_accuracy")},
    }


def format_early_exit(s: dict | None) -> list[str]:
    if not s:
        return []
    d = s["dev"]
    lines = [
        f"early exit: {s['policy']}; segments {'; '.join(f'{k}: {len(v)} files' for k, v in s['segments'].items())}"
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
    return lines
