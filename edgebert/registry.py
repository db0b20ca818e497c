"""One small registry per kind of plug-in (converters, runners), keyed by name.

The CLI's choices and --help text are built from here, so this is the single source of truth.
"""

from __future__ import annotations

import importlib

from .errors import UsageError

__all__ = ["Registry", "CONVERTERS", "RUNNERS"]


class Registry:
    def __init__(self, kind: str, modules: tuple[str, ...]):
        self.kind = kind
        self._modules = modules  # imported lazily: registering must not pull heavy runtimes
        self._items: dict[str, object] = {}
        self._loaded = False

    def register(self, name: str):
        def deco(obj):
            self._items[name] = obj
            obj.name = name
            return obj

        return deco

    def _load(self):
        if not self._loaded:
            self._loaded = True
            for m in self._modules:
                importlib.import_module(m)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def get(self, name: str):
        self._load()
        if name not in self._items:
            raise UsageError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}")
        return self._items[name]


CONVERTERS = Registry(
    "format",
    ("edgebert.converters.onnx", "edgebert.converters.tflite", "edgebert.converters.torchscript"),
)
RUNNERS = Registry(
    "target kind",
    ("edgebert.runners.local", "edgebert.runners.ssh", "edgebert.runners.adb"),
)
