"""`edgebert train`: DynaBERT-style dynamic training, distilled, resumable.

Stages (DESIGN.md): teacher (fine-tune the full model when it has no task head) → rewire →
width stage (every width, teacher = the full model) → width+depth stage (every width × depth,
teacher = the width-adaptive model) → quality table on the dev set. `--task embedding`
distils a sentence encoder's own embeddings into its sub-networks instead.

Each finished stage leaves its model in a work folder beside --out; the running stage writes
an atomic checkpoint every N steps and on Ctrl-C, so `--resume` continues exactly where it
stopped (same data order, same dropout draws). The losses are in distill.py, the shared step
loop and checkpoints in train_loop.py. HF Accelerate picks the device and processes:
`python -m edgebert.train` and `accelerate launch -m edgebert.train` run this same code.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from edgebert._optional import require
from edgebert.errors import DataError, UsageError
from edgebert.export.atomic import atomic_dir
from edgebert.model.bert import Bert, load_model, with_task_head
from edgebert.model.exits import with_exits
from edgebert.model.packaged import default_model_dir
from edgebert.model.rewire import rewire
from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import copy_tokenizer_files, load_tokenizer
from edgebert.select.quality import write_table
from edgebert.train.config import TRAIN_CONFIG_FILE, TrainConfig, trained_folder_proof
from edgebert.train.data import BUILTIN, DataSet, check_labels, hash_split, load_data
from edgebert.train.distill import depth_step, teacher_step, width_step
from edgebert.train.evaluate import measure, score_quantized
from edgebert.train.exits import EXITS_FILE, RomeBert, deebert_step, exit_table, freeze_backbone
from edgebert.train.loop import peak_rss_mb, prepare_work, run_stage, save_stage

__all__ = ["train", "load_splits", "labels_for"]

# ---- data and teacher -----------------------------------------------------------------


def _load_splits(cfg: TrainConfig) -> tuple[DataSet, DataSet]:
    labelled = cfg.task == "classification"
    cols = dict(
        labelled=labelled,
        text_column=cfg.text_column,
        text_pair_column=cfg.text_pair_column,
        label_column=cfg.label_column,
    )
    if cfg.data in BUILTIN:
        train_set = load_data(cfg.data, split="train", **cols)
        dev = load_data(cfg.eval, **cols) if cfg.eval else load_data(cfg.data, split="dev", **cols)
    elif cfg.eval:
        train_set, dev = load_data(cfg.data, **cols), load_data(cfg.eval, **cols)
    else:
        train_set, dev = hash_split(load_data(cfg.data, **cols))
    if len(train_set) < cfg.batch_size:
        raise DataError(
            f"{train_set.source}: {len(train_set)} training examples, fewer than one batch of "
            f"{cfg.batch_size}; add data or lower --batch-size"
        )
    if not len(dev):
        raise DataError(f"{dev.source}: no evaluation examples; pass --eval FILE")
    if labelled:
        if len(train_set.labels) < 2:
            raise DataError(
                f"{train_set.source}: only one label value {train_set.labels}; a classifier needs two or more"
            )
        check_labels(dev, train_set.labels)
    return train_set, dev


def load_splits(cfg) -> tuple[DataSet, DataSet]:
    """(train, dev) sets of a run's data flags, checked: `edgebert compress` distils on the same."""
    return _load_splits(cfg)


def _model_dir(cfg: TrainConfig) -> Path:

    return Path(cfg.model) if cfg.model else default_model_dir()


def labels_for(model: Bert, train_set: DataSet) -> tuple[str, ...]:
    """The labels training uses: the model's own when it has a head (DataError for a label it lacks)."""
    if model.config.task != "classification":
        return train_set.labels
    known = model.config.labels
    unseen = sorted(set(train_set.labels) - set(known))
    if unseen:
        raise DataError(f"{train_set.source}: label {unseen[0]!r} is not one of the model's labels {known}")
    return known


# ---- the recipe ---------------------------------------------------------------------------


