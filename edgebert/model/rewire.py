"""rewire(model, texts, tokenizer): DynaBERT network rewiring.

Slicing keeps the *first* heads and FFN neurons of every layer, so before slicing the model is
rewired: each layer's heads and neurons are reordered, most important first. Reordering is an
exact symmetry of the network (permute q/k/v rows and out-projection columns per head, FFN
up-projection rows and down-projection columns per neuron), so the full model computes the same
function; only the sub-networks change, for the better.

Importance (DynaBERT): a head's is the accumulated |d loss / d head_mask|, a neuron's the
first-order Taylor estimate of the loss change when it is removed, |sum of w * dL/dw| over its
weights. Which loss depends on the model, see `_loss_name`.
"""

from __future__ import annotations

import copy
import numbers
import sys
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from edgebert.errors import DataError, UsageError
from edgebert.model.bert import Bert
from edgebert.model.spec import kept_count
from edgebert.model.tokenizer import encode

__all__ = ["rewire", "compute_importance", "Importance", "LOSSES"]

LOSSES = {
    "cross_entropy": "cross-entropy against the given labels",
    "self_cross_entropy": "cross-entropy against the model's own argmax predictions (no labels given)",
    "subnet_distance": "1 - cosine + MSE between the embeddings of random half-head sub-networks and of the full model",
}
# Sentence encoders: how many random sub-networks to evaluate per batch (even: complementary
# pairs), and the share of heads each keeps.
SUBNET_SAMPLES = 4
SUBNET_WIDTH = 0.5


@dataclass
class Importance:
    heads: list[torch.Tensor]  # per layer, [heads], in the model's current order
    neurons: list[torch.Tensor]  # per layer, [ffn]
    loss: str  # a key of LOSSES
    evaluations: int  # gradient evaluations the figures are averaged over


def rewire(
    model: Bert,
    texts: list[str],
    tokenizer,
    labels: list[int] | None = None,
    batch_size: int = 16,
    seq_len: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Bert, dict]:
    """A new model with every layer's heads and FFN neurons sorted by importance, and a JSON-able report."""
    if model.config.weight_rank:
        # Importance and reordering here read dense weights; factorise after rewiring (compress does).
        raise UsageError("rewire a model before factorising its weights (edgebert compress rewires first)")
    texts = list(texts)
    work = _private_copy(model)
    imp = _importance(work, texts, tokenizer, labels, batch_size, seq_len, seed, progress)
    head_orders = [_order(h) for h in imp.heads]
    neuron_orders = [_order(n) for n in imp.neurons]
    with torch.no_grad():
        for layer, ho, no in zip(work.layers, head_orders, neuron_orders):
            _reorder_layer(layer, ho, no)
    for p, q in zip(work.parameters(), model.parameters()):
        p.requires_grad_(q.requires_grad)
    work.train(model.training)
    # Saved with the model (config.extra is part of edgebert's format), so later stages such as
    # export know not to rewire again on different texts.
    work.config = replace(
        work.config, extra={**work.config.extra, "rewired": {"loss": imp.loss, "num_texts": len(texts), "seed": seed}}
    )
    report = _report(imp, head_orders, neuron_orders, len(texts), batch_size, seq_len, seed)
    return work, report


def compute_importance(
    model: Bert,
    texts: list[str],
    tokenizer,
    labels: list[int] | None = None,
    batch_size: int = 16,
    seq_len: int = 128,
    seed: int = 0,
    progress: bool = False,
) -> Importance:
    """Head and neuron importance of `model` (left untouched) on `texts`."""
    return _importance(_private_copy(model), texts, tokenizer, labels, batch_size, seq_len, seed, progress)


# ---- importance -------------------------------------------------------------------------


def _private_copy(model: Bert) -> Bert:
    work = copy.deepcopy(model).eval()  # eval: dropout would make the gradients noisy and unseeded
    for p in work.parameters():
        p.requires_grad_(False)
    for layer in work.layers:  # only the FFN weights need gradients; heads are probed through masks
        for p in (*layer.ffn.up.parameters(), layer.ffn.down.weight):
            p.requires_grad_(True)
    return work


