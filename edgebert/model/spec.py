"""SubnetSpec: which DynaBERT sub-network to take (width and depth multipliers)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

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


@dataclass(frozen=True)
class SubnetSpec:
    width: float = 1.0
    depth: float = 1.0

    def __post_init__(self):
        for name in ("width", "depth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 < float(v) <= 1.0):
                raise SpecError(
                    f"{name} must be a number in (0, 1], got {v!r}; DynaBERT's grid is "
                    f"{WIDTHS if name == 'width' else DEPTHS}"
                )
            object.__setattr__(self, name, float(v))

    @property
    def key(self) -> str:
        """Stable key used in quality tables: 'w0.5-d0.75'."""
        return f"w{self.width:g}-d{self.depth:g}"

    @classmethod
    def from_key(cls, key: str) -> "SubnetSpec":
        try:
            w, d = key.split("-")
            return cls(float(w.lstrip("w")), float(d.lstrip("d")))
        except ValueError:
            raise SpecError(f"bad sub-network key {key!r}: expected like 'w0.5-d0.75'") from None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SubnetSpec":
        return cls(width=d["width"], depth=d["depth"])

    def fits(self, heads: tuple[int, ...], ffn: tuple[int, ...]) -> bool:
        """True if this spec keeps at least one layer, head and neuron of a model with these shapes."""
        try:
            self.check_fits(heads, ffn)
        except SpecError:
            return False
        return True

    def check_fits(self, heads: tuple[int, ...], ffn: tuple[int, ...]) -> None:
        """Raise SpecError if this spec leaves a layer with no heads/neurons, or no layers."""
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


def subnet_config(config: BertConfig, spec: SubnetSpec) -> BertConfig:
    """The config slice_model(model, spec) would produce, without touching weights."""
    spec.check_fits(config.heads, config.ffn)
    layers = kept_layers(spec.depth, config.num_layers)
    return replace(
        config,
        heads=tuple(kept_count(spec.width, config.heads[i]) for i in layers),
        ffn=tuple(kept_count(spec.width, config.ffn[i]) for i in layers),
        source_layers=tuple(config.source_layers[i] for i in layers),
    )
