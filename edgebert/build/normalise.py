"""Reproducible bytes: replace what an exporter writes that varies between builds, when it is safe."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgebert.export.verify import PARITY_TEXTS
from edgebert.hashing import sha256_file
from edgebert.model.tokenizer import encode, load_tokenizer
from edgebert.registry import CONVERTERS

__all__ = ["normalise_artifacts"]


def normalise_artifacts(folder: Path, manifest: dict) -> tuple[list[str], int]:
    """Replace each artifact whose converter has a `normalise` hook by its normalised file, if its runtime
    loads that and computes bit-identical outputs on the parity sentences. Returns (the files left as the exporter wrote
    them, how many were replaced).

    The parity figures stay those export verified: only metadata and names changed, and the outputs are
    the same to the bit (re-running the gate would cost ~4 s per MiniLM artifact for the same numbers;
    `build --check` re-runs it on the published files)."""
    tokenizer, raw, replaced = load_tokenizer(folder), [], 0
    for a in manifest["artifacts"]:
        conv = CONVERTERS.get(a["format"])()
        path, staged = folder / a["file"], folder / f".{a['file']}.normalised"
        try:
            what = conv.normalise(path, staged)
            if what is None:  # its exporter already writes the same bytes every time
                continue
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
        a["notes"].append(
            f"normalised by edgebert build for byte-reproducibility ({what}); outputs bit-identical "
            "to the verified file's"
        )
    return raw, replaced
