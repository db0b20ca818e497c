"""TorchScript: torch.jit.trace + torch.jit.freeze, fp32 only, dynamic batch and sequence.

Why no int8: torch.ao dynamic quantization of nn.Linear is the only TorchScript int8 path, and on x86
its fbgemm kernels quantize activations to 7 bits (reduce_range is hard-wired on). Measured on MiniLM,
cosine to fp32 over 8 sentences: per-tensor min 0.80 / mean 0.91, per-channel 0.92 / 0.96, per-channel
after SmoothQuant scaling 0.96 / 0.98 -- under the 0.98 gate. (The qnnpack engine that phones use reaches
0.98 / 0.99, but the engine is chosen by the app that loads the file, so a verified x86 figure would not
describe it.) Requests for int8 or fp16 therefore fall back to fp32 with a note.

Not byte-reproducible: torch.jit.save writes a random serialization_id and per-process name-mangling
counters into the zip; the weights and code are the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgebert.artifact import MIN_SEQ_LEN, ArtifactConfig, Tolerance
from edgebert.registry import CONVERTERS

from ._common import INPUT_NAMES, check_seq_len, example_inputs, io_facts, quiet, standard_tolerance

__all__ = ["TorchScriptConverter"]


@CONVERTERS.register("torchscript")
class TorchScriptConverter:
    suffix = ".pt"
    precisions = ("fp32",)
    dynamic_shapes = True
    runtime = "torch"

    def resolve_precision(self, requested: str) -> tuple[str, str | None]:
        if requested in self.precisions:
            return requested, None
        return "fp32", f"torchscript has no supported {requested} path; exported fp32"

    def convert(self, model, config: ArtifactConfig, path: Path) -> dict:
        precision, note = self.resolve_precision(config.precision)
        seq_len = check_seq_len(model, config)
        model = model.eval()
        # Batch 2 with a partly padded row and a non-trivial length: shapes stay symbolic (aten::size) in
        # the trace, which _check_generalises confirms at other sizes.
        example = example_inputs(model, batch=2, seq_len=max(MIN_SEQ_LEN, min(seq_len, 24)))
        with quiet(), torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)
            frozen = torch.jit.freeze(traced.eval())
            _check_generalises(model, frozen, seq_len)
        torch.jit.save(frozen, str(path))
        facts = io_facts(model, "batch", "sequence")
        facts["notes"] = ([note] if note else []) + [
            f"positional inputs ({', '.join(INPUT_NAMES)}), int64; dynamic batch and sequence up to "
            f"{model.config.max_position_embeddings}", "torch.jit.trace + freeze (TorchScript is deprecated upstream "
            "but still what many apps load)"]
        return facts

    def load(self, path: Path, threads: int = 1):
        return _TorchScriptRuntime(Path(path), threads)

    def tolerance(self, precision: str) -> Tolerance:
        return standard_tolerance(precision)

    def runtime_version(self) -> str:
        return torch.__version__


def _check_generalises(model, frozen, seq_len: int) -> None:
    """A trace that baked in the example's batch or length would be silently wrong elsewhere: catch it here."""
    for batch, length in ((1, MIN_SEQ_LEN), (3, seq_len)):
        inputs = example_inputs(model, batch, length, seed=1)
        diff = (frozen(*inputs) - model(*inputs)).abs().max().item()
        if not diff <= 1e-4:
            raise RuntimeError(f"traced TorchScript differs from eager by {diff:.3g} at batch {batch}, length {length}")


class _TorchScriptRuntime:
    def __init__(self, path: Path, threads: int):
        self.module = torch.jit.load(str(path), map_location="cpu")
        self.threads = threads

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        args = [torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.int64)) for name in INPUT_NAMES]
        # torch's thread count is process-wide: set it for this call only.
        previous = torch.get_num_threads()
        if previous != self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                return self.module(*args).numpy().astype(np.float32, copy=False)
        finally:
            if previous != self.threads:
                torch.set_num_threads(previous)
