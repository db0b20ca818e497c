"""TrainConfig: one `edgebert train` run, checked on construction, saved beside the model as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from edgebert.errors import UsageError
from edgebert.export.atomic import unlisted
from edgebert.model.bert import CONFIG_FILE, WEIGHTS_FILE
from edgebert.model.config import EXIT_POOLS
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.tokenizer import TOKENIZER_FILES
from edgebert.select.quality import QUALITY_FILE
from edgebert.train.evaluate import resolve_quantized

__all__ = ["TrainConfig", "TASKS", "TRAIN_CONFIG_FILE", "trained_folder_proof"]

TASKS = ("classification", "embedding")
EXIT_MODES = ("romebert", "deebert")  # train/exits.py implements them
CONFIG_VERSION = 1
TRAIN_CONFIG_FILE = "train_config.json"
_TRAINED_FILES = {
    CONFIG_FILE,
    WEIGHTS_FILE,
    TRAIN_CONFIG_FILE,
    QUALITY_FILE,
    "training.json",
    "rewire.json",
    "exits.json",  # train/exits.py EXITS_FILE
    *TOKENIZER_FILES,
}


def trained_folder_proof(folder: Path) -> str | None:
    """`edgebert train --force` replaces only a folder it wrote: its train_config.json, and nothing else
    but the files a trained model folder holds (atomic_dir's output-safety rule)."""
    if not (folder / TRAIN_CONFIG_FILE).is_file():
        return f"it has no {TRAIN_CONFIG_FILE}"
    extra = unlisted(folder, _TRAINED_FILES, {"teacher"})
    return f"edgebert train does not write {', '.join(extra[:5])}" if extra else None


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    model: str | None = None  # None: the packaged MiniLM
    eval: str | None = None  # None: the built-in set's dev split, or a hash split of --data
    task: str = "classification"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    # Defaults: the recipe measured on MiniLM / Rotten Tomatoes (README): one epoch per stage at 5e-5
    # left the smallest depth far behind (w0.5-d0.5 at 75% of the teacher), ~2 epochs at 1e-4 kept 99%.
    epochs: float = 2.0  # per stage
    max_steps: int | None = None  # per stage; caps epochs
    teacher_max_steps: int | None = None  # fine-tuning the teacher usually deserves more (default: max_steps)
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 1e-4
    warmup: float = 0.1  # share of a stage's steps
    weight_decay: float = 0.01
    width_hidden_weight: float = 0.1  # DynaBERT: 0.1 in the width stage, 1.0 in the depth stage
    widths: tuple[float, ...] = WIDTHS
    depths: tuple[float, ...] = DEPTHS
    rewire_texts: int = 1024
    seed: int = 0
    checkpoint_every: int = 100
    keep_teacher: bool = False  # also save the teacher in OUT/teacher (benchmarks compare against it)
    # Early exit (train/exits.py): None, "romebert" (joint, one stage) or "deebert" (exits after the backbone).
    exits: str | None = None
    exit_kd_weight: float = 0.5  # RomeBERT's gamma: share of each exit's loss that is self-distillation
    exit_temperature: float = 2.0  # RomeBERT's distillation temperature T
    # What the exit heads read (BertConfig.exit_pool): "mean" (the tokens' mean: MiniLM's [CLS] state carries
    # little before its last layers, benchmarks/exit_signal.py) or "cls" (DeeBERT's and RomeBERT's heads).
    exit_pool: str = "mean"
    # The exit heads' learning rate as a multiple of --lr: they start as copies of the final head (made for
    # the last layer's [CLS]) and must move far, while the backbone must stay near its distilled weights.
    exit_lr_scale: float = 10.0
    # Sandwich rule (issue 17, BigNAS/OFA) in the width+depth stage: the largest and smallest sub-networks of
    # the per-layer search space and N random ones per step, instead of DynaBERT's grid (0: the grid).
    sandwich: int = 0
    # Quality per precision (issue 16 item 4): after training, every (width, depth) is also converted as each
    # FORMAT/RECIPE here and scored on the dev set in that format's runtime (None: DEFAULT_QUANTIZED).
    quantized: tuple[str, ...] | None = None
    no_quantized: bool = False  # skip those scores (the selector then measures on its proxy texts when asked)
    resume: bool = False
    force: bool = False
    version: int = CONFIG_VERSION
    subnets_per_step = 0  # depth_step reads it (compress --subnets-per-step); train distils the whole grid

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(float(w) for w in self.widths))
        object.__setattr__(self, "depths", tuple(float(d) for d in self.depths))
        if self.task not in TASKS:
            raise UsageError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name in ("batch_size", "seq_len", "checkpoint_every", "rewire_texts"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("max_steps", "teacher_max_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
        if self.epochs <= 0 or self.lr <= 0:
            raise UsageError("--epochs and --lr must be > 0")
        for w in self.widths + self.depths:
            SubnetSpec(w, 1.0)  # range check with the spec's own message
        if self.exits is not None and self.exits not in EXIT_MODES:
            raise UsageError(f"--exits must be one of {', '.join(EXIT_MODES)}, got {self.exits!r}")
        if self.exits is not None and self.task != "classification":
            raise UsageError("--exits trains classifiers at every layer; it needs --task classification")
        if not (0.0 <= self.exit_kd_weight <= 1.0) or self.exit_temperature <= 0:
            raise UsageError("exit_kd_weight must be in [0, 1] and exit_temperature > 0")
        if self.exit_pool not in EXIT_POOLS:
            raise UsageError(f"--exit-pool must be one of {', '.join(EXIT_POOLS)}, got {self.exit_pool!r}")
        scale = self.exit_lr_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise UsageError(f"--exit-lr-scale must be a number > 0, got {scale!r}")
        if isinstance(self.sandwich, bool) or not isinstance(self.sandwich, int) or self.sandwich < 0:
            raise UsageError(
                f"--sandwich takes a count of random configurations per step (>= 0), got {self.sandwich!r}"
            )
        if self.sandwich and self.exits is not None:
            raise UsageError("--sandwich with --exits is not supported yet: exits are trained on DynaBERT's grid")
        object.__setattr__(self, "quantized", resolve_quantized(self.quantized, self.no_quantized))
        if 1.0 not in self.widths or 1.0 not in self.depths:
            raise UsageError("--widths and --depths must include 1.0 (the full model is the depth stage's teacher)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["depths"], d["quantized"] = list(self.widths), list(self.depths), list(self.quantized)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if d.get("version", CONFIG_VERSION) != CONFIG_VERSION:
            raise UsageError(f"train config version {d.get('version')} is not supported (expected {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def run_identity(self) -> dict:
        """What must match for --resume to continue a run (not how it is launched)."""
        # The quantized scores come after the last stage: a resumed run may ask for others.
        skip = ("resume", "force", "checkpoint_every", "quantized", "no_quantized")
        return {k: v for k, v in self.to_dict().items() if k not in skip}
