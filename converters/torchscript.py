"""TorchScript: torch.jit.trace + torch.jit.freeze, fp32 only, dynamic batch and sequence.

Why no int8: torch.ao dynamic quantization of nn.Linear is the only TorchScript int8 path, and on x86
its fbgemm kernels quantize activations to 7 bits (reduce_range is hard-wired on). Measured on MiniLM,
cosine to fp32 over 8 sentences: per-tensor min 0.80 / mean 0.91, per-channel 0.92 / 0.96, per-channel
after SmoothQuant scaling 0.96 / 0.98 -- under the 0.98 gate. (The qnnpack engine that phones use reaches
0.98 / 0.99, but the engine is chosen by the app that loads the file, so a verified x86 figure would not
describe it.) Requests for int8 or fp16 therefore fall back to fp32 with a note.

Not byte-reproducible as saved: torch.jit.save writes a random serialization_id and per-process
name-mangling counters into the zip (the weights and code are the same); `normalise` (edgebert build)
rewrites the zip so that they are.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from edgebert.artifact import MIN_SEQ_LEN, ArtifactConfig, ConverterBase, Tolerance
from edgebert.converters._common import INPUT_NAMES, check_seq_len, example_inputs, io_facts, quiet, standard_tolerance
from edgebert.registry import CONVERTERS

__all__ = ["TorchScriptConverter"]


@CONVERTERS.register("torchscript")
class TorchScriptConverter(ConverterBase):
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
            f"{model.config.max_position_embeddings}",
            "torch.jit.trace + freeze (TorchScript is deprecated upstream but still what many apps load)",
        ]
        return facts

    def load(self, path: Path, threads: int = 1, signature: str | None = None):
        return _TorchScriptRuntime(Path(path), threads)  # one dynamic graph serves every length: no signatures

    def normalise(self, src: Path, dst: Path) -> str:
        """Write `src` to `dst` so that the same model gives the same bytes; say what changed (build)."""
        _reproducible_zip(src, dst)
        return (
            "zip rewritten: serialization_id from the content, mangled class names stripped, .debug_pkl "
            "source ranges dropped"
        )

    def tolerance(self, precision: str) -> Tolerance:
        return standard_tolerance(precision)

    def runtime_version(self) -> str:
        return torch.__version__


def _reproducible_zip(src: Path, dst: Path) -> None:
    """Rewrite a torch.jit.save zip so that the same model gives the same bytes.

    torch.jit.save varies in three places: `.data/serialization_id` (random; replaced by a hash of the
    other records), the `___torch_mangle_N` class names (N counts the scripted classes created earlier
    in the process; stripped), and the `.debug_pkl` source ranges, which hold the tracing call stack
    with absolute paths of the build machine (dropped: only TorchScript error messages use them).
    Records keep their order, are stored uncompressed with a fixed timestamp, and their data stays
    64-byte aligned as torch writes it. Raises ValueError when the archive holds something unexpected.
    """
    import pickletools
    import re
    import zipfile

    mangle = re.compile(rb"[./]___torch_mangle_\d+")
    with zipfile.ZipFile(src) as z:
        infos = z.infolist()
        prefix = infos[0].filename.split("/")[0] + "/"
        records = [(i.filename[len(prefix) :], z.read(i)) for i in infos]
    out = []
    for name, data in records:
        if name.endswith(".debug_pkl"):
            continue
        if name.endswith(".pkl"):
            # Only GLOBAL opcodes (newline-terminated text) may name a class: a length-prefixed string would break.
            for op, arg, _ in pickletools.genops(data):
                if op.name != "GLOBAL" and "___torch_mangle_" in str(arg):
                    raise ValueError(f"{name} names a mangled class outside a GLOBAL opcode")
        if name.endswith(".pkl") or name.startswith("code/"):
            data = mangle.sub(b"", data)
        out.append((mangle.sub(b"", name.encode()).decode(), data))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError("two classes differ only by their mangled names")
    h = hashlib.sha256()
    for name, data in out:
        if name != ".data/serialization_id":
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    sid = f"{int(h.hexdigest(), 16) % 10**40:040d}".encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
        for name, data in out:
            info = zipfile.ZipInfo(prefix + name, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            data_at = z.fp.tell() + 30 + len(info.filename.encode()) + 4  # local header + our 4-byte extra header
            pad = -data_at % 64
            info.extra = b"FB" + pad.to_bytes(2, "little") + b"Z" * pad  # torch's own alignment padding
            z.writestr(info, sid if name == ".data/serialization_id" else data)


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
