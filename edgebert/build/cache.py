"""The build cache: an entry's inputs, their key, and whether its folder on disk still matches them."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from edgebert import __version__
from edgebert.build.config import BuildConfig, BuildEntry
from edgebert.errors import OutputError
from edgebert.export.manifest import MANIFEST, mismatches, read_manifest
from edgebert.hashing import sha256_file
from edgebert.model.loaded import resolve_model_dir

__all__ = [
    "model_fingerprint",
    "toolchain",
    "cache_inputs",
    "cache_key",
    "changed",
    "mismatches",
    "cached",
    "cache_plan",
]

# Converter toolchains: a new version may write different bytes, so each is part of the cache key.
_TOOLCHAIN = (
    "torch",
    "onnx",
    "onnxscript",
    "onnxruntime",
    "litert-torch",
    "litert-converter",
    "ai-edge-quantizer",
    "ai-edge-litert",
    "executorch",  # installed --no-deps (README); None where it is not
)


def model_fingerprint(model: str | None) -> str:
    """sha256 over every file of the model folder (weights, config, tokenizer, quality.json), and of the
    compressed variants in it (select/variants.py), including those joined by a symbolic link, which
    Path.rglob does not enter before Python 3.13. Hidden folders (`edgebert compress`'s `.NAME.train` work
    folder while it runs) are not inputs."""
    root = resolve_model_dir(model)
    h = hashlib.sha256()
    for p in _model_files(root):
        h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _model_files(root: Path) -> list[Path]:
    files, seen = [], set()
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree: walked once
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        files += [Path(folder) / n for n in names if (Path(folder) / n).is_file()]
    return sorted(files)


def toolchain() -> dict:
    versions = {}
    for dist in _TOOLCHAIN:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def cache_inputs(cfg: BuildConfig, entry: BuildEntry, model_sha: str, toolchain: dict) -> dict:
    """Everything an entry's artifacts depend on (readable: stored beside the key to explain rebuilds)."""
    return {
        "edgebert": __version__,
        "model_files_sha256": model_sha,
        "profile": {
            "name": entry.profile_name,
            "file_sha256": entry.profile_sha256,
            "loaded_sha256": entry.profile_fingerprint,
        },
        "budget": {"latency_ms": entry.latency_ms, "memory_mb": entry.memory_mb},
        "formats": list(cfg.formats) if cfg.formats else None,
        "seq_len": cfg.seq_len,
        "quantize": cfg.quantize,
        "threads": cfg.threads,
        "measure": _measure_inputs(cfg, entry),
        "toolchain": toolchain,
        # Only when set: entries without it keep the keys they were built under.
        **({"search": True} if entry.search else {}),
    }


def _measure_inputs(cfg: BuildConfig, entry: BuildEntry) -> dict:
    """Where and how the entry is measured: its runner settings ([runner] and its own), so that changing
    them measures again. Reaching a target (adb, benchmark_binary, ...) matters only with a target; a
    tool given as a local file counts by its content, as a path on the device by its name."""
    measured = cfg.measure or entry.target is not None
    inputs = {"local": cfg.measure, "target": entry.target.uri if entry.target else None}
    if not measured:
        return inputs
    inputs["settings"] = entry.measuring.to_dict()
    if entry.target is not None:
        options = entry.options.to_dict()
        for name in (
            "adb_path",
            "benchmark_binary",
            "onnx_perf_test",
            "executorch_runner",
            "ssh_identity",
            "ssh_config",
        ):
            if options[name] and Path(options[name]).is_file():
                options[name] = {"path": options[name], "sha256": sha256_file(Path(options[name]))}
        inputs["runner"] = options
    return inputs


def cache_key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def changed(old: dict | None, new: dict) -> str:
    if not old:
        return "built by another edgebert command (no build inputs recorded)"
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "inputs changed: " + ", ".join(keys)


def cached(folder: Path, key: str, inputs: dict) -> tuple[dict | None, str]:
    """(manifest, why) for a cache hit; (None, why not) otherwise."""
    if not (folder / MANIFEST).is_file():
        return None, "not built yet"
    try:
        manifest = read_manifest(folder)
    except OutputError as exc:
        return None, str(exc)
    build = manifest.get("build") or {}
    if build.get("cache_key") != key:
        return None, changed(build.get("inputs"), inputs)
    bad = mismatches(folder, manifest)
    if bad:
        return None, "changed on disk: " + "; ".join(bad)
    failed = [a["file"] for a in manifest.get("artifacts", []) if a["latency"].get("failed")]
    if failed:  # the artifacts are fine, but the target measurement the inputs ask for never happened
        return None, f"measuring {', '.join(failed)} failed last time"
    return manifest, "inputs unchanged"


def cache_plan(cfg: BuildConfig) -> dict[str, tuple[str, dict]]:
    model_sha, versions = model_fingerprint(cfg.model), toolchain()
    return {e.folder: (cache_key(i), i) for e in cfg.entries for i in [cache_inputs(cfg, e, model_sha, versions)]}
