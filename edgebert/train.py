"""`edgebert train`: DynaBERT-style dynamic training, distilled, resumable.

Stages (DESIGN.md): teacher (fine-tune the full model when it has no task head) → rewire →
width stage (every width, teacher = the full model) → width+depth stage (every width × depth,
teacher = the width-adaptive model) → quality table on the dev set. `--task embedding`
distils a sentence encoder's own embeddings into its sub-networks instead.

Each finished stage leaves its model in a work folder beside --out; the running stage writes
an atomic checkpoint every N steps and on Ctrl-C, so `--resume` continues exactly where it
stopped (same data order, same dropout draws). HF Accelerate picks the device and processes:
`python -m edgebert.train` and `accelerate launch -m edgebert.train` run this same code.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from .data_sets import BUILTIN, DataSet, check_labels, hash_split, load_data, to_batch
from .dynamic import dynamic_forward
from .errors import DataError, EdgebertError, UsageError
from .model import Bert, load_model, with_task_head
from .spec import DEPTHS, WIDTHS, SubnetSpec

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
    epochs: float = 1.0  # per stage
    max_steps: int | None = None  # per stage; caps epochs
    teacher_max_steps: int | None = None  # fine-tuning the teacher usually deserves more (default: max_steps)
    batch_size: int = 32
    seq_len: int = 128
    lr: float = 5e-5
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


# ---- losses -----------------------------------------------------------------------------


def _soft_ce(student_logits, teacher_logits):
    return -(F.softmax(teacher_logits, -1) * F.log_softmax(student_logits, -1)).sum(-1).mean()


def _output_loss(task, student_out, teacher_out):
    if task == "classification":
        return _soft_ce(student_out, teacher_out)
    # direction is what retrieval uses; MSE keeps the scale honest for unnormalised users
    return (1 - F.cosine_similarity(student_out, teacher_out, dim=-1)).mean() + F.mse_loss(student_out, teacher_out)


def _hidden_loss(states, layers, teacher_states):
    """MSE at the embedding output and after each kept layer, against the teacher at the same layer."""
    pairs = [(states[0], teacher_states[0])] + [(s, teacher_states[i + 1]) for s, i in zip(states[1:], layers)]
    return sum(F.mse_loss(s, t) for s, t in pairs)


def _teacher_step(cfg, acc):
    def step(student, teacher, batch):
        loss = F.cross_entropy(student(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]),
                               batch["labels"])
        acc.backward(loss)
        return loss.item()
    return step


def _width_step(cfg, acc):
    """All widths at full depth against the fixed full teacher; gradients accumulate over widths."""
    def step(student, teacher, batch):
        with torch.no_grad():
            t_out, t_states, _ = dynamic_forward(teacher, batch, SubnetSpec(1.0, 1.0))
        total = 0.0
        for w in cfg.widths:
            out, states, layers = dynamic_forward(student, batch, SubnetSpec(w, 1.0))
            loss = _output_loss(cfg.task, out, t_out) + cfg.width_hidden_weight * _hidden_loss(states, layers, t_states)
            acc.backward(loss)
            total += loss.item()
        return total / len(cfg.widths)
    return step


def _depth_step(cfg, acc):
    """Every width × depth; the teacher is the width-adaptive model at the same width, full depth."""
    def step(student, teacher, batch):
        total, n = 0.0, 0
        for w in cfg.widths:
            with torch.no_grad():
                t_out, t_states, _ = dynamic_forward(teacher, batch, SubnetSpec(w, 1.0))
            for d in cfg.depths:
                out, states, layers = dynamic_forward(student, batch, SubnetSpec(w, d))
                loss = _output_loss(cfg.task, out, t_out) + _hidden_loss(states, layers, t_states)
                acc.backward(loss)
                total, n = total + loss.item(), n + 1
        return total / n
    return step


# ---- stage bookkeeping -------------------------------------------------------------------


def _save_stage(acc, model: Bert, path: Path) -> None:
    """A finished stage's model, written once and atomically; --resume skips the stage when it exists."""
    if acc.is_main_process:
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save(tmp)
        tmp.rename(path)
    acc.wait_for_everyone()  # no process may look for `path` before it is complete


