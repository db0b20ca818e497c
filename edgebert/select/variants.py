"""Compression levels as candidates (issue 15 part 4): choose among a model and its compressed variants.

Where variants live: in the model's own folder, one subfolder each, as `edgebert compress --out` wrote it:

    edgebert compress --model models/rt-dyna --embedding-rank 128 --out models/rt-dyna/r128 ...
    edgebert compress --model models/rt-dyna --embedding-rank 64 --prune 0.4 --out models/rt-dyna/r64-p0.4 ...
    edgebert export --model models/rt-dyna --device raspberry-pi-4 --budget 60ms --memory 12MB

A variant kept elsewhere (a sibling folder) joins through a symbolic link in the model folder
(`ln -s ../rt-lada models/rt-dyna/rt-lada`). Why the folder rather than a list of folders on the command
line: the issue asks for "several compressed variants in the model folder", and one `--model` keeps every
command that takes a model (export, build, search) as it is; the folder then travels as one thing.

Export then judges every (variant x width x depth x format x precision) with each variant's own predictions
(select/costs.py counts factorised tables and matrices) and its own measured quality, and takes the best
that fits: the same rule as without variants, so a compressed variant wins only when it scores higher than
everything that fits of the others, typically because the uncompressed model does not fit the memory limit.

A variant counts only when its quality can be compared: its quality.json is measured with the same metric
on the same data as the uncompressed model's (compress measures it after distillation; pass the same
--eval/--data as the model was trained on), and its compression.json names this model's weights as its
source. Others are left out, each with its reason in the manifest's `selection.variants`. With no measured
table on the uncompressed model (the proxy, cosine to a model's own full network) nothing is comparable, and
the variants are left out and say so. With no compressed variant in the folder at all and nothing of the model
fitting, export tries untrained SVD ranks of the embedding table instead (select/ranks.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgebert.errors import BudgetError
from edgebert.model.bert import CONFIG_FILE
from edgebert.model.compression import COMPRESSION_FILE, read_record
from edgebert.model.loaded import Loaded, load, weights_sha256
from edgebert.select.budget import Budget
from edgebert.select.quality import read_table
from edgebert.select.selector import Selection, select

__all__ = ["Variant", "find_variants", "choose_variant", "variants_section"]


@dataclass(frozen=True)
class Variant:
    name: str  # the folder's name; a compressed variant's is "<model folder>/<subfolder>"
    loaded: Loaded
    record: dict | None  # compression.json; None: the uncompressed model itself

    def to_dict(self) -> dict:
        r = self.record or {}
        return {
            "name": self.name,
            "path": str(self.loaded.model_dir),
            "compressed": self.record is not None,
            "plan": r.get("plan"),
            "parameters": self.loaded.full.num_parameters(),
            "distillation_steps": (r.get("distillation") or {}).get("steps"),
        }


def _basis(model_dir: Path) -> tuple[str, str] | None:
    """(metric, data) of a measured quality table, when all its rows share them; None otherwise."""
    table = read_table(model_dir)
    bases = {(row.get("metric"), row.get("data")) for row in table.values() if isinstance(row, dict)}
    return next(iter(bases)) if len(bases) == 1 else None


def _candidates(folder: Path) -> list[Path]:
    """Subfolders that hold a model written by `edgebert compress` (symbolic links followed), by name."""
    return sorted(
        p for p in folder.iterdir() if p.is_dir() and (p / COMPRESSION_FILE).is_file() and (p / CONFIG_FILE).is_file()
    )


def find_variants(base: Loaded) -> tuple[list[Variant], list[dict]]:
    """([the uncompressed model, then its comparable compressed variants], [{path, why} of those left out])."""
    first = Variant(base.model_dir.resolve().name, base, None)
    folders = _candidates(base.model_dir)
    if not folders:
        return [first], []
    basis = _basis(base.model_dir)
    source = weights_sha256(base.model_dir)
    found, left_out = [first], []
    for folder in folders:
        why = _why_not(folder, basis, source)
        if why:
            left_out.append({"path": str(folder), "why": why})
        else:
            found.append(Variant(f"{first.name}/{folder.name}", load(str(folder)), read_record(folder)))
    return found, left_out


def _why_not(folder: Path, basis: tuple[str, str] | None, source_sha: str) -> str | None:
    if basis is None:
        return (
            "the uncompressed model has no measured quality table (quality.json with one metric and data set): "
            "without one the variants' measured quality cannot be compared with it. Run `edgebert evaluate` on it"
        )
    record = read_record(folder) or {}
    if (record.get("source") or {}).get("weights_sha256") != source_sha:
        return "its compression.json names another source model than this folder's weights"
    got = _basis(folder)
    if got != basis:
        return (
            f"its quality table is {'missing or mixed' if got is None else f'{got[0]} on {got[1]}'}, not "
            f"{basis[0]} on {basis[1]} as the uncompressed model's: compress it with the same --eval data"
        )
    return None


def choose_variant(
    variants: list[Variant], choose_one: Callable[[Loaded], Selection], budget: Budget
) -> tuple[Variant, Selection]:
    """The variant and selection with the best candidate over all variants' grids (select's rule).

    `choose_one(loaded)` is the plain selection of one model (choose.choose with its quality and measured
    precisions); its verdicts, tagged with the variant's name, are judged again together. Raises BudgetError
    (exit 3) when no candidate of any variant fits."""
    cands = []
    for v in variants:
        try:
            verdicts = choose_one(v.loaded).verdicts
        except BudgetError as err:
            verdicts = getattr(err, "verdicts", None)  # select() keeps every candidate it judged on the error
            if verdicts is None:
                raise
        cands += [dataclasses.replace(x.candidate, variant=v.name) for x in verdicts]
    selection = select(cands, budget.latency_ms, budget.memory_mb)
    chosen = next(v for v in variants if v.name == selection.chosen.variant)
    return chosen, selection


def variants_section(variants: list[Variant], left_out: list[dict], chosen: Variant) -> dict:
    """The manifest's `selection.variants`: what was compared, what was chosen, what was left out and why."""
    return {
        "chosen": chosen.name,
        "considered": [v.to_dict() for v in variants],
        "left_out": left_out,
        "where": "the model folder and its subfolders written by `edgebert compress` (symbolic links followed)",
        "rule": "every variant's grid judged together: the best measured quality that fits (ties go to the faster on average)",
    }
