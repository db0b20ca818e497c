"""CompressConfig: one `edgebert compress` run, checked on construction, saved beside the model as JSON.

It carries the fields train's step loop reads (train/loop.py run_stage: epochs, max_steps, batch_size,
seq_len, lr, warmup, weight_decay, seed, checkpoint_every, task, widths, depths), so distillation runs
through that one loop, with its checkpoints and --resume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from edgebert.compress.prune import check_share
from edgebert.errors import UsageError
from edgebert.export.atomic import unlisted
from edgebert.model.bert import CONFIG_FILE, WEIGHTS_FILE
from edgebert.model.compression import COMPRESSION_FILE
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.tokenizer import TOKENIZER_FILES
from edgebert.select.quality import QUALITY_FILE
from edgebert.train.config import TASKS
from edgebert.train.evaluate import resolve_quantized

__all__ = ["CompressConfig", "COMPRESS_CONFIG_FILE", "DEFAULT_PRUNE_STEPS", "compressed_folder_proof"]

CONFIG_VERSION = 1
DEFAULT_PRUNE_STEPS = 3  # structured pruning in 3 steps, each distilled: --max-steps 300 gives each step 100
COMPRESS_CONFIG_FILE = "compress_config.json"
_FILES = {CONFIG_FILE, WEIGHTS_FILE, COMPRESS_CONFIG_FILE, COMPRESSION_FILE, QUALITY_FILE, "training.json"}
_FILES |= set(TOKENIZER_FILES)


def compressed_folder_proof(folder: Path) -> str | None:
    """`--force` replaces only a folder `edgebert compress` wrote (atomic_dir's output-safety rule)."""
    if not (folder / COMPRESS_CONFIG_FILE).is_file():
        return f"it has no {COMPRESS_CONFIG_FILE}"
    extra = unlisted(folder, _FILES, set())
    return f"edgebert compress does not write {', '.join(extra[:5])}" if extra else None


def _rank_value(value, flag: str):
    """A rank as given: int = a count, float = a share of the full rank, None = dense (resolved per model)."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be >= 1 (a rank) or in (0, 1] (a share of the full rank), got {value!r}")
        return value
    raise UsageError(f"{flag} takes a number, got {value!r}")


@dataclass(frozen=True)
class CompressConfig:
    data: str
    out: str
    model: str | None = None  # None: the packaged MiniLM (then --task embedding)
    eval: str | None = None
    task: str = "classification"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    embedding_rank: int | float | None = None  # int: rank; float: share of the full rank; None: dense
    weight_rank: int | float | None = None
    prune: float = 0.0
    prune_kind: str = "structured"
    # Structured pruning in this many steps, each followed by its share of the distillation (compress/iterative.py,
    # LadaBERT's schedule); None: DEFAULT_PRUNE_STEPS. Unstructured pruning ramps up inside one distillation.
    prune_steps: int | None = None
    memory: str | None = None  # "12MB": search ranks/pruning whose predicted int8 size fits (with --device)
    device: str | None = None
    # Short by default (LadaBERT: an order of magnitude less training than distillation alone).
    epochs: float = 1.0
    max_steps: int | None = 300
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 1e-4
    warmup: float = 0.1
    weight_decay: float = 0.01
    widths: tuple[float, ...] = WIDTHS
    depths: tuple[float, ...] = DEPTHS
    rewire_texts: int = 1024
    # Sub-networks distilled per step: the largest, the smallest and N - 2 drawn from the width x depth grid
    # (train/distill.py grid_this_step); 0 = the whole grid every step. 4 of the default 12 keeps a default run
    # within about 30 minutes on 2 CPU cores (README); the quality table is still measured for every one.
    subnets_per_step: int = 4
    seed: int = 0
    checkpoint_every: int = 100
    # The compressed artifacts' own dev scores per precision, as `edgebert train` writes them (classifiers;
    # train/evaluate.py): None = DEFAULT_QUANTIZED; no_quantized skips them.
    quantized: tuple[str, ...] | None = None
    no_quantized: bool = False
    resume: bool = False
    force: bool = False
    version: int = CONFIG_VERSION
    teacher_max_steps = None  # run_stage reads it for its "teacher" stage only; compress has none
    sandwich = 0  # depth_step reads it (train --sandwich); compress distils the uniform grid only

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(float(w) for w in self.widths))
        object.__setattr__(self, "depths", tuple(float(d) for d in self.depths))
        if self.task not in TASKS:
            raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        _rank_value(self.embedding_rank, "--embedding-rank")
        _rank_value(self.weight_rank, "--weight-rank")
        check_share(self.prune, self.prune_kind)
        if self.prune_steps is not None:
            if isinstance(self.prune_steps, bool) or not isinstance(self.prune_steps, int) or self.prune_steps < 1:
                raise UsageError(f"--prune-steps must be a whole number >= 1, got {self.prune_steps!r}")
            if self.prune_kind != "structured":
                raise UsageError(
                    "--prune-steps is for structured pruning: unstructured pruning already rises gradually "
                    "inside the one distillation (a cubic schedule)"
                )
        if (self.memory is None) != (self.device is None):
            raise UsageError("--memory and --device go together: the device's format decides the predicted size")
        if self.memory is not None and (self.embedding_rank or self.weight_rank or self.prune):
            raise UsageError("--memory searches ranks and pruning itself; drop --embedding-rank/--weight-rank/--prune")
        for name in ("batch_size", "seq_len", "checkpoint_every", "rewire_texts"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        n = self.subnets_per_step
        if isinstance(n, bool) or not isinstance(n, int) or n < 0 or n == 1:
            raise UsageError(
                f"--subnets-per-step takes 0 (every width x depth each step) or a count >= 2 (the largest, the "
                f"smallest and random others), got {n!r}"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError("--max-steps must be >= 1")
        if self.epochs <= 0 or self.lr <= 0:
            raise UsageError("--epochs and --lr must be > 0")
        for w in self.widths + self.depths:
            SubnetSpec(w, 1.0)
        if 1.0 not in self.widths or 1.0 not in self.depths:
            raise UsageError("--widths and --depths must include 1.0")
        object.__setattr__(self, "quantized", resolve_quantized(self.quantized, self.no_quantized))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["depths"], d["quantized"] = list(self.widths), list(self.depths), list(self.quantized)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CompressConfig":
        if d.get("version", CONFIG_VERSION) != CONFIG_VERSION:
            raise UsageError(f"compress config version {d.get('version')} is not supported")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def run_identity(self) -> dict:
        """What must match for --resume to continue a run."""
        # The quantized scores come after the distillation: a resumed run may ask for others.
        skip = ("resume", "force", "checkpoint_every", "quantized", "no_quantized")
        return {k: v for k, v in self.to_dict().items() if k not in skip}