def _prepare_work(cfg: TrainConfig, acc) -> Path:
    from .atomic import check_output_dir

    out = Path(cfg.out)
    check_output_dir(out, cfg.force)
    work = out.parent / f".{out.name}.train"
    identity = work / "run.json"
    if acc.is_main_process:
        if work.exists() and not cfg.resume:
            if not cfg.force:
                raise UsageError(f"an unfinished run of {out} is in {work}; pass --resume to continue it, "
                                 f"or --force to start over")
            shutil.rmtree(work)
        if work.exists() and identity.exists():
            saved = json.loads(identity.read_text())
            if saved != cfg.run_identity():
                diff = sorted(k for k in saved if saved.get(k) != cfg.run_identity().get(k))
                raise UsageError(f"--resume: the run in {work} used different settings ({', '.join(diff)}); "
                                 f"give the same flags, or --force to start over")
        work.mkdir(parents=True, exist_ok=True)
        identity.write_text(json.dumps(cfg.run_identity(), indent=2) + "\n")
    acc.wait_for_everyone()
    return work


STAGES = ("teacher", "width", "depth")


class _CtrlC:
    """The first Ctrl-C only raises a flag: the loop stops at the next step boundary, where model,
    optimizer and data position agree, and checkpoints there. A second Ctrl-C stops at once."""

    def __enter__(self):
        self.requested, self._old = False, None
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def _handle(self, *_):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _optimizer(model: Bert, cfg: TrainConfig, total: int):
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "norm" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "norm" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    return opt, sched


def _batch_at(step: int, stage: str, per_epoch: int, cfg, acc, train_set, tokenizer, labels, seq_len) -> dict:
    """The batch of `step`: a pure function of (seed, stage, step), which is what lets --resume
    continue without repeating or skipping data. Each process takes its own slice."""
    epoch, i = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + STAGES.index(stage) * 10_007 + epoch)
    order = torch.randperm(len(train_set), generator=gen)
    start = (i * acc.num_processes + acc.process_index) * cfg.batch_size
    examples = [train_set.examples[j] for j in order[start:start + cfg.batch_size].tolist()]
    batch = to_batch(tokenizer, examples, seq_len, labels if cfg.task == "classification" else None)
    return {k: v.to(acc.device) for k, v in batch.items()}


def _save_checkpoint(work: Path, stage: str, step: int, model, opt, sched, history, seconds) -> None:
    from safetensors.torch import save_file

    tmp, final = work / "checkpoint.tmp", work / "checkpoint"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng}, tmp / "state.pt")
    (tmp / "progress.json").write_text(json.dumps({"stage": stage, "step": step, "seconds": seconds,
                                                   "history": history}) + "\n")
    old = work / "checkpoint.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(work: Path, stage: str, model, opt, sched, device) -> tuple[int, list, float]:
    from safetensors.torch import load_file

    ck = work / "checkpoint"
    if not ck.exists():  # a crash between _save_checkpoint's two renames leaves only the old one
        ck = work / "checkpoint.old"
    if not (ck / "progress.json").exists():
        return 0, [], 0.0
    progress = json.loads((ck / "progress.json").read_text())
    if progress["stage"] != stage:  # a finished earlier stage's leftover
        return 0, [], 0.0
    model.load_state_dict(load_file(str(ck / "model.safetensors"), device=str(device)))
    state = torch.load(ck / "state.pt", map_location=device, weights_only=True)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["cpu"].cpu())
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
    return progress["step"], progress["history"], progress["seconds"]


def _sync_grads(acc, model) -> None:
    # Sub-network forwards bypass DDP's forward hooks, so gradients are averaged by hand, once
    # per optimizer step after all sub-networks have accumulated theirs.
    if acc.num_processes > 1:
        for p in model.parameters():
            if p.grad is not None:
                p.grad = acc.reduce(p.grad, reduction="mean")


