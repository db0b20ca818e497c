"""`edgebert compat FOLDER`: which runtimes load each artifact of an export and agree with its PyTorch reference.

Each artifact's bytes are first checked against the manifest (size, sha256): a file that changed is not
judged. Then every runtime an app might ship runs it on the parity sentences beside the sliced PyTorch model
kept in `subnet/`: the format's own runtime (ONNX Runtime, ai-edge-litert, torch for TorchScript) with
edgebert's tokenization, and MediaPipe Tasks (for .tflite) with its own tokenization from the vocabulary
packed in the file, through the isolated environment named by EDGEBERT_MEDIAPIPE_PYTHON. Older releases
apps still ship (ai-edge-litert 1.4, tflite-runtime 2.14, onnxruntime 1.15 and 1.18) run in their own venvs
(export/isolated.py); a release that refuses a file says why (the op and version, or the ONNX IR version it
reads). Each .onnx also gets an ORT Mobile verdict (export/ort_mobile.py): converted to ORT format, loaded
back, and its kernels compared with the reduced pre-built package's op set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgebert.artifact import ArtifactConfig
from edgebert.errors import RunnerError
from edgebert.export.isolated import ISOLATED, NOT_INSTALLED, IsolatedSession, explain, isolated_python
from edgebert.export.manifest import SUBNET_DIR, mismatches, read_manifest, write_manifest
from edgebert.export.mediapipe_env import ENV_VAR, mediapipe_python, run_mediapipe
from edgebert.export.ort_mobile import ort_mobile
from edgebert.export.runtimes import APP_RUNTIMES
from edgebert.export.verify import PARITY_TEXTS, verify
from edgebert.hashing import now_iso
from edgebert.model.bert import load_model
from edgebert.model.tokenizer import INPUT_NAMES, encode, load_tokenizer
from edgebert.registry import CONVERTERS

__all__ = ["RUNTIMES", "compat", "mediapipe_parity", "NOT_CHECKED_MEDIAPIPE", "NOT_INSTALLED"]

# Which runtimes are tried per format; the first is the one export verified with; then the isolated releases.
RUNTIMES = {
    "onnx": ("onnxruntime", *(n for n, r in ISOLATED.items() if r.format == "onnx")),
    "tflite": ("ai-edge-litert", "mediapipe", *(n for n, r in ISOLATED.items() if r.format == "tflite")),
    "torchscript": ("torch",),
    "executorch": ("executorch",),
}
NOT_CHECKED_MEDIAPIPE = f"not checked: set {ENV_VAR}"


def _row(a: dict, runtime: str, status: str, **more) -> dict:
    return {
        "file": a["file"],
        "format": a["format"],
        "precision": a["precision"],
        "runtime": runtime,
        "status": status,
        **more,
    }


def _parity(a: dict, loaded, reference, tokenizer) -> dict:
    """{status, agrees, figures} of a loaded runtime against the PyTorch reference, at the artifact's tolerance."""
    conv = CONVERTERS.get(a["format"])()
    figures = verify(reference, loaded, tokenizer, conv, ArtifactConfig(a["format"], a["precision"], a["seq_len"]))
    status = "ok" if figures["passed"] else "disagrees"
    return {"status": status, "loads": True, "agrees": figures["passed"], **_figures(figures)}


def _own_runtime(path: Path, a: dict, reference, tokenizer) -> dict:
    """The format's runtime in edgebert's environment loads `path` (the artifact, or its .ort) and agrees?"""
    conv = CONVERTERS.get(a["format"])()
    try:
        loaded = conv.load(path, threads=1)
    except Exception as exc:  # the verdict: this runtime cannot load it
        return {"status": "does not load", "loads": False, "agrees": None, "error": f"{type(exc).__name__}: {exc}"}
    return {**_parity(a, loaded, reference, tokenizer), "version": conv.runtime_version()}


def _isolated(folder: Path, a: dict, name: str, reference, tokenizer) -> dict:
    rt = ISOLATED[name]
    if isolated_python(rt) is None:
        return _row(a, name, NOT_INSTALLED, loads=None, agrees=None, setup=f"set {rt.env_var}")
    try:
        with IsolatedSession(rt, folder / a["file"]) as session:
            if not session.loaded:
                why = explain(session.error, name)
                return _row(a, name, "does not load", loads=False, agrees=None, error=session.error, **why)
            try:
                figures = _parity(a, session, reference, tokenizer)
            except RunnerError as exc:  # loads, then fails or crashes on the first input: also a verdict
                return _row(a, name, "does not run", loads=True, agrees=None, error=str(exc))
            known = APP_RUNTIMES[name] if name in APP_RUNTIMES else None
            if figures["status"] == "disagrees" and known and a["precision"] not in known.precisions:
                figures["why"] = known.cannot  # measured before: export --runtime already keeps to the others
            return _row(a, name, version=session.version, **figures)
    except RunnerError as exc:
        return _row(a, name, f"not checked: the {name} environment failed", loads=None, agrees=None, error=str(exc))


