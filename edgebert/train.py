"""`edgebert train`: DynaBERT-style dynamic training, distilled, resumable.

Stages (DESIGN.md): teacher (fine-tune the full model when it has no task head) → rewire →
width stage (every width, teacher = the full model) → width+depth stage (every width × depth,
teacher = the width-adaptive model) → quality table on the dev set. `--task embedding`
distils a sentence encoder's own embeddings into its sub-networks instead.

Each finished stage leaves its model in a work folder beside --out; the running stage writes
an atomic checkpoint every N steps and on Ctrl-C, so `--resume` continues exactly where it
stopped (same data order, same dropout draws). The losses are in distill.py, the shared step
loop and checkpoints in train_loop.py. HF Accelerate picks the device and processes:
`python -m edgebert.train` and `accelerate launch -m edgebert.train` run this same code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from .data_sets import BUILTIN, DataSet, check_labels, hash_split, load_data
from .distill import depth_step, teacher_step, width_step
from .errors import DataError, EdgebertError, UsageError
from .model import Bert, load_model, with_task_head
from .spec import DEPTHS, WIDTHS, SubnetSpec
from .train_loop import peak_rss_mb, prepare_work, run_stage, save_stage

__all__ = ["TrainConfig", "train", "train_main", "train_from_args", "add_train_arguments", "TASKS"]

TASKS = ("classification", "embedding")
CONFIG_VERSION = 1
TRAIN_CONFIG_FILE = "train_config.json"


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
    resume: bool = False
    force: bool = False
    version: int = CONFIG_VERSION

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
        if 1.0 not in self.widths or 1.0 not in self.depths:
            raise UsageError("--widths and --depths must include 1.0 (the full model is the depth stage's teacher)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["depths"] = list(self.widths), list(self.depths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        if d.get("version", CONFIG_VERSION) != CONFIG_VERSION:
            raise UsageError(f"train config version {d.get('version')} is not supported (expected {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def run_identity(self) -> dict:
        """What must match for --resume to continue a run (not how it is launched)."""
        return {k: v for k, v in self.to_dict().items() if k not in ("resume", "force", "checkpoint_every")}


# ---- data and teacher -----------------------------------------------------------------


def _load_splits(cfg: TrainConfig) -> tuple[DataSet, DataSet]:
    labelled = cfg.task == "classification"
    cols = dict(labelled=labelled, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                label_column=cfg.label_column)
    if cfg.data in BUILTIN:
        train_set = load_data(cfg.data, split="train", **cols)
        dev = load_data(cfg.eval, **cols) if cfg.eval else load_data(cfg.data, split="dev", **cols)
    elif cfg.eval:
        train_set, dev = load_data(cfg.data, **cols), load_data(cfg.eval, **cols)
    else:
        train_set, dev = hash_split(load_data(cfg.data, **cols))
    if len(train_set) < cfg.batch_size:
        raise DataError(f"{train_set.source}: {len(train_set)} training examples, fewer than one batch of "
                        f"{cfg.batch_size}; add data or lower --batch-size")
    if not len(dev):
        raise DataError(f"{dev.source}: no evaluation examples; pass --eval FILE")
    if labelled:
        if len(train_set.labels) < 2:
            raise DataError(f"{train_set.source}: only one label value {train_set.labels}; a classifier needs two or more")
        check_labels(dev, train_set.labels)
    return train_set, dev


def _model_dir(cfg: TrainConfig) -> Path:
    from .defaults import default_model_dir

    return Path(cfg.model) if cfg.model else default_model_dir()


def _labels_for(model: Bert, train_set: DataSet) -> tuple[str, ...]:
    if model.config.task != "classification":
        return train_set.labels
    known = model.config.labels
    unseen = sorted(set(train_set.labels) - set(known))
    if unseen:
        raise DataError(f"{train_set.source}: label {unseen[0]!r} is not one of the model's labels {known}")
    return known


# ---- the recipe ---------------------------------------------------------------------------


def train(args: TrainConfig, progress: bool = True, *, _stop_at: tuple[str, int] | None = None) -> Path:
    """Run the whole recipe; return the output folder. `_stop_at=(stage, step)` simulates Ctrl-C (tests)."""
    from ._optional import require
    from .tokenizer import load_tokenizer

    cfg = args
    accelerate = require("accelerate", extra="train", what="edgebert train")
    acc = accelerate.Accelerator()
    train_set, dev = _load_splits(cfg)
    work = prepare_work(cfg, acc)
    src = _model_dir(cfg)
    log = json.loads((work / "log.json").read_text()) if (work / "log.json").exists() else {"stages": {}}
    common = dict(cfg=cfg, acc=acc, work=work, train_set=train_set, tokenizer=load_tokenizer(src), log=log,
                  progress=progress, stop_at=_stop_at)

    base = load_model(src)
    if cfg.task == "embedding":
        if base.config.task != "embedding":
            raise UsageError(f"--task embedding distils a sentence encoder, but {src} is a classifier; "
                             f"use --task classification")
        teacher, labels = base, None
    else:
        labels = _labels_for(base, train_set)
        if base.config.task == "classification":
            teacher = base  # already fine-tuned: it is the teacher as given
        elif (work / "teacher").exists():
            teacher = load_model(work / "teacher")
        else:
            torch.manual_seed(cfg.seed)  # the new task head's initial weights
            teacher = run_stage("teacher", with_task_head(base, labels), None, teacher_step(cfg, acc),
                                 labels=labels, **common)
            save_stage(acc, teacher, work / "teacher")
    del base

    if (work / "rewired").exists():
        rewired = load_model(work / "rewired")
    else:
        from .rewire import rewire

        pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.rewire_texts]
        examples = [train_set.examples[i] for i in pick.tolist()]
        index = {name: i for i, name in enumerate(labels or ())}
        rewired, report = rewire(teacher.cpu(), [e.text for e in examples], common["tokenizer"],
                                 labels=[index[e.label] for e in examples] if labels else None,
                                 seq_len=min(cfg.seq_len, teacher.config.max_position_embeddings),
                                 seed=cfg.seed, progress=progress and acc.is_main_process)
        if acc.is_main_process:
            (work / "rewire.json").write_text(json.dumps(report, indent=2) + "\n")
        save_stage(acc, rewired, work / "rewired")

    if (work / "width").exists():
        width_model = load_model(work / "width")
    else:
        width_model = run_stage("width", _copy(rewired), rewired, width_step(cfg, acc), labels=labels, **common)
        save_stage(acc, width_model, work / "width")
    final = run_stage("depth", _copy(width_model), width_model, depth_step(cfg, acc), labels=labels, **common)
    out = Path(cfg.out)
    if acc.is_main_process:
        _finish(cfg, final, teacher, dev, src, work, log, progress)
    acc.wait_for_everyone()
    return out


def _copy(model: Bert) -> Bert:
    new = Bert(model.config)
    new.load_state_dict(model.state_dict())
    return new


def _finish(cfg, final, teacher, dev, src, work, log, progress) -> None:
    from .atomic import atomic_dir
    from .quality import measure, write_table
    from .tokenizer import copy_tokenizer_files, load_tokenizer

    final = final.cpu().eval()
    specs = [SubnetSpec(w, d) for d in cfg.depths for w in cfg.widths]
    t0 = time.perf_counter()
    table = measure(final, dev, load_tokenizer(src), specs, seq_len=cfg.seq_len, progress=progress)
    log["quality_seconds"] = round(time.perf_counter() - t0, 1)
    log["peak_rss_mb"] = round(max(log.get("peak_rss_mb", 0), peak_rss_mb()), 1)
    with atomic_dir(Path(cfg.out), force=True) as tmp:
        final.save(tmp)
        copy_tokenizer_files(src, tmp)
        (tmp / TRAIN_CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        write_table(tmp, table)
        (tmp / "training.json").write_text(json.dumps(log, indent=2) + "\n")
        if (work / "rewire.json").exists():
            shutil.copy2(work / "rewire.json", tmp / "rewire.json")
        if cfg.keep_teacher:
            teacher.cpu().save(tmp / "teacher")
            copy_tokenizer_files(src, tmp / "teacher")
    shutil.rmtree(work, ignore_errors=True)


# ---- command line ------------------------------------------------------------------------


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig(data="", out="")
    p.add_argument("--data", required=True, help=f"training data: .csv/.tsv/.jsonl (labelled), .txt (one text per "
                   f"line, --task embedding), or built-in: {', '.join(BUILTIN)}")
    p.add_argument("--out", required=True, help="output folder for the dynamic model")
    p.add_argument("--model", default=None, help="starting model folder (default: the packaged MiniLM)")
    p.add_argument("--eval", default=None, help="dev data for the quality table (default: the built-in dev split, "
                   "or a deterministic 20%% hash split of --data)")
    p.add_argument("--task", default=d.task, choices=TASKS)
    p.add_argument("--text-column", default=d.text_column)
    p.add_argument("--text-pair-column", default=None, help="second text column (sentence pairs)")
    p.add_argument("--label-column", default=d.label_column)
    p.add_argument("--epochs", type=float, default=d.epochs, help="epochs per stage (default %(default)s)")
    p.add_argument("--max-steps", type=int, default=None, help="cap on optimizer steps per stage")
    p.add_argument("--teacher-max-steps", type=int, default=None, help="cap for teacher fine-tuning (default: --max-steps)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per process (default %(default)s)")
    p.add_argument("--seq-len", type=int, default=d.seq_len, help="max tokens; batches pad only to their longest")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s, measured on MiniLM; "
                   "BERT-base-sized models want 2e-5..5e-5, as in DynaBERT)")
    p.add_argument("--warmup", type=float, default=d.warmup, help="share of each stage's steps")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--widths", type=_floats, default=d.widths, help="default 0.25,0.5,0.75,1.0")
    p.add_argument("--depths", type=_floats, default=d.depths, help="default 0.5,0.75,1.0")
    p.add_argument("--rewire-texts", type=int, default=d.rewire_texts, help="training texts used to rank heads/neurons")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints")
    p.add_argument("--keep-teacher", action="store_true", help="also save the teacher in OUT/teacher")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run of the same --out")
    p.add_argument("--force", action="store_true", help="replace an existing --out / discard an unfinished run")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def train_from_args(args: argparse.Namespace) -> int:
    out = train(config_from_args(args))
    print(f"wrote {out}")
    return 0


def train_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgebert.train", description=__doc__.split("\n\n")[0])
    add_train_arguments(p)
    args = p.parse_args(argv)
    try:
        return train_from_args(args)
    except EdgebertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished stages and the last checkpoint are kept; continue with the same command "
              "plus --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(train_main())
