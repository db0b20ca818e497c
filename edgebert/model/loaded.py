"""A source model loaded once: its folder, edgebert module, tokenizer and (once needed) rewired copy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgebert.hashing import sha256_file
from edgebert.model.bert import WEIGHTS_FILE, Bert, load_model
from edgebert.model.packaged import default_model_dir
from edgebert.model.rewire import rewire
from edgebert.model.spec import SubnetSpec
from edgebert.model.texts import calibration_texts
from edgebert.model.tokenizer import load_tokenizer

__all__ = ["Loaded", "load", "resolve_model_dir", "weights_sha256"]


def resolve_model_dir(model: str | None) -> Path:
    if model is None:
        return default_model_dir()
    return Path(model)


def weights_sha256(model_dir: Path) -> str:
    for name in (WEIGHTS_FILE, "pytorch_model.bin"):
        if (model_dir / name).exists():
            return sha256_file(model_dir / name)
    return "0" * 64


def _is_rewired(model: Bert) -> bool:
    return bool(model.config.extra.get("rewired"))


@dataclass
class Loaded:
    """A loaded source model, its tokenizer, and (once computed) its rewired version."""

    model_dir: Path
    full: Bert
    tokenizer: object
    rewired: Bert | None = None
    rewiring: dict | None = None
    quality: tuple[dict, str] | None = None  # (table, source) once the selector has read or measured it

    def for_slicing(self, spec: SubnetSpec, do_rewire: bool, progress: bool) -> tuple[Bert, dict | None]:
        """The model to slice: rewired once (if useful and not done before), then reused."""
        if not do_rewire or not spec.narrows(self.full.config.heads, self.full.config.ffn) or _is_rewired(self.full):
            return self.full, None
        if self.rewired is None:
            self.rewired, self.rewiring = rewire(
                self.full, calibration_texts()[:64], self.tokenizer, seq_len=64, progress=progress
            )
        return self.rewired, self.rewiring


def load(model: str | None) -> Loaded:
    model_dir = resolve_model_dir(model)
    full = load_model(model_dir)
    return Loaded(model_dir, full, load_tokenizer(model_dir))
