"""Iterative structured pruning with distillation between steps (issue 15 part 2).

The schedule is LadaBERT's (Mao et al., COLING 2020): rather than removing the whole share at once, compress
a little, let knowledge distillation from the uncompressed model repair it, and repeat until the target.
Here the pruned share rises in equal steps (share * k / N after step k of N; the step sizes are edgebert's
choice), each step removing whole heads and FFN neurons in the rewiring order (the least important last, so
slicing keeps the first ones), and each followed by an equal part of the distillation budget
(--max-steps / N, or --epochs / N). After the last step the model has exactly the shape one-shot pruning at
the same share gives (kept_count(1 - share, n) of every layer's original n heads and neurons).

Unstructured pruning needs no steps here: its magnitude threshold already rises gradually inside the one
distillation loop (prune.py's cubic schedule, Zhu & Gupta 2017), with training in between.

Every step distils in its own work subfolder (train's run_stage with its checkpoints), and a finished
step's model is saved there, so --resume continues at the step and the batch where a run stopped.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from edgebert.model.bert import Bert, load_model
from edgebert.model.config import BertConfig
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec, kept_count
from edgebert.train.loop import run_stage, save_stage

__all__ = ["step_shares", "prune_to", "step_budgets", "distil_in_steps"]


def step_shares(share: float, steps: int) -> list[float]:
    """The share pruned after each of `steps` equal steps to `share`."""
    return [share * k / steps for k in range(1, steps + 1)]


def prune_to(model: Bert, original: BertConfig, share: float) -> Bert:
    """`model` (pruned less, or not at all) sliced to keep round((1 - share) * n) of each layer's original n
    heads and neurons: the first ones, which rewiring put most important first. Shares of the original, not of
    `model`, so rounding does not compound over the steps."""
    heads = tuple(max(1, kept_count(1.0 - share, h)) for h in original.heads)
    ffn = tuple(max(1, kept_count(1.0 - share, f)) for f in original.ffn)
    if (heads, ffn) == (model.config.heads, model.config.ffn):
        return model
    # Every layer is kept, so the result is still a whole dynamic model: its widths and depths apply to it.
    return slice_model(model, SubnetSpec.from_layers(model.config, range(model.config.num_layers), heads, ffn))


def step_budgets(cfg, steps: int) -> list[dict]:
    """Each step's part of the distillation budget: --max-steps split as evenly as whole steps allow (the total
    is kept), --epochs divided by the number of steps."""
    epochs = cfg.epochs / steps
    if cfg.max_steps is None:
        return [{"epochs": epochs, "max_steps": None} for _ in range(steps)]
    base, extra = divmod(cfg.max_steps, steps)
    return [{"epochs": epochs, "max_steps": max(1, base + (k < extra))} for k in range(steps)]


def distil_in_steps(
    student: Bert, teacher: Bert, share: float, n_steps: int, step_fn, *, cfg, work: Path, log: dict, **loop
) -> Bert:
    """Prune `student` (already factorised, unpruned) to `share` in `n_steps` steps, distilling after each
    with train's loop (`loop`: acc, train_set, tokenizer, labels, progress, stop_at). `log["prune_steps"]`
    gets each step's shapes and distillation figures; `log["stages"]["depth"]` their sum, as one-shot writes it."""
    original, acc = teacher.config, loop["acc"]
    steps = []
    for k, (at, budget) in enumerate(zip(step_shares(share, n_steps), step_budgets(cfg, n_steps))):
        folder = work / f"prune-{k + 1}"
        done = folder / "model"
        if done.exists():  # finished before an interruption: --resume starts after it
            student = load_model(done).train()
        else:
            student = prune_to(student, original, at)
            folder.mkdir(exist_ok=True)
            # A different seed per step: each step's distillation draws other batches than the step before.
            step_cfg = replace(cfg, seed=cfg.seed + 7919 * k, **budget)
            student = run_stage("depth", student, teacher, step_fn, cfg=step_cfg, work=folder, log=log, **loop)
            if acc.is_main_process:  # before the model: a saved step always has its figures
                (folder / _FIGURES).write_text(json.dumps(log["stages"].pop("depth")) + "\n")
            save_stage(acc, student, done)
            for leftover in ("checkpoint", "checkpoint.old"):
                shutil.rmtree(folder / leftover, ignore_errors=True)
        figures = json.loads((folder / _FIGURES).read_text())
        steps.append({"step": k + 1, "pruned_share": round(at, 4), "heads": list(student.config.heads),
                      "ffn": list(student.config.ffn), **figures})  # fmt: skip
    log["stages"]["depth"] = {
        "steps": sum(s["steps"] for s in steps),
        "seconds": round(sum(s["seconds"] for s in steps), 1),
        "loss_first": steps[0]["loss_first"],
        "loss_last": steps[-1]["loss_last"],
        "history": [x for s in steps for x in s.pop("history")],
    }
    log["prune_steps"] = steps
    return student.eval()


_FIGURES = "figures.json"
