"""The runtimes apps ship, and which edgebert artifacts each loads: `export --runtime NAME` keeps to those.

Measured with the parity sentences (and 50 Rotten Tomatoes reviews for MediaPipe) on MiniLM w0.5-d0.5:
MediaPipe Tasks 0.10.21 loads edgebert's fp32, fp16 and int8 .tflite files (weights inside the flatbuffer,
as edgebert writes them; see converters/tflite_metadata.py) and no other format. The older releases are
checked in their own venvs (export/isolated.py); what they load was measured with `edgebert compat` on fp32,
fp16 and int8 exports of a tiny classifier (commit ba20e0a).

A device profile names the runtime its apps ship in `runtime:`, as one of these names (`runtime: mediapipe`,
`runtime: tflite-runtime==2.14.0`); a value in words ('LiteRT with the XNNPACK delegate') only describes.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebert.errors import ProfileError, UsageError
from edgebert.export.isolated import ISOLATED

__all__ = ["AppRuntime", "APP_RUNTIMES", "formats_for", "profile_runtime"]


@dataclass(frozen=True)
class AppRuntime:
    name: str
    formats: tuple[str, ...]  # formats it loads
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    checked_by: str = ""  # how `edgebert compat` checks it
    cannot: str = ""  # measured: what edgebert makes that it does not load, or loads and gets wrong
    one_length: str = ""  # measured: why it cannot load a .tflite with sequence-length buckets ("": it can)


def _isolated(name: str, formats: tuple[str, ...], **kw) -> AppRuntime:
    return AppRuntime(name, formats, checked_by=f"{name} in its own venv ({ISOLATED[name].env_var})", **kw)


APP_RUNTIMES = {
    r.name: r
    for r in (
        AppRuntime("ai-edge-litert", ("tflite",), checked_by="ai-edge-litert in edgebert's environment"),
        AppRuntime(
            "mediapipe",
            ("tflite",),
            checked_by="MediaPipe Tasks 0.10.21 via EDGEBERT_MEDIAPIPE_PYTHON",
            one_length="MediaPipe Tasks 0.10.21 refuses a .tflite with more than one subgraph (measured on a "
            "--seq-len 16,32 export: 'Text tflite models are assumed to have a single subgraph')",
        ),
        AppRuntime("onnxruntime", ("onnx",), checked_by="onnxruntime in edgebert's environment"),
        AppRuntime("torch", ("torchscript",), checked_by="torch.jit.load in edgebert's environment"),
        _isolated("ai-edge-litert==1.4.0", ("tflite",)),
        _isolated(
            "tflite-runtime==2.14.0",
            ("tflite",),
            precisions=("fp32", "fp16"),
            cannot="it loads edgebert's int8 .tflite and computes something else (measured on the parity sentences: "
            "min cosine to PyTorch 0.159 on MiniLM w0.5-d0.5, -0.994 on a tiny test model, where ai-edge-litert 1.4 "
            "and 2.3 agree to 0.999; on the tiny model int8 FULLY_CONNECTED alone gives -0.994, int8 EMBEDDING_LOOKUP "
            "alone 0.895): the file's op versions (FULLY_CONNECTED 5, EMBEDDING_LOOKUP 1) are those of the fp32 file, "
            "so 2.14 does not refuse the per-channel int8 weights",
        ),
        _isolated(
            "onnxruntime==1.15.0",
            (),
            cannot="edgebert's .onnx files are ONNX IR version 10 (opset 20), which onnxruntime reads from 1.18.0 on "
            "(measured: 1.15.0, 1.16.3 and 1.17.0 refuse them)",
        ),
        _isolated("onnxruntime==1.18.0", ("onnx",)),
        AppRuntime(
            "executorch",
            ("executorch",),
            precisions=("fp32", "int8"),
            checked_by="executorch.runtime (the Python bindings of ExecuTorch's C++ runtime) in edgebert's environment",
        ),
    )
}


def formats_for(
    runtime: str, formats: tuple[str, ...] | None, precision: str | None = None, buckets: tuple[int, ...] = ()
) -> tuple[str, ...]:
    """The formats to export for an app that ships `runtime`; a request it cannot load is a usage error."""
    if runtime not in APP_RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; choose from: {', '.join(APP_RUNTIMES)}")
    rt = APP_RUNTIMES[runtime]
    if not rt.formats:
        raise UsageError(f"{runtime} loads no artifact edgebert makes: {rt.cannot}; target a newer release")
    if precision is not None and precision not in rt.precisions:
        why = f" ({rt.cannot})" if rt.cannot else ""
        raise UsageError(f"{runtime} loads no {precision} recipe edgebert makes{why}; use {', '.join(rt.precisions)}")
    if buckets and rt.one_length:
        raise UsageError(f"{runtime} cannot load sequence-length buckets: {rt.one_length}; give one --seq-len")
    if formats is None:
        return rt.formats
    unloadable = [f for f in formats if f not in rt.formats]
    if unloadable:
        raise UsageError(
            f"{runtime} cannot load {', '.join(unloadable)} artifacts; it loads {', '.join(rt.formats)} "
            f"(drop --formats, or use --formats {','.join(rt.formats)})"
        )
    return formats


def profile_runtime(profile) -> str | None:
    """The app runtime a device profile names in `runtime:` (one word), or None for a description in words."""
    text = (profile.runtime or "").strip()
    if not text or any(c.isspace() for c in text):
        return None
    if text not in APP_RUNTIMES:
        raise ProfileError(
            f"profile {profile.name} ({profile.path}): runtime {text!r} is not a runtime edgebert checks; use one of "
            f"{', '.join(APP_RUNTIMES)}, or describe the runtime in words (then it selects nothing)"
        )
    return text
