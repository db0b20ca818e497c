"""One small session class per artifact format: named numpy arrays in, named numpy arrays out.

ONNX Runtime and LiteRT are imported when a file of theirs is opened; TorchScript's runtime is torch
itself, imported only for .pt files. Shapes are the caller's business: static (TFLite) files get inputs
already padded to their length (see runtime/predictor.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebert._optional import require
from edgebert.errors import MissingExtraError, ModelError

__all__ = ["open_session", "FORMAT_OF_SUFFIX"]

FORMAT_OF_SUFFIX = {".onnx": "onnx", ".tflite": "tflite", ".pt": "torchscript", ".pte": "executorch"}
_PTE_MIN_LEN = 8  # edgebert's .pte files take 8..seq_len tokens (converters/executorch.py: MIN_SEQ_LEN)
_PTE_INSTALL = "pip install --no-deps executorch==1.5.1 ruamel.yaml==0.19.1"
_ORT_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}


class _Ort:
    def __init__(self, path: Path, threads: int, inputs, outputs):
        import onnxruntime as ort  # a core dependency

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [(i.name, _ORT_DTYPES.get(i.type, np.float32)) for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        run = {n: np.asarray(feeds[n], dtype=t) for n, t in self._inputs}
        return dict(zip(self._outputs, self.session.run(self._outputs, run)))


class _LiteRt:
    def __init__(self, path: Path, threads: int, inputs, outputs, signature: str | None = None):
        litert = require("ai_edge_litert.interpreter", extra="tflite", what="running TFLite files")
        self.interpreter = litert.Interpreter(model_path=str(path), num_threads=threads)
        signatures = list(self.interpreter.get_signature_list())
        if signature is None:
            if len(signatures) != 1:
                raise ModelError(f"{path} has signatures {signatures}; say which one to run")
            signature = signatures[0]
        if signature not in signatures:
            raise ModelError(f"{path} has no signature {signature!r} (it has {', '.join(signatures)})")
        self._runner = self.interpreter.get_signature_runner(signature)
        details = self._runner.get_input_details()
        # Positional exports name inputs args_0..: map them onto the manifest's names in order.
        self._inputs = {
            (name if name in inputs else inputs[int(name.split("_")[1])]): (name, d["dtype"])
            for name, d in details.items()
        }

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = {name: np.asarray(feeds[canon]).astype(dtype) for canon, (name, dtype) in self._inputs.items()}
        return {k: np.asarray(v) for k, v in self._runner(**args).items()}


class _TorchScript:
    def __init__(self, path: Path, threads: int, inputs, outputs):
        import torch  # TorchScript's runtime is torch itself

        self.torch = torch
        self.module = torch.jit.load(str(path), map_location="cpu")
        self.threads, self._inputs, self._outputs = threads, list(inputs), list(outputs)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self._inputs]
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                out = self.module(*args)
        finally:
            torch.set_num_threads(previous)
        out = out if isinstance(out, (tuple, list)) else (out,)
        return {n: t.numpy() for n, t in zip(self._outputs, out)}


class _ExecuTorch:
    """One text at a time (edgebert's .pte files are batch 1); shorter than 8 tokens is padded with mask 0.

    ExecuTorch's thread pool is process-wide and left at its default size (one thread per performant core):
    resizing it next to torch crashed at random (converters/executorch.py), so `threads` is not applied."""

    def __init__(self, path: Path, threads: int, inputs, outputs):
        try:
            from executorch.runtime import Runtime
        except ImportError:
            err = MissingExtraError("running .pte files", "executorch", "executorch.runtime")
            err.args = (f"running {path.name} needs ExecuTorch (not an extra); install it with:  {_PTE_INSTALL}",)
            raise err from None
        import torch  # ExecuTorch's Python bindings take torch tensors

        self.torch = torch
        self.program = Runtime.get().load_program(str(path))  # kept: the method points into it
        self.method = self.program.load_method("forward")
        self._inputs, self._outputs = list(inputs), list(outputs)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pad = max(0, _PTE_MIN_LEN - np.asarray(feeds[self._inputs[0]]).shape[1])
        args = [
            self.torch.from_numpy(np.pad(np.asarray(feeds[n], dtype=np.int64), ((0, 0), (0, pad))))
            for n in self._inputs
        ]
        return {n: t.numpy() for n, t in zip(self._outputs, self.method.execute(args))}


def open_session(fmt: str, path: Path, *, inputs, outputs, threads: int = 1, signature: str | None = None):
    """A callable session for `path` in format `fmt`; `inputs`/`outputs` are the manifest's tensor names."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path} is missing; re-run the export that wrote this folder")
    if fmt == "onnx":
        return _Ort(path, threads, inputs, outputs)
    if fmt == "tflite":
        return _LiteRt(path, threads, inputs, outputs, signature)
    if fmt == "torchscript":
        return _TorchScript(path, threads, inputs, outputs)
    if fmt == "executorch":
        return _ExecuTorch(path, threads, inputs, outputs)
    raise ModelError(f"unknown artifact format {fmt!r}")
