"""Untrained embedding ranks as candidates (issue 15 part 4, second branch): when `export --device` finds that
no (width, depth, format, precision) of a model fits the limits, and the model folder holds no compressed
variant to choose among (select/variants.py), the word-embedding table (half of MiniLM's parameters, which
no width or depth touches) is truncated by SVD to a few ranks and those are judged as candidates.

Candidates: ranks at RANK_SHARES of the hidden size (MiniLM: 256, 192, 128, 96, 64, 48), below the model's
own rank, and only where the two factors are smaller than the table (model/config.py's is_factorised). Each
rank's model is `model/svd.py`'s factorise of the rewired model (the best rank-r approximation of the table,
nothing trained), so every (rank x width x depth x format x precision) is predicted by select/costs.py,
which counts factorised tables, and the profile's latency/memory models, and judged by the selector's rule
(p90 bounds). The (width, depth) are those the model serves: its measured quality table's (the grid it was
trained at), else the whole grid. Only the (rank, width, depth) that fit somewhere get a quality figure.

Quality: the proxy (select/proxy.py), the mean cosine of each truncated sub-network's mean-pooled embedding
to the *uncompressed* model's full network on the held-out calibration texts, and not a measured dev score,
even when the model has a measured quality table. Why: export has no dev data (its `--data` belongs to
--early-exit, and quality.json's `data` is a name such as "rotten-tomatoes" or a path on another machine);
scoring data lives in train/, above this layer; the proxy works for encoders and classifiers alike and ranks
the candidates on one scale (the uncompressed model, which fits nothing here, is not compared with them, so
its measured figures and the proxy never meet in one ranking); and an untrained truncation's dev score would
not be what `edgebert compress` delivers after distillation either. int8/fp16 candidates carry their fp32
proxy as an upper bound and say so. Every figure's source says "proxy, untrained (SVD only)".

What a user gets: the best-quality fitting candidate is exported (the truncated slice, with the artifacts'
usual parity check against it), and the manifest (`selection.embedding_rank`), report.md and the command's
summary say "embedding rank R chosen by the proxy, untrained (SVD only); quality figure X is a proxy, not
measured", with the `edgebert compress --embedding-rank R` command that trains it. Why export rather than
refuse: the user asked for an artifact that fits, and the issue asks the selector to choose among ranks and
say so; an SVD truncation is the exact best approximation of its rank (at 128 of MiniLM's 384, 1 point
after 100 distillation steps in README's compress table, so the untrained figure is a floor, not a cliff);
refusing would leave a user with nothing but a training run of tens of minutes to hours to start. The
quality figure is printed so that a low one is seen. When no rank fits either, BudgetError (exit 3) names
the smallest reachable predicted memory (and latency) over the uncompressed model and every rank.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Callable

from edgebert.errors import BudgetError
from edgebert.model.bert import BertConfig
from edgebert.model.config import is_factorised
from edgebert.model.loaded import Loaded
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.svd import factorise
from edgebert.select.budget import Budget
from edgebert.select.choose import selection_section
from edgebert.select.costs import costs
from edgebert.select.proxy import PROXY_SEQ_LEN, proxy_quality, proxy_texts
from edgebert.select.quality import quality_for
from edgebert.select.selector import Candidate, Selection, Verdict, round_up, select

__all__ = ["RANK_SHARES", "embedding_ranks", "rank_selection"]

RANK_SHARES = (2 / 3, 1 / 2, 1 / 3, 1 / 4, 1 / 6, 1 / 8)  # of the hidden size; compress --memory searches these too

# The selection of one config with a quality table, as export judges the model itself (choose.choose with the
# request's formats, precisions and budgets): deploy passes it in.
ChooseConfig = Callable[[BertConfig, dict], Selection]

_PENDING = (0.0, "placeholder: the fit is judged on predictions before any proxy is measured")


def embedding_ranks(config: BertConfig) -> tuple[int, ...]:
    """The ranks to try, largest first: below the table's own rank and smaller than the table as two factors."""
    h, v = config.hidden_size, config.vocab_size
    top = config.embedding_rank if is_factorised(v, h, config.embedding_rank) else h
    ranks = sorted({max(1, round(s * h)) for s in RANK_SHARES}, reverse=True)
    return tuple(r for r in ranks if r < top and is_factorised(v, h, r))


def _label(rank: int) -> str:
    return f"embedding rank {rank} (untrained, SVD)"


