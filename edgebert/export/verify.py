"""The parity gate: run an artifact in its own runtime and the PyTorch reference on real sentences.

Inputs come from real tokenized text of several lengths (a word, a sentence, a paragraph cut at
seq_len), batched where the format takes dynamic shapes and one by one where it does not, so the
check covers padding, batching and truncation as well as the arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch

from edgebert.artifact import ArtifactConfig
from edgebert.errors import ParityError
from edgebert.model.tokenizer import INPUT_NAMES, encode

__all__ = ["verify", "check", "decision_figures", "PARITY_TEXTS"]

PARITY_TEXTS = (
    "Great!",
    "I love it.",
    "the movie was great",
    "What time does the train to Berlin leave tomorrow morning?",
    "Quantum computers exploit superposition and entanglement to solve certain problems faster.",
    "a boring and slow story with a terrible ending that never seems to end, and the actors look tired",
    "The battery lasts two days, the screen is sharp in sunlight, and the small model still answers "
    "every question on the phone without a network connection.",
    # Long enough to be cut at any seq_len up to 128, so the longest input a file accepts is tried.
    "Edge devices such as phones, single-board computers and microcontrollers have little memory and "
    "a tight energy budget, so the models that run on them must be small and fast while keeping most of "
    "the accuracy of the large networks they come from. Pruning attention heads and feed-forward neurons, "
    "dropping whole layers, and storing weights in eight bits are three ways to get there; each one "
    "changes the numbers a little, which is why every exported file is compared with the original model "
    "on real sentences before anyone is allowed to ship it to a device in the field, where mistakes are "
    "much harder to notice and far more expensive to fix than they are on a developer's laptop.",
)


def _trim(enc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop columns that are padding in every row (pad to the longest, not to seq_len)."""
    longest = int(enc["attention_mask"].sum(1).max())
    return {k: v[:, :longest] for k, v in enc.items()}


def _batches(tokenizer, texts, seq_len: int, dynamic: bool) -> list[dict[str, np.ndarray]]:
    singles = [_trim(encode(tokenizer, [t], seq_len=seq_len)) for t in texts]
    if not dynamic:  # static files: batch 1, unpadded; the runtime wrapper pads to its fixed length
        return singles
    return [_trim(encode(tokenizer, texts, seq_len=seq_len))] + singles


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


def verify(reference, runtime, tokenizer, converter, config: ArtifactConfig, texts=None) -> dict:
    """Parity figures of `runtime` (a loaded artifact) against `reference` (the PyTorch Bert)."""
    seq_len = min(config.seq_len, reference.config.max_position_embeddings)
    batches = _batches(tokenizer, list(texts or PARITY_TEXTS), seq_len, bool(converter.dynamic_shapes))
    was_training = reference.training
    reference.eval()
    refs, outs = [], []
    try:
        with torch.no_grad():
            for feeds in batches:
                refs.append(reference(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES)).float().numpy())
                outs.append(np.asarray(runtime(feeds), dtype=np.float32).reshape(refs[-1].shape))
    finally:
        reference.train(was_training)
    ref, out = np.concatenate(refs), np.concatenate(outs)
    diff = np.abs(out - ref)
    cos = _cosines(out, ref)
    classifier = reference.config.task == "classification"
    tol = converter.tolerance(config.precision)
    figures = {
        "precision": config.precision,
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "argmax_agreement": float((out.argmax(1) == ref.argmax(1)).mean()) if classifier else None,
        **(decision_figures(ref, out, tol) if classifier else {}),
        "n_inputs": int(ref.shape[0]),
        "batch_sizes": sorted({int(b["input_ids"].shape[0]) for b in batches}),
        "seq_lens": sorted({int(b["input_ids"].shape[1]) for b in batches}),
        "tolerance": tol.to_dict(),
    }
    figures["failures"] = _failures(figures, tol)
    figures["passed"] = not figures["failures"]
    return figures


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def decision_figures(ref: np.ndarray, out: np.ndarray, tol) -> dict:
    """A classifier's parity by what it decides: class probabilities, and the decisions that are not near-ties."""
    p_ref, p_out = _softmax(ref.astype(np.float64)), _softmax(out.astype(np.float64))
    top2 = np.sort(p_ref, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0] if ref.shape[1] > 1 else np.ones(len(ref))
    decided = margin > 2 * tol.max_prob_diff if tol.max_prob_diff is not None else np.ones(len(ref), dtype=bool)
    agree = out.argmax(1) == ref.argmax(1)
    return {
        "max_prob_diff": float(np.abs(p_out - p_ref).max()),
        "n_decided": int(decided.sum()),
        "decided_agreement": float(agree[decided].mean()) if decided.any() else 1.0,
    }


def _failures(f: dict, tol) -> list[str]:
    failed = []
    if not np.isfinite(f["max_abs_diff"]):
        failed.append("outputs are not finite")
    if tol.max_abs_diff is not None and not f["max_abs_diff"] <= tol.max_abs_diff:
        failed.append(f"max_abs_diff {f['max_abs_diff']:.3g} > {tol.max_abs_diff:.3g}")
    by_decision = f["argmax_agreement"] is not None and tol.max_prob_diff is not None
    if not by_decision and not f["min_cosine"] >= tol.min_cosine:
        failed.append(f"min_cosine {f['min_cosine']:.5f} < {tol.min_cosine}")
    if by_decision and not f["max_prob_diff"] <= tol.max_prob_diff:
        failed.append(f"max_prob_diff {f['max_prob_diff']:.3f} > {tol.max_prob_diff}")
    if f["argmax_agreement"] is not None and not f["decided_agreement"] >= tol.min_argmax_agreement:
        failed.append(
            f"argmax_agreement {f['decided_agreement']:.3f} < {tol.min_argmax_agreement} on the "
            f"{f['n_decided']} inputs that are not near-ties"
        )
    return failed


def check(figures: dict, artifact_name: str) -> None:
    """Raise ParityError when `figures` (from verify) failed their tolerance."""
    if figures.get("passed"):
        return
    reasons = "; ".join(figures.get("failures") or ["no passing verdict"])
    raise ParityError(
        f"{artifact_name} failed its parity check against PyTorch ({figures.get('precision')}, "
        f"{figures.get('n_inputs')} inputs): {reasons}. It was not written. Try a higher precision "
        f"(fp32 or fp16), or report the figures if fp32 fails: that is a converter bug."
    )
