"""ExecuTorch: torch.export -> XNNPACK-delegated edge program -> model.pte, verified in ExecuTorch's own runtime.

Why ExecuTorch: TorchScript (and PyTorch Mobile with it) is deprecated in torch 2.13; ExecuTorch is where
PyTorch apps on Android and iOS now run models. The file is what `Module("model.pte")` loads in an app and
what ExecuTorch's `executor_runner` / `xnn_executor_runner` time on a phone.

Shapes: batch 1 and a bounded dynamic sequence length (MIN_SEQ_LEN..seq_len). ExecuTorch plans every
buffer ahead of time for the upper bound of each dynamic dimension, so an open-ended batch would plan
(and allocate on load) memory for the largest one; the runtime wrapper below runs a batch row by row, as
the TFLite one does, and each row at its own length. `executor_runner` without --input_shapes runs the
upper bound: (1, seq_len), the shape edgebert measures everywhere.

Precisions: fp32, and int8 through XNNPACK's PT2E quantizer (dynamic: per-channel int8 weights, activations
quantized per row at run time, like ORT's and LiteRT's dynamic int8), on edgebert's own BERT module (the
transformers mask code that broke PT2E export earlier is not in it). fp16 is not offered: XNNPACK's fp16
path needs fp16 inputs and kernels that x86 lacks, so it could not be verified here.

Installation (README, .ci/run): `pip install --no-deps executorch==1.5.1 ruamel.yaml==0.19.1`. Measured
with pip's dry run: its declared dependencies would upgrade typing_extensions to 4.16 (xdsl, under
litert-torch, pins < 4.13) and pull coremltools, scikit-learn, pandas and hydra, none of which exporting to
XNNPACK or running a .pte imports; ruamel.yaml is the one import it lacks. torchao 0.18 (its PT2E
quantizer) is already a core-venv dependency through litert-torch, at the version executorch requires.

Measured on the tiny test model (2 cores under load): lowering takes most of the ~45 s export: LayerNorm
has no XNNPACK kernel in 1.5.1, so the graph splits into one delegate per stretch between LayerNorms
(27 for 3 layers) and each is compiled separately.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from edgebert._optional import require
from edgebert.artifact import MIN_SEQ_LEN, ArtifactConfig, ConverterBase, Tolerance
from edgebert.converters._common import INPUT_NAMES, check_seq_len, example_inputs, io_facts, quiet, standard_tolerance
from edgebert.errors import MissingExtraError
from edgebert.registry import CONVERTERS

__all__ = ["ExecuTorchConverter", "INSTALL"]

INSTALL = "pip install --no-deps executorch==1.5.1 ruamel.yaml==0.19.1"
_WHAT = "ExecuTorch export"


def _require(module: str, what: str = _WHAT):
    """Import an ExecuTorch module, or say which pip line installs it (not the usual extra: see the docstring)."""
    try:
        return require(module, extra="executorch", what=what)
    except MissingExtraError as exc:
        exc.args = (
            f"{what} needs ExecuTorch (python module '{module}' is not installed). Install it, without the "
            f"dependencies it declares (they would upgrade typing_extensions under litert-torch), with:  {INSTALL}",
        )
        raise


def _dynamic_shapes(seq_len: int):
    """Batch 1 (static); sequence MIN_SEQ_LEN..seq_len, or static when that range is one length."""
    if seq_len <= MIN_SEQ_LEN:
        return None
    sequence = torch.export.Dim("sequence", min=MIN_SEQ_LEN, max=seq_len)
    return tuple({1: sequence} for _ in INPUT_NAMES)


def _quantize_int8(model, example, shapes):
    """XNNPACK's PT2E quantizer, dynamic per-channel int8 on every linear layer; returns the converted module."""
    xq = _require("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")
    pt2e = _require("torchao.quantization.pt2e.quantize_pt2e", what="ExecuTorch int8 (torchao PT2E)")
    graph = torch.export.export(model, example, dynamic_shapes=shapes).module()
    quantizer = xq.XNNPACKQuantizer().set_global(
        xq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    )
    prepared = pt2e.prepare_pt2e(graph, quantizer)
    prepared(*example)  # dynamic quantization observes nothing, but prepare/convert expect one pass
    return pt2e.convert_pt2e(prepared)


def _program_bytes(model, precision: str, seq_len: int) -> bytes:
    exir = _require("executorch.exir")
    xnnpack = _require("executorch.backends.xnnpack.partition.xnnpack_partitioner")
    example = example_inputs(model, batch=1, seq_len=min(seq_len, max(MIN_SEQ_LEN, 16)))
    shapes = _dynamic_shapes(seq_len)
    module = _quantize_int8(model, example, shapes) if precision == "int8" else model
    program = torch.export.export(module, example, dynamic_shapes=shapes)
    edge = exir.to_edge_transform_and_lower(program, partitioner=[xnnpack.XnnpackPartitioner()])
    return bytes(edge.to_executorch().buffer)


