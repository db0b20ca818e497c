"""The accuracy gate (issue 16 item 5): quantize by recipes in order until one keeps the quality.

A quantized artifact must stay within `max_drop` of its own fp32 sub-network on the parity texts and the
held-out proxy texts, judged in its own runtime: for sentence encoders the drop is 1 - mean cosine of its
embeddings to the fp32 ones; for classifiers it is the share of texts whose predicted label changes (an
upper bound on the accuracy it can lose: points / 100). Recipes are tried in FALLBACK_RECIPES order
(per-channel int8, int8 with the embeddings and first/last layer in fp32, fp16); every one tried goes into
the artifact's manifest entry with its figures, and the first that passes is published. None passing is a
ParityError (exit 4) that quotes them all.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from edgebert.artifact import FALLBACK_RECIPES, RECIPES, ArtifactConfig, recipes_of
from edgebert.errors import ParityError, UsageError
from edgebert.export.verify import PARITY_TEXTS, verify
from edgebert.model.texts import calibration_texts

__all__ = ["DEFAULT_DROP", "gate_threshold", "gate_texts", "recipe_quality", "gated"]

# Defaults the issue asks for: half an accuracy point for classifiers, 0.005 cosine for encoders (MiniLM's
# per-channel int8 keeps mean cosine 0.990-0.9965 to fp32 (DESIGN.md), so ORT's can fail it and fall back).
DEFAULT_DROP = {"classification": 0.5, "embedding": 0.005}


def gate_threshold(task: str, given: float | None) -> tuple[float, str]:
    """(the allowed drop as a fraction of the [0, 1] quality score, how it reads to a person).

    `given` is in the model's own unit: accuracy points for classifiers, cosine for encoders."""
    classify = task == "classification"
    value = DEFAULT_DROP["classification" if classify else "embedding"] if given is None else given
    top = 100.0 if classify else 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"--max-quality-drop must be a number, got {given!r}")
    if not 0 <= value <= top:
        unit = "accuracy points (0..100)" if classify else "cosine (0..1)"
        raise UsageError(f"--max-quality-drop {value:g} is out of range: for this model it is in {unit}")
    words = f"{value:g} accuracy points" if classify else f"{value:g} cosine"
    return (value / 100.0 if classify else float(value)), words


def gate_texts() -> list[str]:
    """The parity texts and the proxy's held-out calibration texts (96 in all)."""
    return list(PARITY_TEXTS) + calibration_texts()[64:]


def recipe_quality(sub, runtime, tokenizer, conv, acfg: ArtifactConfig) -> dict:
    """How much of its fp32 sub-network an artifact keeps on the gate texts: {metric, quality, drop, n}."""
    texts = gate_texts()
    fig = verify(sub, runtime, tokenizer, conv, acfg, texts=texts)  # dynamic formats: batched and one by one
    if sub.config.task == "classification":
        metric, quality = "argmax agreement with fp32", fig["argmax_agreement"]
    else:
        metric, quality = "mean cosine to fp32", fig["mean_cosine"]
    return {
        "metric": metric,
        "quality": round(float(quality), 6),
        "drop": round(1.0 - float(quality), 6),
        "n": len(texts),
    }


def gated(convert_and_verify, sub, tokenizer, conv, acfg: ArtifactConfig, folder: Path, threads: int, card, given):
    """convert_and_verify through the gate. A format that can write no recipe of the chain (TorchScript for
    int8) keeps its own fallback, as before: nothing is gated there."""
    chain = [r for r in FALLBACK_RECIPES[acfg.precision] if RECIPES[r] != "fp32"]
    if not chain or not any(r in recipes_of(conv) for r in chain):
        return convert_and_verify(sub, tokenizer, conv, acfg, folder, threads, card=card)
    max_drop, words = gate_threshold(sub.config.task, given)
    tried = []
    for recipe in chain:
        if recipe not in recipes_of(conv):
            tried.append({"recipe": recipe, "passed": False, "why": f"{conv.name} cannot write this recipe"})
            continue
        one = dataclasses.replace(acfg, precision=RECIPES[recipe], recipe=recipe)
        try:
            entry = convert_and_verify(sub, tokenizer, conv, one, folder, threads, card=card)
        except ParityError as exc:
            tried.append({"recipe": recipe, "passed": False, "why": f"parity check failed: {exc}"})
            continue
        q = recipe_quality(sub, conv.load(folder / entry["file"], threads=threads), tokenizer, conv, one)
        ok = q["drop"] <= max_drop
        why = (
            f"{q['metric']} {q['quality']:.4f} on {q['n']} texts: drop {q['drop']:.4f} "
            + ("within" if ok else "exceeds")
            + f" {max_drop:g}"
        )
        tried.append({"recipe": recipe, "precision": one.precision, **q, "passed": ok, "why": why})
        if ok:
            # What was asked for (the selector's pick), not this recipe's precision: deploy.check_fallback_budget
            # judges a fallback's budgets again only where the two differ.
            entry["requested_precision"] = acfg.precision
            entry["quality_gate"] = {"max_drop": max_drop, "max_drop_given": words, "tried": tried, "chosen": recipe}
            failed = [t for t in tried if not t["passed"]]
            if failed:
                entry["notes"].append(
                    f"accuracy gate: fell back to {recipe} after "
                    + "; ".join(f"{t['recipe']} ({t['why']})" for t in failed)
                    + _resolution(sub.config.task, failed, max_drop)
                )
            return entry
    raise ParityError(
        f"{conv.name}: no quantization recipe stays within --max-quality-drop {words} of fp32: "
        + "; ".join(f"{t['recipe']}: {t['why']}" for t in tried)
        + _resolution(sub.config.task, tried, max_drop)
        + ". Nothing was written. Allow a larger drop, or export fp32."
    )


def _resolution(task: str, failed: list[dict], max_drop: float) -> str:
    """For a classifier the gate counts changed labels, so it cannot tell a drop smaller than one label on its
    texts: where the allowed drop is below that and a recipe failed by a label or two, say what one label is
    worth and which --max-quality-drop would accept those changes (their real cost is for labelled data)."""
    counted = [t for t in failed if "n" in t]
    if task != "classification" or not counted:
        return ""
    n = counted[0]["n"]
    changed = min(round(t["drop"] * t["n"]) for t in counted)
    if not 0 < changed <= 2 or max_drop >= 1.0 / n:
        return ""
    points = math.ceil(10000.0 * changed / n) / 100.0  # accuracy points, rounded up to the hundredth
    return (
        f" (on {n} texts one changed label is {100.0 / n:.2f} accuracy points, more than the {100 * max_drop:g} "
        f"allowed: the gate cannot see a smaller loss; --max-quality-drop {points:g} accepts {changed} changed "
        f"label{'s' if changed > 1 else ''}, and the artifact's accuracy on your labelled dev data shows what it costs)"
    )
