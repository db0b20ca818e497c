"""What each training stage optimises: the losses and one optimizer step's worth of gradients.

teacher: cross-entropy on the labels. width (DynaBERT_W): every width at full depth against
the fixed full model, soft cross-entropy on the outputs + `width_hidden_weight` x MSE on hidden
states. depth (DynaBERT): every width x depth against the width-adaptive model at the same width,
hidden states matched at the kept layers. `--task embedding` swaps the soft cross-entropy for
cosine + MSE on sentence embeddings. Gradients of all sub-networks accumulate before the step.
`exits` (train/exits.py RomeBert) adds the early-exit losses of each sub-network to its backward.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from edgebert.model.dynamic import dynamic_forward
from edgebert.model.spec import SubnetSpec
from edgebert.search.space import SearchSpace

__all__ = ["teacher_step", "width_step", "depth_step", "sandwich_step", "grid_this_step"]


def _soft_ce(student_logits, teacher_logits):
    return -(F.softmax(teacher_logits, -1) * F.log_softmax(student_logits, -1)).sum(-1).mean()


def _output_loss(task, student_out, teacher_out):
    if task == "classification":
        return _soft_ce(student_out, teacher_out)
    # direction is what retrieval uses; MSE keeps the scale honest for unnormalised users
    return (1 - F.cosine_similarity(student_out, teacher_out, dim=-1)).mean() + F.mse_loss(student_out, teacher_out)


def _hidden_loss(states, layers, teacher_states):
    """MSE at the embedding output and after each kept layer, against the teacher at the same layer."""
    pairs = [(states[0], teacher_states[0])] + [(s, teacher_states[i + 1]) for s, i in zip(states[1:], layers)]
    return sum(F.mse_loss(s, t) for s, t in pairs)


def teacher_step(cfg, acc):
    def step(student, teacher, batch):
        loss = F.cross_entropy(
            student(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]), batch["labels"]
        )
        acc.backward(loss)
        return loss.item()

    return step


def _backward(acc, exits, student, loss, out, states, layers, batch) -> float:
    """Plain backward, or with the exits' losses added (train/exits.py: RomeBERT's joint training)."""
    if exits is None:
        acc.backward(loss)
        return loss.item()
    return exits.backward(acc, student, loss, out, states, layers, batch)


def width_step(cfg, acc, exits=None):
    """All widths at full depth against the fixed full teacher; gradients accumulate over widths."""

    def step(student, teacher, batch):
        with torch.no_grad():
            t_out, t_states, _ = dynamic_forward(teacher, batch, SubnetSpec(1.0, 1.0))
        total = 0.0
        for w in cfg.widths:
            out, states, layers = dynamic_forward(student, batch, SubnetSpec(w, 1.0))
            loss = _output_loss(cfg.task, out, t_out) + cfg.width_hidden_weight * _hidden_loss(states, layers, t_states)
            total += _backward(acc, exits, student, loss, out, states, layers, batch)
        return total / len(cfg.widths)

    return step


def _batch_rng(cfg, batch) -> random.Random:
    """Drawn from the seed and the batch, not from a running generator: a resumed run draws what the
    uninterrupted one drew at the same step."""
    ids = batch["input_ids"]
    return random.Random(f"{cfg.seed}-{tuple(ids.shape)}-{int(ids.sum())}-{int((ids * ids).sum())}")


def grid_this_step(cfg, batch) -> dict[float, list[float]]:
    """{width: [depths]} distilled on this batch: the whole width x depth grid, or, with
    cfg.subnets_per_step = N smaller than the grid, the sandwich rule on it (BigNAS: the largest, the
    smallest and N - 2 others drawn at random), so a step costs N sub-networks instead of all of them."""
    grid = [(w, d) for w in sorted(cfg.widths, reverse=True) for d in sorted(cfg.depths, reverse=True)]
    n = cfg.subnets_per_step
    if n and n < len(grid):
        rest = grid[1:-1]
        grid = [grid[0], grid[-1]] + _batch_rng(cfg, batch).sample(rest, n - 2)
    out: dict[float, list[float]] = {}
    for w, d in grid:
        out.setdefault(w, []).append(d)
    return out


def depth_step(cfg, acc, exits=None):
    """Every width × depth (or cfg.subnets_per_step of them: grid_this_step); the teacher is the
    width-adaptive model at the same width, full depth. With cfg.sandwich: the sandwich rule over per-layer
    sub-networks instead (sandwich_step)."""
    if cfg.sandwich:
        return sandwich_step(cfg, acc)

    def step(student, teacher, batch):
        total, n = 0.0, 0
        for w, depths in grid_this_step(cfg, batch).items():
            with torch.no_grad():
                t_out, t_states, _ = dynamic_forward(teacher, batch, SubnetSpec(w, 1.0))
            for d in depths:
                out, states, layers = dynamic_forward(student, batch, SubnetSpec(w, d))
                loss = _output_loss(cfg.task, out, t_out) + _hidden_loss(states, layers, t_states)
                total, n = total + _backward(acc, exits, student, loss, out, states, layers, batch), n + 1
        return total / n

    return step


def sandwich_step(cfg, acc):
    """The sandwich rule (BigNAS, OFA) over the per-layer search space (search/space.py), so that the
    non-uniform sub-networks `edgebert search` picks are trained, not only sliced: each step, the largest,
    the smallest and cfg.sandwich random configurations, each against the width-adaptive model at full
    width and depth, hidden states matched at the kept layers; gradients accumulate before the one step."""
    spaces = {}

    def step(student, teacher, batch):
        c = student.config
        space = spaces.setdefault(c, SearchSpace.for_config(c))
        rng = _batch_rng(cfg, batch)
        with torch.no_grad():
            t_out, t_states, _ = dynamic_forward(teacher, batch, SubnetSpec(1.0, 1.0))
        specs = [SubnetSpec(1.0, 1.0), space.spec(space.smallest())]
        specs += [space.spec(space.sample(rng)) for _ in range(cfg.sandwich)]
        total = 0.0
        for spec in specs:
            out, states, layers = dynamic_forward(student, batch, spec)
            loss = _output_loss(cfg.task, out, t_out) + _hidden_loss(states, layers, t_states)
            total += _backward(acc, None, student, loss, out, states, layers, batch)
        return total / len(specs)

    return step
