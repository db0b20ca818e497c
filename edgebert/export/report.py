"""report.md and pareto.png beside the artifacts: what was chosen, why, and every figure's source."""

from __future__ import annotations

from pathlib import Path

from edgebert.model.compression import report_lines

__all__ = ["write_report", "plot_pareto"]


def plot_pareto(manifest: dict, path: Path) -> bool:
    """Quality vs predicted latency of every candidate, the budget line, the chosen and measured points.

    Returns False (and writes nothing) when matplotlib is not installed: the report says so.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sel, budget = manifest["selection"], manifest["budget"]
    cands = sel["candidates"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for fits, colour, label in ((True, "tab:blue", "fits both budgets"), (False, "tab:gray", "does not fit")):
        # Early-exit candidates (triangles) sit at the latency their budget is judged on (p90 or worst case).
        for ee, marker, kind in ((False, "o", "candidate"), (True, "^", "early-exit candidate")):
            pts = [c for c in cands if c["fits"] == fits and bool(c.get("early_exit")) == ee]
            if not pts and ee:
                continue
            ax.scatter(
                [c["predicted_latency_ms"] for c in pts],
                [c["quality"] for c in pts],
                s=18,
                c=colour,
                marker=marker,
                alpha=0.7,
                label=f"{kind}, {label} (predicted)",
            )
    ax.axvline(budget["latency_ms"], color="tab:red", ls="--", lw=1, label=f"budget {budget['latency_ms']:g} ms")
    ch = sel["chosen"]
    ax.scatter(
        [ch["predicted_latency_ms"]],
        [ch["quality"]],
        s=120,
        marker="*",
        c="tab:orange",
        zorder=5,
        label="chosen (predicted)",
    )
    for a in manifest["artifacts"]:
        for m in a["latency"]["measured"]:
            ax.scatter([m["p50_ms"]], [ch["quality"]], s=50, marker="x", c="black", zorder=6)
    if any(a["latency"]["measured"] for a in manifest["artifacts"]):
        ax.scatter([], [], marker="x", c="black", label="chosen, measured p50")
    ax.set_xscale("log")
    ax.set_xlabel("latency p50, ms (log scale)")
    ax.set_ylabel(f"quality ({sel.get('quality_source', 'see report')[:40]})")
    ax.set_title(f"{manifest['device']['name']}: candidates vs budget")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _candidate_rows(cands: list[dict], limit: int = 25) -> list[str]:
    rows = [
        "| spec | format | precision | early exit | predicted p50 ms | predicted memory MB | quality | fits |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    ordered = sorted(cands, key=lambda c: (-c["quality"], c["predicted_latency_ms"]))
    for c in ordered[:limit]:
        spec = f"{c['variant']} {c['spec']}" if c.get("variant") else c["spec"]  # a compressed variant's, or a rank's
        rows.append(
            f"| {spec} | {c['format']} | {c['precision']} | {_exit_text(c.get('early_exit'))} | "
            f"{c['predicted_latency_ms']:.2f} | "
            f"{c['predicted_memory_mb']:.1f} | {c['quality']:.4f} | {'yes' if c['fits'] else c.get('why', 'no')} |"
        )
    if len(ordered) > limit:
        rows.append(f"| … {len(ordered) - limit} more in manifest.json | | | | | | | |")
    return rows


def _exit_text(ee: dict | None) -> str:
    """An early-exit candidate's policy and latency figures (its p50 column is the figure judged: p90/worst)."""
    if not ee:
        return "-"
    lat = ee["latency"]
    return f"{ee['policy']}: expected {lat['expected_ms']:.2f}, p90 {lat['p90_ms']:.2f}, worst {lat['worst_ms']:.2f} ms"


def _where(m: dict, manifest: dict) -> str:
    if m["where"] == "local" and manifest["device"]["name"] != "host":
        return f"local: this machine ({m.get('device', '?')}), not the {manifest['device']['name']}"
    return m["where"]


