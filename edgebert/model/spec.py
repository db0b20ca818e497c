"""SubnetSpec: which sub-network to take: DynaBERT's width and depth multipliers, or a per-layer plan.

A uniform spec keeps the first round(width·heads) heads and round(width·ffn) neurons of every layer and
the layers of DynaBERT's depth rule. A per-layer spec (found by `edgebert search`) names the source layers
it keeps (any ascending subset) and the head count and FFN width of each; its width and depth are then
summaries for names and reports (the kept share of the kept layers' heads and neurons; the kept share of
layers), and `plan()` is the one place every stage reads a sub-network's per-layer shape from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from edgebert.errors import SpecError
from edgebert.model.config import BertConfig

__all__ = ["subnet_config", "SubnetSpec", "WIDTHS", "DEPTHS", "kept_count", "kept_layers"]

# DynaBERT's grid (paper and code): the sub-networks a dynamic model is trained to serve.
WIDTHS = (0.25, 0.5, 0.75, 1.0)
DEPTHS = (0.5, 0.75, 1.0)


def kept_count(multiplier: float, n: int) -> int:
    """round(m*n), halves rounded up (Python's round() would round 1.5 and 2.5 both to 2)."""
    return int(math.floor(multiplier * n + 0.5 + 1e-9))


def kept_layers(depth: float, n_layers: int) -> list[int]:
    """DynaBERT's depth rule: keep layer floor(i/d) for i in range(round(d*L))."""
    return [int(math.floor(i / depth + 1e-9)) for i in range(kept_count(depth, n_layers))]


def _ints(name: str, values) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise SpecError(f"{name} must be a list of whole numbers, got {values!r}") from None
    if any(isinstance(v, bool) or float(v) != int(v) for v in values):
        raise SpecError(f"{name} must be a list of whole numbers, got {values!r}")
    return out


@dataclass(frozen=True)
class SubnetSpec:
    width: float = 1.0
    depth: float = 1.0
    # Per-layer plan (empty: uniform). layers: source layers kept, ascending; heads/ffn: one per kept layer.
    layers: tuple[int, ...] = ()
    heads: tuple[int, ...] = ()
    ffn: tuple[int, ...] = ()

    def __post_init__(self):
        for name in ("width", "depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 < float(v) <= 1.0):
                raise SpecError(
                    f"{name} must be a number in (0, 1], got {v!r}; DynaBERT's grid is "
                    f"{WIDTHS if name == 'width' else DEPTHS}"
                )
            object.__setattr__(self, name, float(v))
        for name in ("layers", "heads", "ffn"):
            object.__setattr__(self, name, _ints(name, getattr(self, name)))
        if not (self.layers or self.heads or self.ffn):
            return
        if not (len(self.layers) == len(self.heads) == len(self.ffn)):
            raise SpecError(
                f"a per-layer spec needs one head count and one FFN width per kept layer, got "
                f"{len(self.layers)} layers, {len(self.heads)} head counts, {len(self.ffn)} FFN widths"
            )
        if any(b <= a for a, b in zip(self.layers, self.layers[1:])) or self.layers[0] < 0:
            raise SpecError(f"kept layers must be distinct, ascending source-layer indices >= 0, got {self.layers}")
        if min(self.heads) < 1 or min(self.ffn) < 1:
            raise SpecError(f"every kept layer needs >= 1 head and >= 1 FFN neuron, got {self.heads} / {self.ffn}")

    @property
    def per_layer(self) -> bool:
        return bool(self.layers)

    @classmethod
    def from_layers(cls, config: BertConfig, layers, heads, ffn) -> "SubnetSpec":
        """A per-layer spec for a model shaped like `config`, with its width/depth summaries filled in."""
        layers, heads, ffn = tuple(layers), tuple(heads), tuple(ffn)
        if not layers:
            raise SpecError("a per-layer spec must keep at least one layer")
        probe = cls(layers=layers, heads=heads, ffn=ffn)
        probe.check_fits(config.heads, config.ffn)
        shares = [(h / config.heads[i] + f / config.ffn[i]) / 2 for i, h, f in zip(layers, heads, ffn)]
        width = max(round(sum(shares) / len(shares), 3), 0.001)
        return replace(probe, width=width, depth=max(round(len(layers) / config.num_layers, 3), 0.001))

    def plan(self, heads: tuple[int, ...], ffn: tuple[int, ...]) -> tuple[tuple[int, int, int], ...]:
        """(source layer, heads kept, FFN neurons kept) of every kept layer of a model with these shapes."""
        self.check_fits(heads, ffn)
        if self.per_layer:
            return tuple(zip(self.layers, self.heads, self.ffn))
        return tuple(
            (i, kept_count(self.width, heads[i]), kept_count(self.width, ffn[i]))
            for i in kept_layers(self.depth, len(heads))
        )

    def narrows(self, heads: tuple[int, ...], ffn: tuple[int, ...]) -> bool:
        """True if some kept layer keeps fewer heads or neurons than it has (then rewiring matters)."""
        return any(h < heads[i] or f < ffn[i] for i, h, f in self.plan(heads, ffn))

    @property
    def key(self) -> str:
        """Stable key used in quality tables: 'w0.5-d0.75'; per-layer: 'w0.61-d0.667-L0h6f768_2h12f1536'."""
        base = f"w{self.width:g}-d{self.depth:g}"
        if not self.per_layer:
            return base
        return base + "-L" + "_".join(f"{i}h{h}f{f}" for i, h, f in zip(self.layers, self.heads, self.ffn))

    @classmethod
    def from_key(cls, key: str) -> "SubnetSpec":
        try:
            parts = key.split("-")
            w, d = parts[0], parts[1]
            if len(parts) == 2:
                return cls(float(w.lstrip("w")), float(d.lstrip("d")))
            (plan,) = parts[2:]
            if not plan.startswith("L"):
                raise ValueError
            rows = [row.replace("h", " ").replace("f", " ").split() for row in plan[1:].split("_")]
            layers, heads, ffn = zip(*((int(i), int(h), int(f)) for i, h, f in rows))
            return cls(float(w.lstrip("w")), float(d.lstrip("d")), layers, heads, ffn)
        except (ValueError, IndexError):
            raise SpecError(
                f"bad sub-network key {key!r}: expected like 'w0.5-d0.75' or 'w0.61-d0.667-L0h6f768_2h12f1536'"
            ) from None

    def to_dict(self) -> dict:
        d = {"width": self.width, "depth": self.depth}
        if self.per_layer:
            d.update(layers=list(self.layers), heads=list(self.heads), ffn=list(self.ffn))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SubnetSpec":
        return cls(
            width=d["width"],
            depth=d["depth"],
            layers=d.get("layers", ()),
            heads=d.get("heads", ()),
            ffn=d.get("ffn", ()),
        )

    def fits(self, heads: tuple[int, ...], ffn: tuple[int, ...]) -> bool:
        """True if this spec keeps at least one layer, head and neuron of a model with these shapes."""
        try:
            self.check_fits(heads, ffn)
        except SpecError:
            return False
        return True

    def check_fits(self, heads: tuple[int, ...], ffn: tuple[int, ...]) -> None:
        """Raise SpecError if this spec leaves a layer with no heads/neurons, or no layers, or asks for more
        layers, heads or neurons than the model has."""
        if self.per_layer:
            self._check_plan(heads, ffn)
            return
        if not kept_layers(self.depth, len(heads)):
            raise SpecError(f"depth {self.depth:g} of {len(heads)} layers keeps no layer; use a larger --depth")
        for i, (h, f) in enumerate(zip(heads, ffn)):
            if kept_count(self.width, h) < 1:
                raise SpecError(
                    f"width {self.width:g} keeps 0 of the {h} attention heads of layer {i}; "
                    f"use --width >= {0.5 / h:.3g}"
                )
            if kept_count(self.width, f) < 1:
                raise SpecError(f"width {self.width:g} keeps 0 of the {f} FFN neurons of layer {i}")

    def _check_plan(self, heads: tuple[int, ...], ffn: tuple[int, ...]) -> None:
        if self.layers[-1] >= len(heads):
            raise SpecError(f"the spec keeps layer {self.layers[-1]}, but the model has {len(heads)} layers (0-based)")
        for i, h, f in zip(self.layers, self.heads, self.ffn):
            if h > heads[i] or f > ffn[i]:
                raise SpecError(
                    f"the spec keeps {h} heads and {f} FFN neurons of layer {i}, which has {heads[i]} and {ffn[i]}"
                )


def subnet_config(config: BertConfig, spec: SubnetSpec) -> BertConfig:
    """The config slice_model(model, spec) would produce, without touching weights."""
    plan = spec.plan(config.heads, config.ffn)  # checks that spec fits
    return replace(
        config,
        heads=tuple(h for _, h, _ in plan),
        ffn=tuple(f for _, _, f in plan),
        source_layers=tuple(config.source_layers[i] for i, _, _ in plan),
    )
