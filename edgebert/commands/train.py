"""`edgebert train` and `edgebert evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

from edgebert.select.quality import keep_precisions, read_table, write_table
from edgebert.train.config import TrainConfig
from edgebert.train.evaluate import evaluate
from edgebert.train.recipe import train

__all__ = ["run_train", "format_train", "run_evaluate", "format_evaluation"]


def run_train(values: dict, progress: bool = True) -> Path:
    """`edgebert train`: the flags are TrainConfig's fields."""
    return train(TrainConfig(**values), progress=progress)


def format_train(out: Path) -> str:
    """What `edgebert train` wrote, and how its quantized scoring went (training.json)."""
    out = Path(out)
    lines = [f"wrote {out}"]
    log = json.loads((out / "training.json").read_text()) if (out / "training.json").exists() else {}
    q = log.get("quantized_quality")
    if q:
        lines.append(f"quality per precision on the dev set: {', '.join(q['scored'])} ({q['seconds']:g} s)")
        lines += [f"  not scored: {f['what']} of {f['spec']}: {f['error']}" for f in q["failed"]]
    return "\n".join(lines)


def run_evaluate(
    *,
    model,
    data,
    split="dev",
    text_column="text",
    text_pair_column=None,
    label_column="label",
    batch_size=64,
    seq_len=128,
    out=None,
    no_write=False,
    progress=True,
    quantized=(),
) -> tuple[dict, Path | None]:
    table = evaluate(
        model,
        data,
        split=split,
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
        batch_size=batch_size,
        seq_len=seq_len,
        progress=progress,
        quantized=quantized,
    )
    if no_write:
        return table, None
    dest = Path(out or model)
    table = keep_precisions(table, read_table(dest))
    return table, write_table(dest, table)


def format_evaluation(table: dict, written: Path | None) -> str:
    lines = []
    for key, e in table.items():
        extra = f"  nn-agreement {e['nn_agreement']:.3f}" if "nn_agreement" in e else ""
        lines.append(f"{key:<12} {e['metric']} {e['score']:.4f}{extra}  ({e['data']}, n={e['n']})")
        for what, q in e.get("precisions", {}).items():
            runtime = f", {q['runtime']}" if q.get("runtime") else ""
            lines.append(f"{'':<12} {what}: {q['score']:.4f} (drop {e['score'] - q['score']:+.4f}{runtime})")
    if written is not None:
        lines.append(f"wrote {written}")
    return "\n".join(lines)
