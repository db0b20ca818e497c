"""manifest.json: what was built, from what, and every figure with its provenance.

Schema "edgebert.manifest/1" (documented in the README, JSON Schema in
edgebert/data/manifest.schema.json). Figures are either `measured` (where, how many runs)
or `predicted` (by which model) and the two are never mixed in one field.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgebert.errors import OutputError
from edgebert.hashing import now_iso, sha256_file, write_atomic

__all__ = [
    "SCHEMA",
    "MANIFEST",
    "SUBNET_DIR",
    "sha256_file",
    "now_iso",
    "write_manifest",
    "read_manifest",
    "validate",
    "schema",
    "mismatches",
]

SCHEMA = "edgebert.manifest/1"
MANIFEST = "manifest.json"
SUBNET_DIR = "subnet"  # the sliced PyTorch model in edgebert format, kept for re-verification


def schema() -> dict:
    return json.loads((Path(__file__).parent.parent / "data" / "manifest.schema.json").read_text())


def validate(manifest: dict) -> None:
    """Raise ValueError if `manifest` does not follow the schema (uses jsonschema when installed)."""
    try:
        import jsonschema
    except ImportError:  # the schema is still enforced in tests, where jsonschema is installed
        if manifest.get("schema") != SCHEMA:
            raise ValueError(f"manifest schema is {manifest.get('schema')!r}, expected {SCHEMA!r}") from None
        return
    jsonschema.validate(manifest, schema())


def write_manifest(folder: str | Path, manifest: dict) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a manifest."""
    return write_atomic(Path(folder) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise OutputError(f"{folder} has no {MANIFEST}; is it an edgebert export folder?")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise OutputError(f"{path} is not valid JSON ({exc}); re-run the export") from None
    if data.get("schema") != SCHEMA:
        raise OutputError(f"{path} has schema {data.get('schema')!r}; this edgebert reads {SCHEMA!r}")
    return data


def mismatches(folder: Path, manifest: dict) -> list[str]:
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