def train(args: TrainConfig, progress: bool = True, *, _stop_at: tuple[str, int] | None = None) -> Path:
    """Run the whole recipe; return the output folder. `_stop_at=(stage, step)` simulates Ctrl-C (tests)."""

    cfg = args
    accelerate = require("accelerate", extra="train", what="edgebert train")
    acc = accelerate.Accelerator()
    train_set, dev = _load_splits(cfg)
    work = prepare_work(cfg, acc)
    src = _model_dir(cfg)
    log = json.loads((work / "log.json").read_text()) if (work / "log.json").exists() else {"stages": {}}
    common = dict(
        cfg=cfg,
        acc=acc,
        work=work,
        train_set=train_set,
        tokenizer=load_tokenizer(src),
        log=log,
        progress=progress,
        stop_at=_stop_at,
    )

    base = load_model(src)
    if cfg.task == "embedding":
        if base.config.task != "embedding":
            raise UsageError(
                f"--task embedding distils a sentence encoder, but {src} is a classifier; use --task classification"
            )
        teacher, labels = base, None
    else:
        labels = labels_for(base, train_set)
        if base.config.task == "classification":
            teacher = base  # already fine-tuned: it is the teacher as given
        elif (work / "teacher").exists():
            teacher = load_model(work / "teacher")
        else:
            torch.manual_seed(cfg.seed)  # the new task head's initial weights
            teacher = run_stage(
                "teacher", with_task_head(base, labels), None, teacher_step(cfg, acc), labels=labels, **common
            )
            save_stage(acc, teacher, work / "teacher")
    del base

    if (work / "rewired").exists():
        rewired = load_model(work / "rewired")
    else:
        pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.rewire_texts]
        examples = [train_set.examples[i] for i in pick.tolist()]
        index = {name: i for i, name in enumerate(labels or ())}
        rewired, report = rewire(
            teacher.cpu(),
            [e.text for e in examples],
            common["tokenizer"],
            labels=[index[e.label] for e in examples] if labels else None,
            seq_len=min(cfg.seq_len, teacher.config.max_position_embeddings),
            seed=cfg.seed,
            progress=progress and acc.is_main_process,
        )
        if acc.is_main_process:
            (work / "rewire.json").write_text(json.dumps(report, indent=2) + "\n")
        save_stage(acc, rewired, work / "rewired")

    # RomeBERT trains the exits jointly with DynaBERT's stages; DeeBERT adds them after (train/exits.py).
    rome = RomeBert(cfg.exit_kd_weight, cfg.exit_temperature) if cfg.exits == "romebert" else None
    if (work / "width").exists():
        width_model = load_model(work / "width")
    else:
        student = with_exits(_copy(rewired), cfg.exit_pool) if rome else _copy(rewired)
        width_model = run_stage("width", student, rewired, width_step(cfg, acc, rome), labels=labels, **common)
        save_stage(acc, width_model, work / "width")
    if cfg.exits == "deebert" and (work / "depth").exists():
        final = load_model(work / "depth")
    else:
        final = run_stage("depth", _copy(width_model), width_model, depth_step(cfg, acc, rome), labels=labels, **common)
    if cfg.exits == "deebert":
        if not (work / "depth").exists():
            save_stage(acc, final, work / "depth")
        student = freeze_backbone(with_exits(final, cfg.exit_pool))
        final = run_stage("exits", student, None, deebert_step(cfg, acc), labels=labels, **common)
        final.requires_grad_(True)
    out = Path(cfg.out)
    if acc.is_main_process:
        _finish(cfg, final, teacher, dev, src, work, log, progress)
    acc.wait_for_everyone()
    return out


def _copy(model: Bert) -> Bert:
    new = Bert(model.config)
    new.load_state_dict(model.state_dict())
    return new


def _finish(cfg, final, teacher, dev, src, work, log, progress) -> None:

    final = final.cpu().eval()
    specs = [SubnetSpec(w, d) for d in cfg.depths for w in cfg.widths]
    t0 = time.perf_counter()
    table = measure(final, dev, load_tokenizer(src), specs, seq_len=cfg.seq_len, progress=progress)
    log["quality_seconds"] = round(time.perf_counter() - t0, 1)
    if cfg.quantized:  # the artifacts' own dev scores per precision (issue 16 item 4); --no-quantized skips
        log["quantized_quality"] = score_quantized(
            final, dev, load_tokenizer(src), table, cfg.quantized, specs, cfg.seq_len, progress
        )
    exits = exit_table(final, dev, load_tokenizer(src), specs, seq_len=cfg.seq_len) if cfg.exits else None
    log["peak_rss_mb"] = round(max(log.get("peak_rss_mb", 0), peak_rss_mb()), 1)
    with atomic_dir(Path(cfg.out), force=True, proof=trained_folder_proof) as tmp:
        final.save(tmp)
        copy_tokenizer_files(src, tmp)
        (tmp / TRAIN_CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        write_table(tmp, table)
        if exits is not None:
            (tmp / EXITS_FILE).write_text(json.dumps(exits, indent=2) + "\n")
        (tmp / "training.json").write_text(json.dumps(log, indent=2) + "\n")
        if (work / "rewire.json").exists():
            shutil.copy2(work / "rewire.json", tmp / "rewire.json")
        if cfg.keep_teacher:
            teacher.cpu().save(tmp / "teacher")
            copy_tokenizer_files(src, tmp / "teacher")
    shutil.rmtree(work, ignore_errors=True)