def _loss_name(model: Bert, labels) -> str:
    if model.config.task == "classification":
        return "cross_entropy" if labels is not None else "self_cross_entropy"
    if labels is not None:
        raise DataError(
            "labels were given, but the model is a sentence encoder (task 'embedding') with no "
            "classifier to score them; leave the labels out (a task-agnostic loss is used)"
        )
    return "subnet_distance"


def _check(model: Bert, texts, labels, batch_size: int, seq_len: int) -> None:
    if not texts:
        raise DataError("rewiring needs at least one calibration text; pass a non-empty file")
    if batch_size < 1 or seq_len < 2:
        raise UsageError(f"batch size must be >= 1 and sequence length >= 2, got {batch_size} and {seq_len}")
    if labels is None:
        return
    if len(labels) != len(texts):
        raise DataError(f"got {len(labels)} labels for {len(texts)} texts; give one label per text")
    n = model.config.num_labels
    bad = [y for y in labels if isinstance(y, bool) or not isinstance(y, numbers.Integral) or not 0 <= y < n]
    if bad:
        raise DataError(f"label {bad[0]!r} is not a class index of this {n}-class model; use integers 0..{n - 1}")


def _batches(model: Bert, texts, tokenizer, labels, batch_size: int, seq_len: int):
    seq_len = min(seq_len, model.config.max_position_embeddings)
    for start in range(0, len(texts), batch_size):
        arrays = encode(tokenizer, texts[start : start + batch_size], seq_len=seq_len)
        # Pad only to the batch's longest text: columns of pure padding are wasted compute.
        used = max(int(arrays["attention_mask"].sum(1).max()), 1)
        inputs = {k: torch.from_numpy(v[:, :used]) for k, v in arrays.items()}
        y = None if labels is None else torch.tensor(labels[start : start + batch_size])
        yield inputs, y


def _importance(work: Bert, texts, tokenizer, labels, batch_size, seq_len, seed, progress) -> Importance:
    from tqdm.auto import tqdm

    texts = list(texts)
    labels = None if labels is None else list(labels)
    loss_name = _loss_name(work, labels)
    _check(work, texts, labels, batch_size, seq_len)
    gen = torch.Generator().manual_seed(seed)
    heads = [torch.zeros(h) for h in work.config.heads]
    neurons = [torch.zeros(f) for f in work.config.ffn]
    evaluations = 0
    bar = tqdm(
        total=len(texts), desc="rewire: importance", unit="text", disable=not progress or not sys.stderr.isatty()
    )
    with bar:
        for inputs, y in _batches(work, texts, tokenizer, labels, batch_size, seq_len):
            for head_mask, loss_fn in _probes(work, inputs, y, loss_name, gen):
                _accumulate(work, inputs, head_mask, loss_fn, heads, neurons)
                evaluations += 1
            bar.update(len(inputs["input_ids"]))
    return Importance([h / evaluations for h in heads], [n / evaluations for n in neurons], loss_name, evaluations)


