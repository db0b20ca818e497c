"""Leave-one-out check of how phone/board latency coefficients are scaled from published figures.

    PYTHONPATH=. python benchmarks/profile_error.py

The estimated profiles (device_profiles/{pixel6,pixel8,galaxy-s23,raspberry-pi-*,jetson-orin-nano}.yaml)
get their matrix rate from one constant, GMAC/s per core-GHz, taken from phone big-core figures
(Pixel 4 BERT_BASE, Pixel 3a MobileNet v1), times the clocks of the cores the threads run on. This
script re-derives that constant from all phone figures but the held-out one (the geometric mean of
their per-core-GHz rates), predicts the held-out figure and prints the error. Board figures are
predicted from all phone figures, as jetson-orin-nano and raspberry-pi-5 are.

Columns: rel = (predicted - published) / published, the |error| that latency.py's expected_error and
error_p90 describe; p90 needs = published / predicted - 1, what error_p90 must reach for the p90
bound, predicted x (1 + error_p90), to cover the figure (rel understates it for predictions that are
too fast: a figure 3x the prediction is rel -67 % but needs +200 %).

The figures and their sources are data: benchmarks/data/published_latency.yaml.
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from edgebert.model.config import BertConfig
from edgebert.select.costs import costs

DATA = Path(__file__).resolve().parent / "data" / "published_latency.yaml"
COMMAND = "PYTHONPATH=. python benchmarks/profile_error.py"
# Which class's leave-one-out error applies to each estimated profile.
CLASSES = {
    "pixel6": "phones",
    "pixel8": "phones",
    "galaxy-s23": "phones",
    "raspberry-pi-4": "boards",
    "raspberry-pi-5": "boards",
    "jetson-orin-nano": "boards",
}
# Fewer held-out figures than this in a class: its median and p90 are printed but not called derived.
MIN_FIGURES = 5
# The class the per-core-GHz constant is taken from (the profiles take it from phone big cores).
CONSTANT_FROM = "phones"


@dataclass(frozen=True)
class Figure:
    id: str
    device: str
    klass: str
    gmac: float
    threads: int
    core_ghz: float  # summed over the cores the threads ran on
    latency_ms: float
    source: str

    @property
    def rate(self) -> float:
        """GMAC/s per core-GHz this figure implies."""
        return self.gmac / (self.latency_ms / 1e3) / self.core_ghz


@dataclass(frozen=True)
class Row:
    figure: Figure
    predicted_ms: float
    from_ids: tuple[str, ...]

    @property
    def rel(self) -> float:
        return (self.predicted_ms - self.figure.latency_ms) / self.figure.latency_ms

    @property
    def p90_needs(self) -> float:
        return self.figure.latency_ms / self.predicted_ms - 1.0


def _bert_base_gmac() -> float:
    cfg = BertConfig(vocab_size=30522, hidden_size=768, heads=(12,) * 12, ffn=(3072,) * 12, head_dim=64)
    return costs(cfg, 128).total_macs / 1e9


def load_figures(path: Path = DATA) -> list[Figure]:
    doc = yaml.safe_load(path.read_text())
    out = []
    for f in doc["figures"]:
        gmac = _bert_base_gmac() if f["gmac"] == "bert-base-128" else float(f["gmac"])
        if len(f["cores_ghz"]) != f["threads"]:
            raise ValueError(f"{path}: {f['id']}: one clock per thread expected")
        out.append(
            Figure(
                f["id"], f["device"], f["class"], gmac, f["threads"], sum(f["cores_ghz"]), f["latency_ms"], f["source"]
            )
        )
    return out


def leave_one_out(figures: list[Figure]) -> list[Row]:
    rows = []
    for held in figures:
        pool = [f for f in figures if f.klass == CONSTANT_FROM and f.id != held.id]
        k = math.exp(statistics.fmean(math.log(f.rate) for f in pool))
        rows.append(Row(held, held.gmac / (k * held.core_ghz) * 1e3, tuple(f.id for f in pool)))
    return rows


def class_stats(rows: list[Row]) -> dict[str, dict]:
    """Per class: n, median and p90 of |rel| (as latency.py's fit reports them), largest p90_needs."""
    out = {}
    for klass in sorted({r.figure.klass for r in rows}):
        rs = [r for r in rows if r.figure.klass == klass]
        rel = np.array([abs(r.rel) for r in rs])
        out[klass] = {
            "n": len(rs),
            "devices": len({r.figure.device for r in rs}),
            "median": float(np.median(rel)),
            "p90": float(np.percentile(rel, 90)),
            "max_p90_needs": max(r.p90_needs for r in rs),
            "derived": len(rs) >= MIN_FIGURES,
        }
    return out


def report(rows: list[Row]) -> str:
    lines = [
        f"$ {COMMAND}",
        f"leave-one-out: constant = geometric mean of GMAC/s per core-GHz over the other {CONSTANT_FROM} figures",
        "",
        f"{'figure':<26} {'device':<30} {'rate':>5} {'predicted':>10} {'published':>10} {'rel':>7} {'p90 needs':>10}",
    ]
    for r in rows:
        f = r.figure
        lines.append(
            f"{f.id:<26} {f.device:<30} {f.rate:>5.2f} {r.predicted_ms:>8.1f}ms {f.latency_ms:>8.0f}ms "
            f"{100 * r.rel:>+6.1f}% {100 * r.p90_needs:>+9.0f}%"
        )
    lines.append("")
    for klass, s in class_stats(rows).items():
        verdict = "derived" if s["derived"] else f"TOO FEW to derive a band (< {MIN_FIGURES} figures)"
        lines.append(
            f"{klass}: n={s['n']} figures from {s['devices']} devices; median |rel| {100 * s['median']:.1f}%, "
            f"p90 |rel| {100 * s['p90']:.1f}%, largest p90 needs {100 * s['max_p90_needs']:+.0f}% -- {verdict}"
        )
    lines.append("rate: GMAC/s per core-GHz the figure implies; sources in " + str(DATA.relative_to(DATA.parents[2])))
    return "\n".join(lines)


def main() -> int:
    print(report(leave_one_out(load_figures())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
