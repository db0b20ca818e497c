"""export(config): load → rewire → slice → convert → verify → (measure) → manifest, written atomically."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from edgebert import __version__
from edgebert.artifact import PRECISIONS, ArtifactConfig, ModelCard, check_seq_len
from edgebert.errors import UsageError
from edgebert.export.atomic import atomic_dir, check_output_dir
from edgebert.export.card import model_card
from edgebert.export.gate import gate_threshold, gated
from edgebert.export.manifest import SCHEMA, SUBNET_DIR, write_manifest
from edgebert.export.verify import check, verify
from edgebert.hashing import now_iso, sha256_file
from edgebert.model.bert import Bert
from edgebert.model.compression import manifest_section
from edgebert.model.loaded import Loaded, load, weights_sha256
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import copy_tokenizer_files
from edgebert.registry import CONVERTERS

__all__ = ["ExportConfig", "export", "validate_config", "convert_and_verify", "base_manifest", "SUBNET_DIR"]


@dataclass(frozen=True)
class ExportConfig:
    out: str
    model: str | None = None  # None: the built-in default (packaged MiniLM)
    spec: SubnetSpec = SubnetSpec()
    formats: tuple[str, ...] = ("onnx", "tflite", "torchscript")
    precision: str = "fp32"
    seq_len: int = 128  # the longest input; with buckets, the largest bucket
    force: bool = False
    rewire: bool = True  # rewire a model that has not been rewired yet (no-op at width 1.0)
    threads: int = 1
    buckets: tuple[int, ...] = ()  # sequence-length buckets, ascending, ending at seq_len; () for one length
    # The accuracy gate for int8/fp16 (export/gate.py): accuracy points for classifiers, cosine for encoders;
    # None: the default (0.5 points / 0.005 cosine).
    max_quality_drop: float | None = None

    @classmethod
    def lengths_fields(cls, lengths) -> dict:
        """{seq_len, buckets} from --seq-len's parsed value: one int, or a tuple of ascending lengths."""
        lengths = (lengths,) if isinstance(lengths, int) else tuple(lengths)
        return {"seq_len": lengths[-1], "buckets": lengths if len(lengths) > 1 else ()}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["spec"] = self.spec.to_dict()
        d["formats"] = list(self.formats)
        d["buckets"] = list(self.buckets)
        return d


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
    if max_positions is not None:
        for n in cfg.buckets or (cfg.seq_len,):
            check_seq_len(n, max_positions)
    if cfg.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {cfg.threads}")
    if full is not None:
        gate_threshold(full.config.task, cfg.max_quality_drop)  # a bad --max-quality-drop is exit 2, before any work
    check_output_dir(Path(cfg.out), cfg.force)
    return converters


def _artifact_entry(
    conv, acfg: ArtifactConfig, requested: str, path: Path, facts: dict, parity: dict, notes: list
) -> dict:
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


