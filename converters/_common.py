"""Pieces every converter shares: example inputs, manifest I/O facts, tolerances, quiet exports."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import sys
import tempfile
import warnings

import torch
from torch import nn

from edgebert.artifact import ArtifactConfig, Tolerance
from edgebert.artifact import check_seq_len as artifact_seq_len_check
from edgebert.model.tokenizer import INPUT_NAMES

__all__ = [
    "INPUT_NAMES",
    "check_seq_len",
    "example_inputs",
    "io_facts",
    "standard_tolerance",
    "quiet",
    "split_outlier_channels",
]


def check_seq_len(model, config: ArtifactConfig) -> int:
    artifact_seq_len_check(config.seq_len, model.config.max_position_embeddings)
    return config.seq_len


def example_inputs(model, batch: int, seq_len: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Deterministic int64 (input_ids, attention_mask, token_type_ids); later rows are partly padded so
    the traced graph sees a real mask, and both token types appear."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq_len), generator=g)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    for row in range(1, batch):
        mask[row, seq_len - seq_len // (row + 2) :] = 0
    if model.config.type_vocab_size > 1:
        types[:, seq_len // 2 :] = 1
    return ids, mask, types


def io_facts(model, batch, sequence, int_dtype: str = "int64") -> dict:
    dim = model.config.num_labels if model.config.task == "classification" else model.config.hidden_size
    return {
        "inputs": [{"name": n, "dtype": int_dtype, "shape": [batch, sequence]} for n in INPUT_NAMES],
        "outputs": [{"name": model.output_name, "dtype": "float32", "shape": [batch, dim]}],
    }


# Measured: fp32 artifacts of both the tiny test models and MiniLM stay within ~3e-6 of PyTorch, so 1e-4
# leaves room for other CPUs' kernels while still catching a wrong graph. Quantized outputs are judged by
# direction (cosine) and by the decision a classifier makes, not element-wise.
# A classifier's quantized outputs are judged by its class probabilities (max_prob_diff) and its decisions
# on inputs that are not near-ties; int8's 0.1 is twice the largest change measured on 200 Rotten Tomatoes
# dev texts (LadaBERT-compressed MiniLM, int8 TFLite: 0.050; `python benchmarks/compress.py`'s r256 model).
_TOLERANCES = {
    "fp32": Tolerance(max_abs_diff=1e-4, min_cosine=0.9999, min_argmax_agreement=1.0),
    "fp16": Tolerance(max_abs_diff=None, min_cosine=0.999, min_argmax_agreement=1.0, max_prob_diff=0.01),
    "int8": Tolerance(max_abs_diff=None, min_cosine=0.98, min_argmax_agreement=1.0, max_prob_diff=0.1),
}


def standard_tolerance(precision: str) -> Tolerance:
    return _TOLERANCES[precision]


@contextlib.contextmanager
def quiet():
    """Swallow exporter chatter (Python prints, warnings, logging, C++ glog on fds 1/2).

    On failure the captured text is attached to the exception as a note, so nothing useful is lost."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    prev_disable = logging.root.manager.disable
    with tempfile.TemporaryFile(mode="w+b") as sink:
        pybuf = io.StringIO()
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stdout(pybuf), contextlib.redirect_stderr(pybuf), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except BaseException as exc:
            sink.seek(0)
            text = pybuf.getvalue() + sink.read().decode(errors="replace")
            if text.strip():
                exc.add_note("exporter output (tail):\n" + text[-3000:])
            raise
        finally:
            logging.disable(prev_disable)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


class _OutlierSplitLinear(nn.Module):
    """x @ W.T + b with a few outlier input channels taken out of the main (quantizable) product and
    computed by a small side product that stays fp32 (LLM.int8()-style decomposition). Same function."""

    def __init__(self, linear: nn.Linear, outliers: torch.Tensor):
        super().__init__()
        keep = torch.ones(linear.in_features)
        keep[outliers] = 0.0
        self.register_buffer("keep", keep)
        self.register_buffer("outliers", outliers)
        self.main = linear
        self.side = nn.Linear(len(outliers), linear.out_features, bias=False)
        with torch.no_grad():
            self.side.weight.copy_(linear.weight[:, outliers])

    def forward(self, x):
        return self.main(x * self.keep) + self.side(x.index_select(-1, self.outliers))


def split_outlier_channels(model, ratio: float = 6.0, max_channels: int = 8, seed: int = 0):
    """A copy of `model` whose nn.Linear inputs have their outlier channels routed around the int8 path.

    Why: BERT's first token carries a few huge hidden channels (MiniLM channel 99: ~28 against a median
    of ~1), and per-tensor dynamic quantization then spends its 8 bits on them: short sentences fell to
    cosine 0.96 in ORT int8. Channels whose range exceeds `ratio` x the median range (at most
    `max_channels` per layer) go to a side product kept fp32: MiniLM short inputs rise to >= 0.985.
    Ranges come from random token ids: the outliers sit at the first position, whatever the token.
    Returns (model copy, number of channels split out)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (4, min(32, model.config.max_position_embeddings)), generator=g)
    ranges: dict[str, torch.Tensor] = {}

    def record(name):
        def hook(_module, args, _out):
            r = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0)
            ranges[name] = torch.maximum(ranges[name], r) if name in ranges else r

        return hook

    split = copy.deepcopy(model).eval()
    linears = {n: m for n, m in split.named_modules() if isinstance(m, nn.Linear)}
    handles = [m.register_forward_hook(record(n)) for n, m in linears.items()]
    with torch.no_grad():
        split(ids, torch.ones_like(ids), torch.zeros_like(ids))
    for h in handles:
        h.remove()
    total = 0
    for name, linear in linears.items():
        if name not in ranges:  # not on the forward path (early-exit heads): left as it is
            continue
        r = ranges[name]
        outliers = torch.nonzero(r > ratio * r.median()).flatten()
        if len(outliers) > max_channels:
            outliers = torch.topk(r, max_channels).indices.sort().values
        if len(outliers):
            total += len(outliers)
            parent, _, attr = name.rpartition(".")
            setattr(split.get_submodule(parent) if parent else split, attr, _OutlierSplitLinear(linear, outliers))
    return split, total
