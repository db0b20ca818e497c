"""`edgebert build --check`: re-verify what is on disk (files, sha256, parity); builds and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from edgebert.artifact import ArtifactConfig
from edgebert.build.cache import cache_plan, changed, mismatches
from edgebert.build.config import BuildConfig, BuildEntry, select_entries
from edgebert.build.index import INDEX, INDEX_SCHEMA, exit_code, previous_index
from edgebert.errors import EdgebertError, OutputError, ParityError
from edgebert.export.manifest import MANIFEST, SUBNET_DIR, read_manifest
from edgebert.export.verify import check as check_parity
from edgebert.export.verify import verify
from edgebert.model.bert import load_model
from edgebert.model.tokenizer import load_tokenizer
from edgebert.registry import CONVERTERS

__all__ = ["check"]


def _reverify(folder: Path, a: dict, reference, tokenizer) -> dict:
    conv = CONVERTERS.get(a["format"])()
    figures = verify(
        reference,
        conv.load(folder / a["file"], threads=1),
        tokenizer,
        conv,
        ArtifactConfig(a["format"], a["precision"], a["seq_len"]),
    )
    check_parity(figures, f"{folder.name}/{a['file']}")
    return figures


def _check_one(cfg: BuildConfig, entry: BuildEntry, key: str, inputs: dict, previous: dict) -> dict:
    folder = cfg.out / entry.folder
    result = {"name": entry.folder, "status": "ok", "problems": [], "exit_code": 0}
    old = previous.get(entry.folder) or {}
    if not (folder / MANIFEST).is_file():
        if old.get("status") == "over-budget" and old.get("cache_key") == key:
            return {**result, "status": "over-budget", "problems": [old["message"]], "exit_code": 3}
        return {
            **result,
            "status": "mismatch",
            "problems": [f"{folder} has no {MANIFEST}: run edgebert build"],
            "exit_code": 4,
        }
    try:
        manifest = read_manifest(folder)
    except OutputError as exc:
        return {**result, "status": "mismatch", "problems": [str(exc)], "exit_code": 4}
    problems = [f"{entry.folder}/{p}" for p in mismatches(folder, manifest)]
    if (manifest.get("build") or {}).get("cache_key") != key:
        problems.append(
            f"{entry.folder} is stale ({changed((manifest.get('build') or {}).get('inputs'), inputs)}): "
            "run edgebert build"
        )
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
    return {
        **result,
        "status": "mismatch" if problems else "ok",
        "problems": problems,
        "exit_code": 4 if problems else 0,
    }


def _check_index(out: Path) -> dict | None:
    """index.json is what CI uploads and gates on: a truncated or missing one is a mismatch, not "ok"."""
    path = out / INDEX
    try:
        index = json.loads(path.read_text())
        ok = isinstance(index, dict) and index.get("schema") == INDEX_SCHEMA and isinstance(index.get("entries"), list)
        why = None if ok else f"{path} is not an {INDEX_SCHEMA} index"
    except FileNotFoundError:
        why = f"{path} is missing"
    except (OSError, ValueError) as exc:
        why = f"{path} is unreadable ({type(exc).__name__}: {exc})"
    if why is None:
        return None
    return {"name": INDEX, "status": "mismatch", "problems": [f"{why}: run edgebert build"], "exit_code": 4}


def check(cfg: BuildConfig, only: list[str] | None = None) -> dict:
    """Re-verify built entries against their manifests (files, sha256, parity); builds and writes nothing."""
    todo = select_entries(cfg, only)
    plan, previous = cache_plan(cfg), previous_index(cfg.out)
    results = [_check_one(cfg, e, *plan[e.folder], previous) for e in todo]
    index = _check_index(cfg.out)
    if index is not None:
        results.append(index)
    return {"config": str(cfg.path), "out": str(cfg.out), "exit_code": exit_code(results), "entries": results}
