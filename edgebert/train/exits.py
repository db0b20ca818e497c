"""Exit training: RomeBERT's one-stage joint training and DeeBERT's second stage, on DynaBERT's sub-networks.

romebert (Geng et al. 2021, "RomeBERT: Robust Training of Multi-Exit BERT", arXiv 2101.09755, Sec. 3):
  every exit i < L of a sub-network learns from the labels and from that sub-network's own last exit
  (self-distillation), jointly with the backbone, in the width and the depth stage:
    L_i = (1 - gamma) * CE(y, z_i) + gamma * T^2 * KL(softmax(z_L / T) || softmax(z_i / T))   (RomeBERT's
    per-exit self-distillation loss; z_L detached: the final exit teaches, it does not learn from the exits)
  gradient regularisation (RomeBERT's "GR"): the distillation gradient g_kd must not undo what the task
  gradient g_task (DynaBERT's loss + the exits' CE terms) asks for. When they conflict (g_kd . g_task < 0)
  g_kd is projected onto the plane normal to g_task: g_kd - (g_kd . g_task / |g_task|^2) g_task, the
  projection of gradient episodic memory / PCGrad, over all parameters as one vector.
  (The search tool reached the paper's abstract only; the equations above are written from its method
  section as remembered, so they are named, not numbered.)
deebert (Xin et al. 2020, "DeeBERT", Sec. 3.1, two-stage fine-tuning): stage 1 is the backbone and the
  final classifier (here: DynaBERT's stages); stage 2 freezes both and trains the exits ("off-ramps") on
  L = sum_{i=1}^{L-1} CE(y, z_i)   (DeeBERT's stage-2 loss), here at every width x depth of the grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgebert.errors import DataError
from edgebert.model.bert import Bert
from edgebert.model.dynamic import dynamic_encode
from edgebert.model.exits import layer_exit_logits
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec
from edgebert.train.config import EXIT_MODES
from edgebert.train.data import DataSet, check_labels, to_batch

__all__ = ["EXIT_MODES", "EXITS_FILE", "RomeBert", "deebert_step", "freeze_backbone", "exit_table"]

EXITS_FILE = "exits.json"


def _internal(model: Bert, states, layers, attention_mask) -> list[torch.Tensor]:
    """Logits of the exits before the last kept layer (the last one is the sub-network's output)."""
    return layer_exit_logits(model, states, layers, attention_mask)[:-1]


class RomeBert:
    """Adds RomeBERT's exit losses to a DynaBERT step and does the step's backward with GR (see module doc)."""

    def __init__(self, gamma: float = 0.5, temperature: float = 2.0):
        self.gamma, self.temperature = gamma, temperature

    def losses(self, model: Bert, out, states, layers, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of the exits' CE terms, sum of their distillation terms) for one sub-network."""
        t = self.temperature
        teacher = F.softmax(out.detach() / t, -1)
        ce, kd = out.new_zeros(()), out.new_zeros(())
        labels = batch["labels"]
        for z in _internal(model, states, layers, batch["attention_mask"]):
            ce = ce + (1 - self.gamma) * F.cross_entropy(z, labels)
            kd = kd + self.gamma * t * t * F.kl_div(F.log_softmax(z / t, -1), teacher, reduction="batchmean")
        return ce, kd

    def backward(self, acc, model: Bert, main_loss, out, states, layers, batch) -> float:
        """Accumulate d(main + CE)/dw plus the GR-projected d(KD)/dw into .grad; returns the total loss."""
        ce, kd = self.losses(model, out, states, layers, batch)
        params = [p for p in model.parameters() if p.requires_grad]
        task = main_loss + ce
        g_task = torch.autograd.grad(task, params, retain_graph=True, allow_unused=True)
        g_kd = torch.autograd.grad(kd, params, allow_unused=True)
        dot = sum((a * b).sum() for a, b in zip(g_task, g_kd) if a is not None and b is not None)
        norm2 = sum((a * a).sum() for a in g_task if a is not None)
        scale = float(dot / norm2) if float(dot) < 0 and float(norm2) > 0 else 0.0
        self.projected = scale != 0.0  # tests and logs: did GR fire on this sub-network
        for p, a, b in zip(params, g_task, g_kd):
            g = None
            if a is not None:
                g = a.clone()
            if b is not None:
                b = b - scale * a if a is not None else b
                g = b if g is None else g + b
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
        return float(task.detach() + kd.detach())


def deebert_step(cfg, acc):
    """DeeBERT stage 2: backbone and final head frozen (run_stage's student has requires_grad only on
    its exits), every exit trained with CE at every width x depth of the grid."""

    def step(student, teacher, batch):
        total, n = 0.0, 0
        for w in cfg.widths:
            for d in cfg.depths:
                with torch.no_grad():
                    states, layers = dynamic_encode(
                        student, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], SubnetSpec(w, d)
                    )
                logits = _internal(student, states, layers, batch["attention_mask"])
                if not logits:  # a one-layer sub-network has no internal exit
                    continue
                loss = sum(F.cross_entropy(z, batch["labels"]) for z in logits)
                acc.backward(loss)
                total, n = total + loss.item(), n + 1
        return total / max(n, 1)

    return step


def freeze_backbone(model: Bert) -> Bert:
    model.requires_grad_(False)
    model.exits.requires_grad_(True)
    return model


@torch.no_grad()
def exit_table(model: Bert, data: DataSet, tokenizer, specs, *, seq_len: int = 128, batch_size: int = 64) -> dict:
    """Dev accuracy of every exit of every sub-network (sliced, as exported): {key: {exit_accuracy, n}}."""
    if not len(data):
        raise DataError(f"{data.source}: no examples to evaluate the exits on")
    check_labels(data, model.config.labels)
    ordered = sorted(data.examples, key=lambda e: len(e.text) + len(e.text_pair or ""))
    batches = [
        to_batch(tokenizer, ordered[i : i + batch_size], seq_len, model.config.labels)
        for i in range(0, len(ordered), batch_size)
    ]
    gold = torch.cat([b["labels"] for b in batches])
    table = {}
    for spec in specs:
        sub = slice_model(model, spec).eval()
        per_exit = None
        for b in batches:
            states = sub.encode(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            kept = list(range(sub.config.num_layers))
            preds = [z.argmax(-1) for z in layer_exit_logits(sub, states, kept, b["attention_mask"])]
            per_exit = preds if per_exit is None else [torch.cat([a, p]) for a, p in zip(per_exit, preds)]
        table[spec.key] = {
            "exit_accuracy": [round(float((p == gold).float().mean()), 6) for p in per_exit],
            "source_layers": list(sub.config.source_layers),
            "data": data.name,
            "n": len(data),
        }
    return table
