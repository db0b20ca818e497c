"""`edgebert compress`: LadaBERT-style hybrid compression of a dynamic model, distilled from itself.

rewire (if the model was not) → structured pruning (slice the least important heads/neurons away) →
factorise (SVD-initialised embedding table and matrices) → distil from the uncompressed model with
train's depth-stage loss (every width x depth against the teacher at the same width, outputs and hidden
states) and train's step loop (checkpoints, --resume) → unstructured pruning, if asked, ramps up inside
that loop → the quality table of every (width, depth), measured again → OUT, atomically.

Structured pruning runs in steps by default (--prune-steps, compress/iterative.py, LadaBERT's schedule):
factorise once, then prune a part and distil, step by step, until the share is reached.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch

from edgebert._optional import require
from edgebert.compress.config import (
    COMPRESS_CONFIG_FILE,
    DEFAULT_PRUNE_STEPS,
    CompressConfig,
    compressed_folder_proof,
)
from edgebert.compress.factorise import factorise, resolve_rank
from edgebert.compress.iterative import distil_in_steps
from edgebert.compress.prune import MaskKeeper, prune_structured
from edgebert.errors import UsageError
from edgebert.export.atomic import atomic_dir
from edgebert.hashing import now_iso
from edgebert.model.bert import Bert, load_model
from edgebert.model.compression import COMPRESSION_FILE, describe
from edgebert.model.exits import has_exits, without_exits
from edgebert.model.loaded import weights_sha256
from edgebert.model.packaged import default_model_dir
from edgebert.model.rewire import rewire
from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import copy_tokenizer_files, load_tokenizer
from edgebert.select.quality import read_table, write_table
from edgebert.train.distill import depth_step
from edgebert.train.evaluate import measure, score_quantized
from edgebert.train.loop import peak_rss_mb, prepare_work, run_stage, save_stage
from edgebert.train.recipe import labels_for, load_splits

__all__ = ["compress", "plan_for"]

STAGE = "depth"  # train's stage whose loss compress distils with (it also seeds data order and dropout)


def plan_for(cfg: CompressConfig, config) -> dict:
    """The resolved compression of a model with `config`: ranks as counts, pruning as a share."""
    return {
        "embedding_rank": resolve_rank(cfg.embedding_rank, config.hidden_size, "--embedding-rank"),
        "weight_rank": resolve_rank(cfg.weight_rank, config.hidden_size, "--weight-rank"),
        "prune": cfg.prune,
        "prune_kind": cfg.prune_kind,
    }


def _with_steps(plan: dict, cfg: CompressConfig) -> dict:
    """The plan with its number of pruning steps: 1 where there is no structured pruning to do in steps."""
    structured = plan["prune_kind"] == "structured" and plan["prune"] > 0
    return {**plan, "prune_steps": (cfg.prune_steps or DEFAULT_PRUNE_STEPS) if structured else 1}


def _source(cfg: CompressConfig) -> Path:
    return Path(cfg.model) if cfg.model else default_model_dir()


def _teacher(cfg: CompressConfig, src: Path, train_set, tokenizer, progress: bool) -> tuple[Bert, dict | None]:
    model = load_model(src)
    if model.config.weight_rank or model.config.embedding_rank:
        raise UsageError(f"{src} is already compressed; compress the uncompressed model it came from")
    if cfg.task == "classification" and model.config.task != "classification":
        raise UsageError(
            f"{src} has no task head: distilling a classifier needs a fine-tuned teacher. "
            "Run `edgebert train` first, or pass --task embedding for a sentence encoder"
        )
    if cfg.task == "embedding" and model.config.task != "embedding":
        raise UsageError(f"--task embedding compresses a sentence encoder, but {src} is a classifier")
    if cfg.task == "classification":
        labels_for(model, train_set)  # a label the model's head lacks: DataError, before any work
    if model.config.extra.get("rewired"):
        return model, None
    pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.rewire_texts]
    examples = [train_set.examples[i] for i in pick.tolist()]
    index = {name: i for i, name in enumerate(model.config.labels)}
    return rewire(
        model,
        [e.text for e in examples],
        tokenizer,
        labels=[index[e.label] for e in examples] if cfg.task == "classification" else None,
        seq_len=min(cfg.seq_len, model.config.max_position_embeddings),
        seed=cfg.seed,
        progress=progress,
    )


def compress(
    cfg: CompressConfig, plan: dict | None = None, search: dict | None = None, progress: bool = True, *, _stop_at=None
) -> Path:
    """Run the whole recipe; return the output folder. `plan` and `search` (from compress/search.py) override
    the ranks and pruning in `cfg` and are recorded. `_stop_at=(stage, step)` simulates Ctrl-C (tests)."""
    accelerate = require("accelerate", extra="train", what="edgebert compress")
    acc = accelerate.Accelerator()
    src = _source(cfg)
    train_set, dev = load_splits(cfg)
    tokenizer = load_tokenizer(src)
    work = prepare_work(cfg, acc, proof=compressed_folder_proof)
    log = json.loads((work / "log.json").read_text()) if (work / "log.json").exists() else {"stages": {}}
    if (work / "teacher").exists():
        teacher, rewiring = load_model(work / "teacher"), None
    else:
        teacher, rewiring = _teacher(cfg, src, train_set, tokenizer, progress and acc.is_main_process)
        # Distillation trains the final head only: exit heads kept on a changed backbone would be untrained
        # for it and unrecorded, so the compressed model has none (said in compression.json's notes).
        log["exits_dropped"] = has_exits(teacher)
        teacher = without_exits(teacher)
        save_stage(acc, teacher, work / "teacher")
        if acc.is_main_process:  # so that --resume, which loads the saved teacher, still knows
            (work / "log.json").write_text(json.dumps(log) + "\n")
    plan = _with_steps(plan or plan_for(cfg, teacher.config), cfg)
    loop = dict(
        acc=acc,
        train_set=train_set,
        tokenizer=tokenizer,
        labels=teacher.config.labels if cfg.task == "classification" else None,
        progress=progress,
        stop_at=_stop_at,
    )
    if plan["prune_steps"] > 1:  # structured, in steps: factorised once, then pruned and distilled step by step
        student = factorise(teacher, plan["embedding_rank"], plan["weight_rank"])
        final = distil_in_steps(
            student,
            teacher,
            plan["prune"],
            plan["prune_steps"],
            depth_step(cfg, acc),
            cfg=cfg,
            work=work,
            log=log,
            **loop,
        )
    else:
        student = prune_structured(teacher, plan["prune"]) if plan["prune_kind"] == "structured" else teacher
        student = factorise(student, plan["embedding_rank"], plan["weight_rank"])
        unstructured = plan["prune_kind"] == "unstructured" and plan["prune"] > 0
        final = run_stage(
            STAGE,
            student,
            teacher,
            depth_step(cfg, acc),
            cfg=cfg,
            work=work,
            log=log,
            after_step=MaskKeeper(plan["prune"]) if unstructured else None,
            **loop,
        )
    if acc.is_main_process:
        log["search"] = search
        _finish(cfg, plan, final, teacher, rewiring, dev, src, work, log, progress)
    acc.wait_for_everyone()
    return Path(cfg.out)


def _before(teacher: Bert, src: Path, dev, tokenizer, specs, cfg, progress) -> tuple[dict, str]:
    """The uncompressed model's table: its own quality.json when it was measured on the same data."""
    table = read_table(src)
    if table and all(table.get(s.key, {}).get("data") == dev.name for s in specs):
        return {s.key: table[s.key] for s in specs}, f"{src}/quality.json (measured on {dev.name})"
    measured = measure(teacher, dev, tokenizer, specs, seq_len=cfg.seq_len, progress=progress)
    return measured, f"measured now on {dev.name}"