def _run_stage(stage, student, teacher, step_fn, *, cfg, acc, work, train_set, tokenizer, labels, log, progress,
               stop_at) -> Bert:
    from tqdm.auto import tqdm

    seq_len = min(cfg.seq_len, student.config.max_position_embeddings)
    per_epoch = max(1, len(train_set) // (cfg.batch_size * acc.num_processes))
    total = max(1, round(cfg.epochs * per_epoch))
    cap = (cfg.teacher_max_steps or cfg.max_steps) if stage == "teacher" else cfg.max_steps
    total = min(total, cap) if cap else total
    student.to(acc.device).train()
    if teacher is not None:
        teacher.to(acc.device).eval().requires_grad_(False)
    opt, sched = _optimizer(student, cfg, total)
    torch.manual_seed(cfg.seed * 1_000_003 + STAGES.index(stage))  # dropout draws
    start, history, seconds = _load_checkpoint(work, stage, student, opt, sched, acc.device)
    bar = tqdm(total=total, initial=start, desc=f"train: {stage}", unit="step",
               disable=not progress or not acc.is_main_process)
    t0, seen = time.perf_counter(), 0
    with bar, _CtrlC() as ctrl_c:
        for step in range(start, total):
            batch = _batch_at(step, stage, per_epoch, cfg, acc, train_set, tokenizer, labels, seq_len)
            opt.zero_grad(set_to_none=True)
            history.append(round(step_fn(student, teacher, batch), 6))
            _sync_grads(acc, student)
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            sched.step()
            seen += len(batch["input_ids"]) * acc.num_processes
            elapsed = time.perf_counter() - t0
            bar.set_postfix(loss=f"{history[-1]:.4f}", ex_s=f"{seen / max(elapsed, 1e-9):.1f}")
            bar.update(1)
            stop = ctrl_c.requested or stop_at == (stage, step + 1)
            if acc.num_processes > 1:  # every process must stop at the same step
                stop = bool(acc.reduce(torch.tensor([float(stop)], device=acc.device), reduction="sum") > 0)
            if (step + 1) % cfg.checkpoint_every == 0 or stop:
                if acc.is_main_process:
                    _save_checkpoint(work, stage, step + 1, student, opt, sched, history, seconds + elapsed)
                acc.wait_for_everyone()
            if stop:
                raise KeyboardInterrupt
    seconds += time.perf_counter() - t0
    k = max(1, len(history) // 10)
    log["stages"][stage] = {"steps": total, "seconds": round(seconds, 1), "loss_first": sum(history[:k]) / k,
                            "loss_last": sum(history[-k:]) / k, "history": history}
    log["peak_rss_mb"] = round(max(log.get("peak_rss_mb", 0), _peak_rss_mb()), 1)
    if acc.is_main_process:
        (work / "log.json").write_text(json.dumps(log) + "\n")
    return student.eval()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def train(args: TrainConfig, progress: bool = True, *, _stop_at: tuple[str, int] | None = None) -> Path:
    """Run the whole recipe; return the output folder. `_stop_at=(stage, step)` simulates Ctrl-C (tests)."""
    from ._optional import require
    from .tokenizer import load_tokenizer

    cfg = args
    accelerate = require("accelerate", extra="train", what="edgebert train")
    acc = accelerate.Accelerator()
    train_set, dev = _load_splits(cfg)
    work = _prepare_work(cfg, acc)
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
            teacher = _run_stage("teacher", with_task_head(base, labels), None, _teacher_step(cfg, acc),
                                 labels=labels, **common)
            _save_stage(acc, teacher, work / "teacher")
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
        _save_stage(acc, rewired, work / "rewired")

    if (work / "width").exists():
        width_model = load_model(work / "width")
    else:
        width_model = _run_stage("width", _copy(rewired), rewired, _width_step(cfg, acc), labels=labels, **common)
        _save_stage(acc, width_model, work / "width")
    final = _run_stage("depth", _copy(width_model), width_model, _depth_step(cfg, acc), labels=labels, **common)
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
    log["peak_rss_mb"] = round(max(log.get("peak_rss_mb", 0), _peak_rss_mb()), 1)
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
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default %(default)s)")
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
