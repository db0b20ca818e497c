"""One small registry per kind of plug-in (converters, runners), keyed by name.

The CLI's choices and --help text are built from here, so this is the single source of truth.
"""

from __future__ import annotations

import importlib

from edgebert.errors import UsageError

__all__ = ["Registry", "CONVERTERS", "RUNNERS", "SEGMENT_WRITERS"]


class Registry:
    """Names are known up front (so --help and profile validation import nothing heavy); a plug-in's
    module is imported the first time its name is asked for, and registers itself with `register`."""

    def __init__(self, kind: str, modules: dict[str, str]):
        self.kind = kind
        self._modules = dict(modules)  # name -> module, imported lazily: runtimes are heavy
        self._items: dict[str, object] = {}

    def register(self, name: str):
        def deco(obj):
            self._items[name] = obj
            obj.name = name
            return obj

        return deco

    def names(self) -> list[str]:
        return sorted(self._modules)

    def get(self, name: str):
        if name not in self._modules:
            raise UsageError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}")
        if name not in self._items:
            importlib.import_module(self._modules[name])
        return self._items[name]


CONVERTERS = Registry(
    "format", {name: f"edgebert.converters.{name}" for name in ("onnx", "tflite", "torchscript", "executorch")}
)
RUNNERS = Registry("target kind", {name: f"edgebert.runners.{name}" for name in ("local", "ssh", "adb")})
# Early-exit segment writers (issue 14): one function per format, all in converters/segments.py.
SEGMENT_WRITERS = Registry(
    "early-exit segment format", {name: "edgebert.converters.segments" for name in ("onnx", "tflite", "torchscript")}
)
# Their model cards (converters/segment_metadata.py): formats with a metadata slot apps read.
SEGMENT_DESCRIBERS = Registry(
    "early-exit segment metadata", {name: "edgebert.converters.segment_metadata" for name in ("onnx", "tflite")}
)