def _verdicts(choose_config: ChooseConfig, config: BertConfig, quality: dict) -> tuple[Verdict, ...]:
    try:
        return choose_config(config, quality).verdicts
    except BudgetError as err:
        verdicts = getattr(err, "verdicts", None)  # select() keeps every candidate it judged on the error
        if verdicts is None:
            raise
        return verdicts


def rank_selection(
    loaded: Loaded, choose_config: ChooseConfig, budget: Budget, nothing: BudgetError, progress: bool
) -> tuple[Loaded, Candidate, dict]:
    """(the truncated model to export, the chosen candidate, the manifest's `selection`) over untrained
    embedding ranks, after `nothing` (the uncompressed model's BudgetError). Raises BudgetError (exit 3),
    naming the smallest reachable predicted memory, when no rank fits either."""
    source, _ = loaded.for_slicing(SubnetSpec(0.5, 1.0), True, progress)  # the rewired model, as exported
    ranks = embedding_ranks(source.config)
    configs = {r: replace(source.config, embedding_rank=r) for r in ranks}
    # The sub-networks the model itself serves: its measured table's (those it was trained at), else the grid.
    served = set(quality_for(loaded, progress)[0])
    grid = (SubnetSpec(w, d) for w in WIDTHS for d in DEPTHS)
    specs = [s for s in grid if s.fits(source.config.heads, source.config.ffn) and s.key in served]
    pending = {s.key: _PENDING for s in specs}
    first = {r: _verdicts(choose_config, configs[r], pending) for r in ranks}
    fitting = {r: sorted({v.candidate.spec.key for v in vs if v.fits}) for r, vs in first.items()}
    if not any(fitting.values()):
        raise _unreachable(nothing, first, budget)
    texts = proxy_texts()
    tables, cands = {}, []
    for r in ranks:
        keys = fitting[r]
        table = {s.key: (None, "proxy not measured: no format or precision of it fits (predicted)") for s in specs}
        if keys:
            scores = proxy_quality(
                factorise(source, r, source.config.weight_rank),
                loaded.tokenizer,
                texts,
                [SubnetSpec.from_key(k) for k in keys],
                seq_len=PROXY_SEQ_LEN,
                reference=loaded.full,
            )
            table.update({k: (score, _proxy_source(r, len(texts))) for k, (score, _) in scores.items()})
        tables[r] = table
        verdicts = _verdicts(choose_config, configs[r], table)
        cands += [dataclasses.replace(v.candidate, variant=_label(r)) for v in verdicts]
    selection = select(cands, budget.latency_ms, budget.memory_mb)
    rank = next(r for r in ranks if _label(r) == selection.chosen.variant)
    scored = {k: v for k, v in tables[rank].items() if v[0] is not None}
    truncated = _truncated(loaded, rank, (scored, _proxy_source(rank, len(texts))))
    section = selection_section(selection, _proxy_source(rank, len(texts)))
    section["embedding_rank"] = _section(loaded, rank, selection.chosen, nothing, first, tables)
    section["why"] += (
        f"; over untrained SVD ranks of the embedding table, rank {rank} won (nothing of the model itself fits and "
        "its folder holds no compressed variant)"
    )
    return truncated, selection.chosen, section


def _proxy_source(rank: int, n: int) -> str:
    return (
        f"proxy, untrained (SVD only, embedding rank {rank}): mean cosine of the truncated sub-network's embedding "
        f"to the uncompressed full model's on {n} held-out calibration texts; not measured on data"
    )


def _truncated(loaded: Loaded, rank: int, quality: tuple[dict, str]) -> Loaded:
    """The model to export: its word table (and its rewired copy's, so export records the rewiring as usual)
    truncated to `rank`; the same function either way at full width, since rewiring does not touch the table."""

    def cut(m):
        return None if m is None else factorise(m, rank, m.config.weight_rank).eval()

    return Loaded(loaded.model_dir, cut(loaded.full), loaded.tokenizer, cut(loaded.rewired), loaded.rewiring, quality)


def _advice(loaded: Loaded, rank: int) -> tuple[str, str]:
    """(the command that trains this rank, what to do with its output)."""
    folder = loaded.model_dir
    if (folder / "quality.json").is_file():  # trained into the folder, export compares it as a variant
        return (
            f"edgebert compress --model {folder} --embedding-rank {rank} --data DATA --eval DEV --out {folder}/r{rank}",
            "DEV: the data its quality.json was measured on; export then finds the variant in the model folder",
        )
    name = folder.resolve().name if folder.resolve().name != "model" else folder.resolve().parent.name
    out = f"{name}-r{rank}"
    task = " --task embedding" if loaded.full.config.task == "embedding" else ""  # compress assumes a classifier
    return (
        f"edgebert compress --model {folder}{task} --embedding-rank {rank} --data DATA --out {out}",
        f"then export --model {out}",
    )


