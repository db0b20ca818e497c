"""What a compressed model holds (factorised tensors, exact zeros) and what its folder says about how it
was compressed (compression.json, written by `edgebert compress`). Export copies both into the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from edgebert.model.factorise import FactorisedEmbedding, FactorisedLinear

__all__ = [
    "COMPRESSION_FILE",
    "prunable",
    "sparsity",
    "factorised_tensors",
    "describe",
    "read_record",
    "manifest_section",
    "report_lines",
]

COMPRESSION_FILE = "compression.json"


def prunable(model: nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's weight matrices by parameter name (factorised ones included): what pruning may zero."""
    return {n: p for n, p in model.named_parameters() if n.startswith("layers.") and p.ndim == 2 and "norm" not in n}


def sparsity(model: nn.Module) -> dict:
    """Measured share of exact zeros in the encoder's matrices. Every converter stores them dense, so the
    zeros save no bytes in a file or in memory (`bytes_saved_stored_dense` says so)."""
    weights = prunable(model)
    total = sum(w.numel() for w in weights.values())
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    return {"zeros": zeros, "of": total, "share": round(zeros / max(total, 1), 4), "bytes_saved_stored_dense": 0}


def factorised_tensors(model: nn.Module) -> dict[str, list[int]]:
    """name -> [rows, rank, cols] of every factorised tensor."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, FactorisedLinear):
            out[name] = [m.expand.out_features, m.rank, m.reduce.in_features]
        elif isinstance(m, FactorisedEmbedding):
            out[name] = [m.table.num_embeddings, m.rank, m.proj.out_features]
    return out


def describe(model: nn.Module) -> dict:
    c = model.config
    return {
        "embedding_rank": c.embedding_rank,
        "weight_rank": c.weight_rank,
        "factorised": factorised_tensors(model),
        "sparsity": sparsity(model),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def read_record(model_dir: Path) -> dict | None:
    path = Path(model_dir) / COMPRESSION_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return {"error": f"{COMPRESSION_FILE} is not valid JSON"}


def manifest_section(model_dir: Path, sub: nn.Module) -> dict | None:
    """The export manifest's `compression`: how the source was compressed (its compression.json, with the
    quality before/after and the steps), and what the exported sub-network holds (factorised tensors and
    exact zeros, measured on it). None for a model that was never compressed."""
    record = read_record(model_dir)
    held = describe(sub)
    if record is None and not (held["embedding_rank"] or held["weight_rank"] or held["sparsity"]["zeros"]):
        return None
    return {"source_record": record, "subnet": held}


def report_lines(section: dict | None) -> list[str]:
    """Markdown lines for export's report.md."""
    if not section:
        return []
    held, record = section["subnet"], section.get("source_record") or {}
    plan = record.get("plan", {})
    lines = [
        "## Compression",
        "",
        f"- Embedding rank {held['embedding_rank'] or 'full'}, weight rank {held['weight_rank'] or 'full'}; "
        f"{len(held['factorised'])} factorised tensors in this sub-network; {held['parameters']:,} parameters.",
        f"- Pruning: {plan.get('prune_kind', 'none')} {plan.get('prune', 0):g}; measured zeros in the encoder's "
        f"matrices {held['sparsity']['share']:g} (stored dense: 0 bytes saved).",
    ]
    q = record.get("quality")
    if q:
        lines.append(
            f"- Quality ({q['metric']} on {q['data']}, n={q['n']}, measured): before -> after compression, "
            + ", ".join(f"{k} {q['before'].get(k, float('nan')):.4f} -> {v:.4f}" for k, v in q["after"].items())
        )
    d = record.get("distillation")
    if d:
        lines.append(f"- Distillation: {d['steps']} steps, {d['seconds']} s.")
        for s in d.get("prune_steps") or []:
            lines.append(
                f"  - prune step {s['step']}: {s['pruned_share']:g} pruned, FFN {s['ffn']}, heads {s['heads']}; "
                f"distilled {s['steps']} steps, loss {s['loss_first']:.4f} -> {s['loss_last']:.4f}"
            )
    return lines + [""]