def _artifact_rows(manifest: dict) -> list[str]:
    rows = [
        "| file | precision | size MB | parity max abs / min cos | predicted p50 ms | measured p50 ms (where, runs) |",
        "|---|---|---:|---|---:|---|",
    ]
    for a in manifest["artifacts"]:
        p = a["parity"]
        pred = a["latency"]["predicted"]
        meas = (
            "; ".join(f"{m['p50_ms']:.2f} ({_where(m, manifest)}, {m['runs']} runs)" for m in a["latency"]["measured"])
            or "not measured"
        )
        mad = "-" if p.get("max_abs_diff") is None else f"{p['max_abs_diff']:.1e}"
        rows.append(
            f"| {a['file']} | {a['precision']} | {a['size_bytes'] / 1e6:.2f} | {mad} / {p.get('min_cosine', 0):.5f} | "
            f"{'-' if pred is None else format(pred['value'], '.2f')} | {meas} |"
        )
    return rows


def _bucket_rows(manifest: dict) -> list[str]:
    """Every sequence-length bucket of every artifact: its signature (static files), parity and latency."""
    rows = []
    for a in manifest["artifacts"]:
        for b in a.get("buckets") or []:
            p, lat = b.get("parity") or {}, b.get("latency") or {}
            pred = lat.get("predicted")
            meas = "; ".join(
                f"{m['p50_ms']:.2f} ({_where(m, manifest)}, {m['runs']} runs)" for m in lat.get("measured", [])
            )
            rows.append(
                f"| {a['file']} | {b.get('signature') or '(dynamic graph)'} | {b['seq_len']} | "
                f"{p.get('min_cosine', float('nan')):.5f} | {'-' if pred is None else format(pred['value'], '.2f')} | "
                f"{meas or 'not measured'} |"
            )
    if not rows:
        return []
    return [
        "## Sequence-length buckets",
        "",
        "An input runs in the smallest bucket that holds its tokens; the budget applies to "
        f"{manifest['budget'].get('seq_len', '?')} tokens.",
        "",
        "| file | signature | tokens | parity min cos | predicted p50 ms | measured p50 ms (where, runs) |",
        "|---|---|---:|---:|---:|---|",
        *rows,
        "",
    ]


def write_report(manifest: dict, folder: Path) -> Path:
    folder = Path(folder)
    plotted = plot_pareto(manifest, folder / "pareto.png")
    sel, dev, budget = manifest["selection"], manifest["device"], manifest["budget"]
    ch = sel["chosen"]
    lines = [
        f"# edgebert export for {dev['name']}",
        "",
        f"Budget: {budget['latency_ms']:g} ms latency (p50), {budget['memory_mb']:g} MB memory; "
        f"{budget.get('threads', '?')} threads, sequence length {budget.get('seq_len', '?')}.",
        "",
        f"**Chosen:** {ch['spec']} {ch['format']} {ch['precision']}: predicted {ch['predicted_latency_ms']:.2f} ms, "
        f"{ch['predicted_memory_mb']:.1f} MB, quality {ch['quality']:.4f}.",
        "",
        f"Why: {sel['why']}",
        *([f"**Untrained embedding rank:** {sel['embedding_rank']['says']}.", ""] if sel.get("embedding_rank") else []),
        *(
            [
                f"Early exit: {_exit_text(ch['early_exit'])} (exits taken on {ch['early_exit']['latency']['histogram_from']})"
            ]
            if ch.get("early_exit")
            else []
        ),
        "",
        f"- Latency/memory figures marked *predicted* come from: {sel['latency_source']}",
        f"- Quality comes from: {sel['quality_source']}",
        "",
        "## Artifacts",
        "",
        *_artifact_rows(manifest),
        "",
        *_bucket_rows(manifest),
        *report_lines(manifest.get("compression")),
        "## Candidates considered (best quality first)",
        "",
        *_candidate_rows(sel["candidates"]),
        "",
        "![quality vs predicted latency](pareto.png)"
        if plotted
        else "(pareto.png not drawn: matplotlib is not installed; `pip install 'edgebert[report]'`)",
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