@CONVERTERS.register("executorch")
class ExecuTorchConverter(ConverterBase):
    suffix = ".pte"
    precisions = ("fp32", "int8")
    dynamic_shapes = True  # sequence length up to seq_len; batches run row by row in the wrapper
    runtime = "executorch"
    # PT2E int8 quantizes the linear layers only: the embedding tables stay fp32 (memory model).
    quantizes_embeddings = False

    def convert(self, model, config: ArtifactConfig, path: Path) -> dict:
        precision, _ = self.resolve_precision(config.precision)
        seq_len = check_seq_len(model, config)
        _POOL["fixed"] = True  # see _thread_pool
        with quiet():
            content = _program_bytes(model.eval(), precision, seq_len)
        Path(path).write_bytes(content)
        facts = io_facts(model, 1, "sequence")
        facts["notes"] = [
            f"method 'forward', positional inputs ({', '.join(INPUT_NAMES)}), int64, shape [1, sequence] with "
            f"sequence {MIN_SEQ_LEN}..{seq_len} (buffers planned for {seq_len}); batches run row by row",
            "XNNPACK delegate; LayerNorm, embedding lookups and reshapes run in ExecuTorch's portable kernels "
            "(no XNNPACK LayerNorm in executorch 1.5.1)",
        ]
        if precision == "int8":
            facts["notes"].append(
                "int8: XNNPACK PT2E quantizer, dynamic (per-channel int8 weights of every linear layer, activations "
                "quantized per row at run time); embedding tables stay fp32"
            )
        return facts

    @classmethod
    def unavailable(cls) -> str | None:
        """Profiles list executorch, so selections made without --formats skip it where it is not installed."""
        if importlib.util.find_spec("executorch") is None:
            return f"executorch is not installed ({INSTALL})"
        return None

    def load(self, path: Path, threads: int = 1, signature: str | None = None):
        return _ExecuTorchRuntime(Path(path), threads)  # one dynamic-length graph: no signatures

    def tolerance(self, precision: str) -> Tolerance:
        return standard_tolerance(precision)

    def runtime_version(self) -> str:
        try:
            return metadata.version("executorch")
        except metadata.PackageNotFoundError:
            return "not installed"


_POOL = {"fixed": False}  # True once this process converted or resized: the pool stays as it is


def _thread_pool(threads: int) -> int:
    """Size ExecuTorch's process-wide XNNPACK thread pool once per process; returns the size it has.

    Why once: `_unsafe_reset_threadpool` destroys and re-creates the pool, and in a process that has run
    torch.export and the XNNPACK lowering it crashed at random here (glibc's "__pthread_tpp_change_priority"
    assertion: libexecutorch_threadpool.so and libtorch_cpu.so both export the pthreadpool_* symbols). Fresh
    processes that only load and run (the bench script, benchmark workers) resized it 36 times of 36. So only
    a process that has not converted resizes it, at its first load; everywhere else (the parity gate inside
    `edgebert export`) it keeps its default size, one thread per performant core, which changes no output.
    """
    pool = _require("executorch.extension.pybindings.portable_lib", what="running ExecuTorch artifacts")
    current = pool._threadpool_get_thread_count()
    if current != threads and not _POOL["fixed"]:
        pool._unsafe_reset_threadpool(threads)
        current = pool._threadpool_get_thread_count()
    _POOL["fixed"] = True
    return current


class _ExecuTorchRuntime:
    """Canonical int64 feeds in, float32 [batch, dim] out, through executorch.runtime (the pybindings)."""

    def __init__(self, path: Path, threads: int):
        with quiet():  # cpuinfo prints what it cannot read from /sys on x86, at import
            runtime = _require("executorch.runtime", what="running ExecuTorch artifacts")
            self.threads = _thread_pool(threads)
            self.program = runtime.Runtime.get().load_program(Path(path))  # kept: the method points into it
            self.method = self.program.load_method("forward")
        meta = self.method.metadata
        self.seq_len = int(meta.input_tensor_meta(0).sizes()[1])  # the upper bound the buffers are planned for

    def _row(self, row: dict[str, np.ndarray]) -> np.ndarray:
        n = min(row["input_ids"].shape[1], self.seq_len)
        pad = max(0, MIN_SEQ_LEN - n)  # padding tokens with attention_mask 0 change nothing
        args = [
            torch.from_numpy(np.pad(np.asarray(row[name][:, :n], dtype=np.int64), ((0, 0), (0, pad))))
            for name in INPUT_NAMES
        ]
        return self.method.execute(args)[0].numpy()

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        batch = np.asarray(feeds["input_ids"]).shape[0]
        rows = [self._row({name: np.asarray(feeds[name])[b : b + 1] for name in INPUT_NAMES}) for b in range(batch)]
        return np.concatenate(rows).astype(np.float32, copy=False)