def _probes(work: Bert, inputs, y, loss_name: str, gen: torch.Generator):
    """(head mask, loss of the pooled output) for each gradient evaluation of a batch."""
    if loss_name != "subnet_distance":
        if y is None:  # no labels: how firmly the model holds on to its own decisions
            with torch.no_grad():
                y = work(**inputs).argmax(-1)
        yield [torch.ones(h) for h in work.config.heads], lambda logits: F.cross_entropy(logits, y)
        return
    # A sentence encoder has no task loss, so its "task" is to reproduce the full model's
    # embedding. At the full model that distance is exactly zero and so is its gradient: nothing
    # to rank by. Sub-networks are what slicing will produce, so the distance is probed at random
    # half-width ones: a head or neuron whose presence moves a sub-network's embedding towards
    # the full one gets a large gradient there. Masked-out heads still get a gradient through
    # their (zero) mask: how much adding them back would help.
    # Masks come in complementary pairs so every head is probed present and absent equally
    # often: on MiniLM (64 texts) the w0.5 slice's cosine to the full model was 0.677 with 2
    # pairs, 0.659 with 8 independent masks. Also masking random FFN neurons ranked worse (0.646),
    # so neurons are scored at the full FFN, under the head-masked sub-networks.
    with torch.no_grad():
        target = work(**inputs)

    def distance(emb):
        return (1.0 - F.cosine_similarity(emb, target, dim=-1)).mean() + F.mse_loss(emb, target)

    for _ in range(SUBNET_SAMPLES // 2):
        head_mask = [_random_mask(h, gen) for h in work.config.heads]
        yield head_mask, distance
        yield [1.0 - m for m in head_mask], distance


def _random_mask(n: int, gen: torch.Generator) -> torch.Tensor:
    mask = torch.zeros(n)
    mask[torch.randperm(n, generator=gen)[: kept_count(SUBNET_WIDTH, n)]] = 1.0
    return mask


def _accumulate(work: Bert, inputs, head_mask, loss_fn, heads, neurons) -> None:
    head_mask = [m.clone().requires_grad_(True) for m in head_mask]
    hidden = work.encode(**inputs, head_mask=head_mask)[-1]
    loss = loss_fn(work.pool(hidden, inputs["attention_mask"]))
    ffn_params = [p for layer in work.layers for p in (layer.ffn.up.weight, layer.ffn.up.bias, layer.ffn.down.weight)]
    grads = torch.autograd.grad(loss, head_mask + ffn_params)
    n = len(head_mask)
    for i, layer in enumerate(work.layers):
        heads[i] += grads[i].abs()
        g_up_w, g_up_b, g_down_w = grads[n + 3 * i : n + 3 * i + 3]
        up, down = layer.ffn.up, layer.ffn.down
        # The up row + bias and the down column are separate Taylor terms (as in DynaBERT):
        # their signs need not agree, and summing before |.| would let them cancel.
        neurons[i] += ((up.weight * g_up_w).sum(1) + up.bias * g_up_b).abs().detach()
        neurons[i] += (down.weight * g_down_w).sum(0).abs().detach()


# ---- reordering and report -------------------------------------------------------------


def _order(importance: torch.Tensor) -> torch.Tensor:
    # stable: ties (e.g. neurons that never fired) keep their current order, so reruns agree.
    return torch.sort(importance, descending=True, stable=True).indices


def _reorder_layer(layer, head_order: torch.Tensor, neuron_order: torch.Tensor) -> None:
    att, ffn = layer.attention, layer.ffn
    rows = (head_order[:, None] * att.head_dim + torch.arange(att.head_dim)).reshape(-1)
    for lin in (att.query, att.key, att.value):
        lin.weight.copy_(lin.weight[rows])
        lin.bias.copy_(lin.bias[rows])
    att.out.weight.copy_(att.out.weight[:, rows])
    ffn.up.weight.copy_(ffn.up.weight[neuron_order])
    ffn.up.bias.copy_(ffn.up.bias[neuron_order])
    ffn.down.weight.copy_(ffn.down.weight[:, neuron_order])


def _num(x) -> float:
    return float(f"{float(x):.6g}")


def _report(imp: Importance, head_orders, neuron_orders, n_texts, batch_size, seq_len, seed) -> dict:
    layers = []
    for i, (h, ho, n, no) in enumerate(zip(imp.heads, head_orders, imp.neurons, neuron_orders)):
        sorted_n = n[no]
        half = kept_count(0.5, len(n))
        layers.append(
            {
                "layer": i,
                "head_importance": [_num(v) for v in h],  # indexed by the head's position before rewiring
                "head_order": [int(j) for j in ho],  # new position k holds old head head_order[k]
                "neuron_importance": {
                    "count": len(n),
                    "min": _num(n.min()),
                    "mean": _num(n.mean()),
                    "max": _num(n.max()),
                    # how much of the layer's importance a width-0.5 slice keeps after rewiring
                    "share_in_first_half": _num(sorted_n[:half].sum() / n.sum().clamp(min=1e-30)),
                    "moved": int((no != torch.arange(len(n))).sum()),
                },
            }
        )
    report = {
        "method": "dynabert-rewire",
        "loss": imp.loss,
        "loss_description": LOSSES[imp.loss],
        "num_texts": n_texts,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "seed": seed,
        "gradient_evaluations": imp.evaluations,
        "layers": layers,
    }
    if imp.loss == "subnet_distance":
        report["subnet_samples_per_batch"], report["subnet_width"] = SUBNET_SAMPLES, SUBNET_WIDTH
    return report
