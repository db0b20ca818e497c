"""`edgebert predict FOLDER TEXT...`: run an export folder on raw text with edgebert.runtime (no torch)."""

from __future__ import annotations

from edgebert.errors import UsageError
from edgebert.runtime.policy import Policy
from edgebert.runtime.predictor import Predictor

__all__ = ["run_predict", "format_predictions"]


def run_predict(*, folder, texts, fmt=None, threads=1, policy: Policy | None = None) -> list[dict]:
    """One {label, scores | embedding, exit_layer, ms} per text; ms measured here, one run each."""
    if not texts:
        raise UsageError("give at least one TEXT to predict")
    if threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    predictor = Predictor(folder, fmt, threads=threads, policy=policy)
    return [predictor.predict(t).to_dict() for t in texts]


def format_predictions(results: list[dict], texts) -> str:
    lines = []
    for text, r in zip(texts, results):
        shown = text if len(text) <= 48 else text[:45] + "..."
        if "embedding" in r:
            what = f"embedding[{len(r['embedding'])}]"
        else:
            what = f"{r['label']} ({r['scores'][r['label']]:.3f})"
        lines.append(f"{what:<24} exit layer {r['exit_layer']:<3} {r['ms']:>8.2f} ms  {shown}")
    lines.append("ms: measured on this machine, one run per text (tokenizer + model + policy)")
    return "\n".join(lines)