def _section(loaded: Loaded, rank: int, chosen: Candidate, nothing: BudgetError, first: dict, tables: dict) -> dict:
    full = costs(loaded.full.config, chosen.seq_len)
    mine = costs(replace(loaded.full.config, embedding_rank=rank), chosen.seq_len, chosen.spec)
    advice, then = _advice(loaded, rank)
    says = (
        f"embedding rank {rank} chosen by the proxy, untrained (SVD only); quality figure {chosen.quality:.4f} is a "
        f"proxy, not measured; for better quality run `{advice}` ({then})"
    )
    considered = []
    for r, verdicts in first.items():
        mem = [v.candidate.memory.upper for v in verdicts if v.candidate.memory is not None]
        scored = {k: round(q, 4) for k, (q, _) in tables[r].items() if q is not None}
        considered.append(
            {
                "rank": r,
                "fitting_subnetworks": sorted(scored),
                "proxy": scored,
                "smallest_predicted_memory_p90_mb": round(min(mem), 3) if mem else None,
            }
        )
    return {
        "rank": rank,
        "hidden_size": loaded.full.config.hidden_size,
        "trained": False,
        "how": "the word-embedding table truncated by SVD at export time (model/svd.py factorise); nothing trained",
        "quality": {"figure": chosen.quality, "kind": "proxy", "measured": False, "source": chosen.quality_source},
        "predicted_weight_mb": {
            "chosen": round(mine.weight_bytes(chosen.precision, chosen.format) / 1e6, 3),
            "uncompressed_w1_d1": round(full.weight_bytes(chosen.precision, chosen.format) / 1e6, 3),
            "source": f"predicted: select/costs.py, {chosen.format} {chosen.precision}",
        },
        "considered": considered,
        "uncompressed": {"fits": False, "why": str(nothing)},
        "why_this_branch": "no candidate of the model fits and its folder holds no compressed variant",
        "advice": advice,
        "says": says,
    }


def _unreachable(nothing: BudgetError, first: dict, budget: Budget) -> BudgetError:
    """Exit 3 naming the smallest predicted memory and latency bounds reachable by the model or any rank."""
    base = [v.candidate for v in getattr(nothing, "verdicts", ()) if v.candidate.latency is not None]
    ranked = [dataclasses.replace(v.candidate, variant=_label(r)) for r, vs in first.items() for v in vs]
    known = base + [c for c in ranked if c.latency is not None]
    if not ranked or not known:
        raise nothing  # nothing a rank changes (no latency coefficients at all): the selector's own message
    ranks = ", ".join(str(r) for r in first)
    relax, parts = [], []
    fastest = min(known, key=lambda c: c.latency.upper)
    parts.append(f"the fastest reaches {fastest.latency.upper:.3g} ms (p90 bound: {fastest.label})")
    if fastest.latency.upper > budget.latency_ms:
        relax.append(f"a --budget of at least {round_up(fastest.latency.upper)} ms")
    with_memory = [c for c in known if c.memory is not None]
    if with_memory:
        smallest = min(with_memory, key=lambda c: c.memory.upper)
        parts.append(
            f"the smallest reachable predicted memory is {smallest.memory.upper:.3g} MB (p90 bound: {smallest.label})"
        )
        if smallest.memory.upper > budget.memory_mb:
            relax.append(f"a --memory of at least {round_up(smallest.memory.upper)} MB")
            relax.append(
                f"a model trained smaller: `edgebert compress --memory {budget.memory_mb:g}MB --device D --data DATA` "
                "also factorises the encoder's matrices and prunes"
            )
    if fastest.latency.upper > budget.latency_ms:
        relax.append("a shorter --seq-len, more threads or other --formats/precisions")
    err = BudgetError(
        f"no candidate fits {budget.latency_ms:g} ms and {budget.memory_mb:g} MB, neither the model nor its "
        f"word-embedding table truncated by SVD (untrained) to rank {ranks}: {'; '.join(parts)}. "
        f"Relax the limits: {'; or '.join(relax)}."
    )
    err.verdicts = tuple(getattr(nothing, "verdicts", ()))
    return err