def _finish(cfg, plan, final, teacher, rewiring, dev, src, work, log, progress) -> None:
    final, teacher = final.cpu().eval(), teacher.cpu().eval()
    tokenizer = load_tokenizer(src)
    specs = [SubnetSpec(w, d) for d in cfg.depths for w in cfg.widths]
    specs = [s for s in specs if s.fits(final.config.heads, final.config.ffn)]
    t0 = time.perf_counter()
    before, before_source = _before(teacher, src, dev, tokenizer, specs, cfg, progress)
    # Encoders are scored against the uncompressed model's embeddings, not their own full network's: so the
    # compressed w1-d1 shows what compression cost, as the classifier's accuracy does.
    reference = teacher if cfg.task == "embedding" else None
    after = measure(final, dev, tokenizer, specs, seq_len=cfg.seq_len, progress=progress, reference=reference)
    log["quality_seconds"] = round(time.perf_counter() - t0, 1)
    # The compressed artifacts' own dev scores per precision, as train writes them (issue 16 item 4), so the
    # selector's int8/fp16 candidates of this variant are measured. Encoders are scored against the uncompressed
    # model, which measure_quantized does not take: their quantized figures are left to the selector's proxy.
    if cfg.quantized and cfg.task == "classification":
        log["quantized_quality"] = score_quantized(
            final, dev, tokenizer, after, cfg.quantized, specs, cfg.seq_len, progress
        )
    log["peak_rss_mb"] = round(max(log.get("peak_rss_mb", 0), peak_rss_mb()), 1)
    stage = log["stages"].get(STAGE, {})
    record = {
        "version": 1,
        "created_at": now_iso(),
        "method": "LadaBERT-style: structured or magnitude pruning + SVD factorisation + distillation "
        "from the uncompressed model (train's width x depth loss)",
        "source": {"path": str(src.resolve()), "weights_sha256": weights_sha256(src), "rewired_here": bool(rewiring)},
        "plan": plan,
        "structure": describe(final),
        "parameters_before": teacher.num_parameters(),
        "distillation": {
            "steps": stage.get("steps"),
            "seconds": stage.get("seconds"),
            "loss_first": stage.get("loss_first"),
            "loss_last": stage.get("loss_last"),
            "widths": list(cfg.widths),
            "depths": list(cfg.depths),
            # per step: the largest, the smallest and random others of that grid (0: all of them)
            "subnets_per_step": cfg.subnets_per_step,
            "batch_size": cfg.batch_size,
            # structured pruning in steps (compress/iterative.py): each step's shapes, steps, seconds and loss
            "prune_steps": log.get("prune_steps"),
        },
        "quality": {
            "metric": next(iter(after.values()))["metric"] if after else None,
            "data": dev.name,
            "n": len(dev),
            "before": {k: v["score"] for k, v in before.items()},
            "before_source": before_source,
            "after": {k: v["score"] for k, v in after.items()},
            "after_source": f"measured on {dev.name} after compression (quality.json)",
        },
        "notes": _notes(plan),
    }
    if log.get("exits_dropped"):
        record["notes"].append(
            "the source's early-exit heads were dropped: distillation trains the final head only, so exits kept "
            "on the compressed backbone would be untrained for it; `edgebert export --early-exit` needs the "
            "uncompressed model"
        )
    if log.get("search"):
        record["search"] = log["search"]
    if plan["prune_kind"] == "structured" and plan["prune"]:
        # The widths of the result are shares of the pruned model: say how they map back.
        record["notes"].append(
            f"structured pruning kept heads {list(final.config.heads)} and FFN {list(final.config.ffn)} "
            f"of {list(teacher.config.heads)} / {list(teacher.config.ffn)}: width w of this model is "
            f"width {1 - plan['prune']:g}*w of the uncompressed one"
        )
    with atomic_dir(Path(cfg.out), force=True, proof=compressed_folder_proof) as tmp:
        final.config = replace(final.config, extra={**final.config.extra, "compressed": True})
        final.save(tmp)
        copy_tokenizer_files(src, tmp)
        (tmp / COMPRESS_CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        (tmp / COMPRESSION_FILE).write_text(json.dumps(record, indent=2) + "\n")
        write_table(tmp, after)
        (tmp / "training.json").write_text(json.dumps(log, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


def _notes(plan: dict) -> list[str]:
    notes = []
    if plan["prune_kind"] == "unstructured" and plan["prune"]:
        notes.append(
            "unstructured sparsity: the zeros are stored dense by every converter (ONNX, TFLite, TorchScript), "
            "so they save no bytes in the file or in memory and no time; they only make the file compress better"
        )
    if plan["weight_rank"]:
        notes.append(
            "a matrix is factorised only where its two factors are smaller than it (rank x (rows + cols) < rows x "
            "cols): at half the full rank that is the FFN matrices, not the square attention projections"
        )
    return notes
