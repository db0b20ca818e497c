"""export(config): load → rewire → slice → convert → verify → (measure) → manifest, written atomically."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from .artifact import MIN_SEQ_LEN, PRECISIONS, ArtifactConfig
from .atomic import atomic_dir, check_output_dir
from .errors import UsageError
from .manifest import SCHEMA, now_iso, sha256_file, write_manifest
from .model import WEIGHTS_FILE, Bert, load_model
from .registry import CONVERTERS
from .spec import SubnetSpec

__all__ = ["ExportConfig", "Loaded", "export", "load", "resolve_model_dir", "weights_sha256"]

SUBNET_DIR = "subnet"  # the sliced PyTorch model in edgebert format, kept for re-verification


@dataclass(frozen=True)
class ExportConfig:
    out: str
    model: str | None = None  # None: the built-in default (packaged MiniLM)
    spec: SubnetSpec = SubnetSpec()
    formats: tuple[str, ...] = ("onnx", "tflite", "torchscript")
    precision: str = "fp32"
    seq_len: int = 128
    force: bool = False
    rewire: bool = True  # rewire a model that has not been rewired yet (no-op at width 1.0)
    threads: int = 1

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict()
        d["formats"] = list(self.formats)
        return d


def resolve_model_dir(model: str | None) -> Path:
    if model is None:
        from .defaults import default_model_dir

        return default_model_dir()
    return Path(model)


def weights_sha256(model_dir: Path) -> str:
    for name in (WEIGHTS_FILE, "pytorch_model.bin"):
        if (model_dir / name).exists():
            return sha256_file(model_dir / name)
    return "0" * 64


def validate_config(cfg: ExportConfig, full: Bert | None = None) -> list:
    """Check everything checkable before any work starts; returns the converter objects."""
    max_positions = None if full is None else full.config.max_position_embeddings
    if full is not None:
        cfg.spec.check_fits(full.config.heads, full.config.ffn)
    if not cfg.formats:
        raise UsageError("no formats given; use --formats with some of: " + ", ".join(CONVERTERS.names()))
    if len(set(cfg.formats)) != len(cfg.formats):
        raise UsageError(f"--formats lists a format twice: {','.join(cfg.formats)}")
    if cfg.precision not in PRECISIONS:
        raise UsageError(f"unknown precision {cfg.precision!r}; choose from {', '.join(PRECISIONS)}")
    converters = [CONVERTERS.get(f)() for f in cfg.formats]
    if max_positions is not None and not (MIN_SEQ_LEN <= cfg.seq_len <= max_positions):
        raise UsageError(f"--seq-len {cfg.seq_len} is out of range: this model takes {MIN_SEQ_LEN}..{max_positions} tokens")
    if cfg.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {cfg.threads}")
    check_output_dir(Path(cfg.out), cfg.force)
    return converters


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
        if not do_rewire or spec.width >= 1.0 or _is_rewired(self.full):
            return self.full, None
        if self.rewired is None:
            from .calibration import calibration_texts
            from .rewire import rewire

            self.rewired, self.rewiring = rewire(self.full, calibration_texts()[:64], self.tokenizer, seq_len=64,
                                                 progress=progress)
        return self.rewired, self.rewiring


def load(model: str | None) -> Loaded:
    from .tokenizer import load_tokenizer

    model_dir = resolve_model_dir(model)
    full = load_model(model_dir)
    return Loaded(model_dir, full, load_tokenizer(model_dir))


def _artifact_entry(conv, acfg: ArtifactConfig, requested: str, path: Path, facts: dict, parity: dict, notes: list) -> dict:
    return {
        "file": path.name,
        "format": conv.name,
        "precision": acfg.precision,
        "requested_precision": requested,
        "seq_len": acfg.seq_len,
        "dynamic_shapes": bool(conv.dynamic_shapes),
        "size_bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "inputs": facts.get("inputs", []),
        "outputs": facts.get("outputs", []),
        "runtime": {"name": conv.runtime, "version": conv.runtime_version()},
        "parity": parity,
        "notes": notes + list(facts.get("notes", [])),
        "latency": {"predicted": None, "measured": []},
        "memory": {"predicted": None, "measured": []},
    }


def _resolve_precision(conv, requested: str) -> tuple[str, str | None]:
    if requested in conv.precisions:
        return requested, None
    if hasattr(conv, "resolve_precision"):
        return conv.resolve_precision(requested)
    raise UsageError(f"format {conv.name} cannot produce {requested}; it supports {', '.join(conv.precisions)}")


def convert_and_verify(sub: Bert, tokenizer, conv, acfg: ArtifactConfig, folder: Path, threads: int) -> dict:
    """Convert one artifact, load it in its own runtime, compare with PyTorch. Raises ParityError."""
    from .verify import check, verify

    requested = acfg.precision
    precision, note = _resolve_precision(conv, requested)
    acfg = dataclasses.replace(acfg, precision=precision)
    path = folder / ("model" + conv.suffix)
    t0 = time.perf_counter()
    facts = conv.convert(sub, acfg, path) or {}
    seconds = time.perf_counter() - t0
    runtime = conv.load(path, threads=threads)
    parity = verify(sub, runtime, tokenizer, conv, acfg)
    check(parity, f"{path.name} ({conv.name} {precision})")  # a failing artifact never gets published
    entry = _artifact_entry(conv, acfg, requested, path, facts, parity, [note] if note else [])
    entry["conversion_seconds"] = round(seconds, 2)
    return entry


def base_manifest(model_dir: Path, full: Bert, sub: Bert, spec: SubnetSpec, rewiring: dict | None, tok_files: list) -> dict:
    from . import __version__

    c = sub.config
    return {
        "schema": SCHEMA,
        "edgebert_version": __version__,
        "created_at": now_iso(),
        "source_model": {
            "path": str(model_dir.resolve()),
            "weights_sha256": weights_sha256(model_dir),
            "task": c.task,
            "labels": list(c.labels),
            "hidden_size": c.hidden_size,
            "layers": full.config.num_layers,
        },
        "subnet": {
            "spec": spec.to_dict(),
            "heads": list(c.heads),
            "ffn": list(c.ffn),
            "source_layers": list(c.source_layers),
            "parameters": sub.num_parameters(),
            "full_parameters": full.num_parameters(),
        },
        "rewiring": rewiring,
        "tokenizer": {"files": tok_files},
        "device": None,
        "budget": None,
        "selection": None,
        "artifacts": [],
    }


def export(cfg: ExportConfig, *, progress: bool = True, loaded: Loaded | None = None, extra_manifest: dict | None = None,
           measure=None, finish=None) -> dict:
    """Run the whole export; returns the manifest written to cfg.out/manifest.json.

    `measure(entry, path)` (optional) adds measured figures to an artifact entry, and
    `finish(folder, manifest)` writes extra files (the report), before the folder is published;
    `extra_manifest` adds device/budget/selection sections.
    """
    from .slicing import slice_model
    from .tokenizer import copy_tokenizer_files

    loaded = loaded or load(cfg.model)
    converters = validate_config(cfg, loaded.full)
    bar = _Progress(len(converters) * (2 if measure else 1) + 2, enabled=progress)
    bar.step("rewire + slice")
    source, rewiring = loaded.for_slicing(cfg.spec, cfg.rewire, progress)
    sub = slice_model(source, cfg.spec).eval()
    with atomic_dir(Path(cfg.out), cfg.force) as tmp:
        sub.save(tmp / SUBNET_DIR)
        tok_files = copy_tokenizer_files(loaded.model_dir, tmp)
        manifest = base_manifest(loaded.model_dir, loaded.full, sub, cfg.spec, rewiring, tok_files)
        manifest.update(extra_manifest or {})
        for conv in converters:
            bar.step(f"{conv.name} {cfg.precision}: convert + verify")
            entry = convert_and_verify(sub, loaded.tokenizer, conv, ArtifactConfig(conv.name, cfg.precision, cfg.seq_len),
                                       tmp, cfg.threads)
            if measure is not None:
                bar.step(f"{conv.name}: measure")
                measure(entry, tmp / entry["file"])
            manifest["artifacts"].append(entry)
        bar.step("manifest")
        if finish is not None:
            finish(tmp, manifest)
        write_manifest(tmp, manifest)
    bar.close()
    return manifest


class _Progress:
    """A stage-level tqdm bar on stderr (conversions take seconds to minutes each)."""

    def __init__(self, total: int, enabled: bool):
        self._bar = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="export", unit="stage", leave=False)
        self._started = False

    def step(self, what: str):
        if self._bar is not None:
            if self._started:
                self._bar.update(1)
            self._started = True
            self._bar.set_postfix_str(what)

    def close(self):
        if self._bar is not None:
            self._bar.close()
