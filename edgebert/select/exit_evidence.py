"""What the selector's early-exit candidates are judged on: every exit's logits of a sub-network on dev texts.

Run in PyTorch on the dynamic model's shared weights (model/exits.py's dynamic_exit_logits, as training
evaluates a width/depth), batch inputs at their own length, cached per sub-network. `limit` keeps the
selector quick: a histogram of a few hundred texts is enough to tell exit probabilities apart.
"""

from __future__ import annotations

import numpy as np
import torch

from edgebert.model.bert import Bert
from edgebert.model.exits import dynamic_exit_logits
from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import INPUT_NAMES, encode

__all__ = ["DevExitLogits", "SELECT_LIMIT"]

SELECT_LIMIT = 256


class DevExitLogits:
    """ExitEvidence (select/exits.py): spec -> (logits [n, exits, labels], labels or None, what the texts are)."""

    def __init__(self, model: Bert, tokenizer, texts, labels, data: str, seq_len: int, limit: int = SELECT_LIMIT):
        self.model, self.tokenizer, self.seq_len = model.eval(), tokenizer, seq_len
        self.texts = list(texts)[:limit]
        self.labels = None if labels is None else np.asarray(list(labels)[:limit])
        kind = "labelled dev split" if labels is not None else "unlabelled proxy texts (no labels)"
        self.data = f"{data}, n={len(self.texts)}, {kind}, exits taken by the fp32 model in PyTorch"
        self._cache: dict[str, np.ndarray] = {}

    @torch.no_grad()
    def __call__(self, spec: SubnetSpec):
        if spec.key not in self._cache:
            chunks = []
            for i in range(0, len(self.texts), 64):
                b = encode(self.tokenizer, self.texts[i : i + 64], seq_len=None)
                batch = {n: torch.from_numpy(b[n][:, : self.seq_len]) for n in INPUT_NAMES}
                logits, _, _ = dynamic_exit_logits(self.model, batch, spec)
                chunks.append(torch.stack(logits, 1).float().numpy())
            self._cache[spec.key] = np.concatenate(chunks)
        return self._cache[spec.key], self.labels, self.data
