"""The runtimes apps ship, and which edgebert artifacts each loads: `export --runtime NAME` keeps to those.

Measured with the parity sentences (and 50 Rotten Tomatoes reviews for MediaPipe) on MiniLM w0.5-d0.5:
MediaPipe Tasks 0.10.21 loads edgebert's fp32, fp16 and int8 .tflite files (weights inside the flatbuffer,
as edgebert writes them; see converters/tflite_metadata.py) and no other format.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebert.errors import UsageError

__all__ = ["AppRuntime", "APP_RUNTIMES", "formats_for"]


@dataclass(frozen=True)
class AppRuntime:
    name: str
    formats: tuple[str, ...]  # formats it loads
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    checked_by: str = ""  # how `edgebert compat` checks it


APP_RUNTIMES = {
    r.name: r
    for r in (
        AppRuntime("ai-edge-litert", ("tflite",), checked_by="ai-edge-litert in edgebert's environment"),
        AppRuntime("mediapipe", ("tflite",), checked_by="MediaPipe Tasks 0.10.21 via EDGEBERT_MEDIAPIPE_PYTHON"),
        AppRuntime("onnxruntime", ("onnx",), checked_by="onnxruntime in edgebert's environment"),
        AppRuntime("torch", ("torchscript",), checked_by="torch.jit.load in edgebert's environment"),
    )
}


def formats_for(runtime: str, formats: tuple[str, ...] | None, precision: str | None = None) -> tuple[str, ...]:
    """The formats to export for an app that ships `runtime`; a request it cannot load is a usage error."""
    if runtime not in APP_RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; choose from: {', '.join(APP_RUNTIMES)}")
    rt = APP_RUNTIMES[runtime]
    if precision is not None and precision not in rt.precisions:
        raise UsageError(f"{runtime} loads no {precision} recipe edgebert makes; use {', '.join(rt.precisions)}")
    if formats is None:
        return rt.formats
    unloadable = [f for f in formats if f not in rt.formats]
    if unloadable:
        raise UsageError(
            f"{runtime} cannot load {', '.join(unloadable)} artifacts; it loads {', '.join(rt.formats)} "
            f"(drop --formats, or use --formats {','.join(rt.formats)})"
        )
    return formats