def _interrupt_in(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM somewhere in `exc`'s chain of causes, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def _interrupts_unwrapped():
    """Exporters catch everything and re-raise their own error (torch.export's TorchExportError, 1 run in 6
    in issue 11): an interrupt is still an interrupt, so re-raise the original (exit 130, or 143 for SIGTERM)."""
    try:
        yield
    except Exception as exc:
        interrupt = _interrupt_in(exc)
        if interrupt is None:
            raise
        raise interrupt from None


def convert_and_verify(
    sub: Bert, tokenizer, conv, acfg: ArtifactConfig, folder: Path, threads: int, card: ModelCard | None = None
) -> dict:
    """Convert one artifact, write its model card into it, load it in its own runtime, compare with PyTorch.
    Raises ParityError. The card goes in before verification, so the verified bytes are the published ones."""

    requested = acfg.precision
    precision, note = conv.resolve_precision(requested)
    acfg = dataclasses.replace(acfg, precision=precision)
    path = folder / ("model" + conv.suffix)
    t0 = time.perf_counter()
    with _interrupts_unwrapped():
        facts = conv.convert(sub, acfg, path) or {}
        seconds = time.perf_counter() - t0
        described = conv.describe(path, card or model_card(sub, tokenizer, name=f"edgebert {sub.output_name}"))
        buckets = _bucket_entries(conv, acfg, facts)
        if buckets:
            parity = _verify_buckets(sub, tokenizer, conv, acfg, path, threads, buckets)
        else:
            parity = verify(sub, conv.load(path, threads=threads), tokenizer, conv, acfg)
    check(parity, f"{path.name} ({conv.name} {precision})")  # a failing artifact never gets published
    entry = _artifact_entry(conv, acfg, requested, path, facts, parity, [note] if note else [])
    if buckets:
        entry["buckets"] = buckets
    entry["conversion_seconds"] = round(seconds, 2)
    entry["recipe"] = acfg.quant_recipe
    entry["metadata"] = described
    return entry


def _bucket_entries(conv, acfg: ArtifactConfig, facts: dict) -> list[dict]:
    """The manifest's buckets of one artifact: a signature each in a static file; one dynamic graph serves
    every length of the others (signature null), verified and measured at each length all the same."""
    if not acfg.buckets:
        return []
    given = {b["seq_len"]: b for b in facts.get("buckets", [])}
    return [
        {
            "signature": given.get(n, {}).get("signature"),
            "seq_len": n,
            "inputs": given.get(n, {}).get("inputs", facts.get("inputs", [])),
            "latency": {"predicted": None, "measured": []},
        }
        for n in acfg.buckets
    ]


def _verify_buckets(sub, tokenizer, conv, acfg: ArtifactConfig, path: Path, threads: int, buckets) -> dict:
    """Each bucket against PyTorch at its own length (texts cut at it); raises ParityError naming the bucket.
    Returns the artifact's overall figures: the worst of its buckets."""
    shared = None if not conv.dynamic_shapes else conv.load(path, threads=threads)
    for b in buckets:
        runtime = shared if shared is not None else conv.load(path, threads=threads, signature=b["signature"])
        one = dataclasses.replace(acfg, seq_len=b["seq_len"], buckets=())
        b["parity"] = verify(sub, runtime, tokenizer, conv, one)
        what = f"signature {b['signature']}" if b["signature"] else f"length {b['seq_len']}"
        check(b["parity"], f"{path.name} ({conv.name} {acfg.precision}, {what})")
    return _worst([b["parity"] for b in buckets])


def _worst(parities: list[dict]) -> dict:
    n = sum(p["n_inputs"] for p in parities)
    agreements = [p["argmax_agreement"] for p in parities if p["argmax_agreement"] is not None]
    return {
        **parities[-1],
        "max_abs_diff": max(p["max_abs_diff"] for p in parities),
        "mean_abs_diff": sum(p["mean_abs_diff"] * p["n_inputs"] for p in parities) / n,
        "min_cosine": min(p["min_cosine"] for p in parities),
        "mean_cosine": sum(p["mean_cosine"] * p["n_inputs"] for p in parities) / n,
        "argmax_agreement": min(agreements) if agreements else None,
        "n_inputs": n,
        "batch_sizes": sorted({s for p in parities for s in p["batch_sizes"]}),
        "seq_lens": sorted({s for p in parities for s in p["seq_lens"]}),
        "failures": [f for p in parities for f in p["failures"]],
        "passed": all(p["passed"] for p in parities),
        "per_bucket": "buckets[].parity",
    }


def base_manifest(
    model_dir: Path, full: Bert, sub: Bert, spec: SubnetSpec, rewiring: dict | None, tok_files: list
) -> dict:

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
        "compression": manifest_section(model_dir, sub),  # issue 15: ranks, sparsity, quality before/after
        "tokenizer": {"files": tok_files},
        "device": None,
        "budget": None,
        "selection": None,
        "artifacts": [],
    }


def export(
    cfg: ExportConfig,
    *,
    progress: bool = True,
    loaded: Loaded | None = None,
    extra_manifest: dict | None = None,
    measure=None,
    finish=None,
) -> dict:
    """Run the whole export; returns the manifest written to cfg.out/manifest.json.

    `measure(entry, path)` (optional) adds measured figures to an artifact entry, and
    `finish(folder, manifest)` writes extra files (the report), before the folder is published;
    `extra_manifest` adds device/budget/selection sections.
    """

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
        source_name = loaded.model_dir.name if loaded.model_dir.name != "model" else loaded.model_dir.parent.name
        card = model_card(sub, loaded.tokenizer, name=f"{source_name} {cfg.spec.key}")
        for conv in converters:
            bar.step(f"{conv.name} {cfg.precision}: convert + verify")
            acfg = ArtifactConfig(conv.name, cfg.precision, cfg.seq_len, cfg.buckets)
            entry = gated(
                convert_and_verify, sub, loaded.tokenizer, conv, acfg, tmp, cfg.threads, card, cfg.max_quality_drop
            )
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