def _figures(f: dict) -> dict:
    keys = ("min_cosine", "max_abs_diff", "argmax_agreement", "n_inputs", "failures")
    return {k: f[k] for k in keys if f.get(k) is not None}


def mediapipe_parity(reference, tokenizer, path: Path, precision: str, seq_len: int, texts) -> dict:
    """MediaPipe's own tokenization + inference of `texts` against the PyTorch reference on edgebert's.

    Gate: cosine >= 0.999 for fp32/fp16 (>= 0.98 for int8), and the same decision for classifiers."""
    classifier = reference.config.task == "classification"
    answer = run_mediapipe(path, "classification" if classifier else "embedding", list(texts))
    result = {"version": answer.get("mediapipe_version"), "loads": bool(answer.get("loaded"))}
    if not answer.get("loaded") or answer.get("error"):
        return {**result, "agrees": None, "error": answer.get("error")}
    out = np.asarray(answer["outputs"], dtype=np.float32)
    with torch.no_grad():
        ref = np.concatenate(
            [
                reference(*(torch.from_numpy(enc[n]) for n in INPUT_NAMES)).numpy()
                for enc in (encode(tokenizer, [t], seq_len=seq_len) for t in texts)
            ]
        )
    cos = (out * ref).sum(1) / np.maximum(np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1), 1e-12)
    min_cos = 0.98 if precision == "int8" else 0.999
    figures = {
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "max_abs_diff": float(np.abs(out - ref).max()),
        "n_inputs": len(texts),
    }
    failures = [f"min_cosine {cos.min():.5f} < {min_cos}"] if not cos.min() >= min_cos else []
    if classifier:
        figures["argmax_agreement"] = float((out.argmax(1) == ref.argmax(1)).mean())
        if figures["argmax_agreement"] < 1.0:
            failures.append(f"argmax_agreement {figures['argmax_agreement']:.3f} < 1.0")
    return {**result, "agrees": not failures, **figures, "failures": failures, "min_cosine_gate": min_cos}


def _mediapipe(folder: Path, a: dict, reference, tokenizer) -> dict:
    if mediapipe_python() is None:
        return _row(a, "mediapipe", NOT_CHECKED_MEDIAPIPE, loads=None, agrees=None)
    try:
        r = mediapipe_parity(reference, tokenizer, folder / a["file"], a["precision"], a["seq_len"], PARITY_TEXTS)
    except RunnerError as exc:
        return _row(
            a, "mediapipe", "not checked: the MediaPipe environment failed", loads=None, agrees=None, error=str(exc)
        )
    status = "does not load" if not r["loads"] else ("ok" if r["agrees"] else "disagrees")
    return _row(a, "mediapipe", status, **r)


def compat(folder: str | Path, *, write: bool = True) -> dict:
    """The compatibility table of an export folder; written into its manifest.json as `compatibility`."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    changed = mismatches(folder, manifest)
    reference, tokenizer = load_model(folder / SUBNET_DIR).eval(), load_tokenizer(folder)
    rows = []
    for a in manifest["artifacts"]:
        bad = [p for p in changed if p.startswith(a["file"] + " ")]
        for runtime in RUNTIMES.get(a["format"], ()):
            if bad:
                rows.append(_row(a, runtime, "not checked: " + "; ".join(bad), loads=None, agrees=None))
            elif runtime == "mediapipe":
                rows.append(_mediapipe(folder, a, reference, tokenizer))
            elif runtime in ISOLATED:
                rows.append(_isolated(folder, a, runtime, reference, tokenizer))
            else:
                rows.append(_row(a, runtime, **_own_runtime(folder / a["file"], a, reference, tokenizer)))
    mobile = [
        {
            "file": a["file"],
            "precision": a["precision"],
            **ort_mobile(folder / a["file"], lambda p, a=a: _own_runtime(p, a, reference, tokenizer)),
        }
        for a in manifest["artifacts"]
        if a["format"] == "onnx" and not any(p.startswith(a["file"] + " ") for p in changed)
    ]
    table = {"checked_at": now_iso(), "texts": len(PARITY_TEXTS), "rows": rows, "ort_mobile": mobile}
    if write and not changed:
        manifest["compatibility"] = table
        write_manifest(folder, manifest)
    # Exit 4 (as `build --check`) when a file changed or fails in the runtime it was verified with; another
    # runtime that cannot load it (MediaPipe and an int8 file) is a fact of the table, not a failure.
    primary = [r for r in rows if r["runtime"] == RUNTIMES[r["format"]][0]]
    failed = bool(changed) or any(r["status"] != "ok" for r in primary)
    return {
        "folder": str(folder),
        "written": write and not changed,
        "sha256_problems": changed,
        "exit_code": 4 if failed else 0,
        **table,
    }
