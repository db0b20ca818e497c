"""`edgebert compress`: flags -> CompressConfig (+ the memory search's plan) -> compress -> text."""

from __future__ import annotations

import json
from pathlib import Path

from edgebert.compress.config import CompressConfig
from edgebert.compress.recipe import compress
from edgebert.compress.search import search
from edgebert.errors import UsageError
from edgebert.model.bert import load_model
from edgebert.model.compression import COMPRESSION_FILE
from edgebert.model.packaged import default_model_dir
from edgebert.select.budget import parse_memory
from edgebert.select.profiles import load_profile

__all__ = ["parse_rank", "run_compress", "format_compress"]


def parse_rank(text: str | None, flag: str) -> int | float | None:
    """'128' -> 128 (a rank); '0.5' or '1.0' -> a share of the full rank; None -> dense."""
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise UsageError(
            f"{flag} takes a rank (e.g. 128) or a share of the full rank (e.g. 0.5), got {text!r}"
        ) from None


def run_compress(values: dict, progress: bool = True) -> dict:
    values = dict(values)
    values["embedding_rank"] = parse_rank(values.get("embedding_rank"), "--embedding-rank")
    values["weight_rank"] = parse_rank(values.get("weight_rank"), "--weight-rank")
    cfg = CompressConfig(**values)
    plan = account = None
    if cfg.memory is not None:
        limit = parse_memory(cfg.memory)
        profile = load_profile(cfg.device)
        config = load_model(Path(cfg.model) if cfg.model else default_model_dir()).config
        chosen, account = search(config, profile, limit, seq_len=cfg.seq_len)
        plan = chosen.plan
    out = compress(cfg, plan=plan, search=account, progress=progress)
    return json.loads((out / COMPRESSION_FILE).read_text()) | {"out": str(out)}


def _per_step(d: dict) -> str:
    grid = len(d["widths"]) * len(d["depths"])
    n = d.get("subnets_per_step") or grid
    return f"{min(n, grid)} of {grid} sub-networks per step" + (
        " (largest, smallest, random others)" if n < grid else ""
    )


def format_compress(record: dict) -> str:
    plan, q, d = record["plan"], record["quality"], record["distillation"]
    s = record["structure"]
    lines = [
        f"compressed {record['source']['path']} -> {record['out']}",
        f"  embedding rank {plan['embedding_rank'] or 'full'}, weight rank {plan['weight_rank'] or 'full'}, "
        f"{plan['prune_kind']} pruning {plan['prune']:g}; measured sparsity {s['sparsity']['share']:g} "
        f"(stored dense: saves 0 bytes)",
        f"  parameters {record['parameters_before']:,} -> {s['parameters']:,}; "
        f"{len(s['factorised'])} factorised tensors",
        f"  distilled {d['steps']} steps in {d['seconds']} s (loss {d['loss_first']:.4f} -> {d['loss_last']:.4f}), "
        f"{_per_step(d)}",
    ]
    for step in d.get("prune_steps") or []:
        lines.append(
            f"    prune step {step['step']}: {step['pruned_share']:g} pruned, heads {step['heads']}, FFN {step['ffn']}; "
            f"distilled {step['steps']} steps (loss {step['loss_first']:.4f} -> {step['loss_last']:.4f})"
        )
    if record.get("search"):
        ch = record["search"]["chosen"]
        lines.append(
            f"  memory search on {record['search']['device']} ({record['search']['format']} "
            f"{record['search']['precision']}): predicted file {ch['file_mb']:.1f} MB"
            + (f", predicted peak memory {ch['memory_mb']:.1f} MB" if ch.get("memory_mb") is not None else "")
            + f" <= {record['search']['limit_mb']:g} MB"
        )
    lines.append(f"  quality ({q['metric']} on {q['data']}, n={q['n']}; measured): before -> after")
    for key, after in q["after"].items():
        before = q["before"].get(key)
        lines.append(
            f"    {key:<12} {before:.4f} -> {after:.4f}" if before is not None else f"    {key:<12} {after:.4f}"
        )
    for note in record.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)
