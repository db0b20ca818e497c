"""The machinery every training stage shares: the work folder, the optimizer and schedule, the
data order, atomic checkpoints, Ctrl-C handling and the step loop with its progress bar.

A stage's batch at step k is a pure function of (seed, stage, k) and every checkpoint holds
model, optimizer, scheduler and RNG state together, so `--resume` continues exactly where a run
stopped: no example is repeated or skipped and the weights equal an uninterrupted run's.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgebert.errors import UsageError
from edgebert.export.atomic import check_output_dir
from edgebert.model.bert import Bert
from edgebert.train.config import trained_folder_proof
from edgebert.train.data import to_batch

if TYPE_CHECKING:
    from edgebert.train.config import TrainConfig

__all__ = ["STAGES", "prepare_work", "run_stage", "save_stage", "peak_rss_mb"]


def save_stage(acc, model: Bert, path: Path) -> None:
    """A finished stage's model, written once and atomically; --resume skips the stage when it exists."""
    if acc.is_main_process:
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save(tmp)
        tmp.rename(path)
    acc.wait_for_everyone()  # no process may look for `path` before it is complete


def prepare_work(cfg: "TrainConfig", acc, proof=trained_folder_proof) -> Path:
    """`proof`: how --force recognises a folder this command wrote (compress passes its own)."""
    out = Path(cfg.out)
    check_output_dir(out, cfg.force, proof=proof)
    work = out.parent / f".{out.name}.train"
    identity = work / "run.json"
    if acc.is_main_process:
        if work.exists() and not cfg.resume:
            if not cfg.force:
                raise UsageError(
                    f"an unfinished run of {out} is in {work}; pass --resume to continue it, or --force to start over"
                )
            shutil.rmtree(work)
        if work.exists() and identity.exists():
            saved = json.loads(identity.read_text())
            if saved != cfg.run_identity():
                diff = sorted(k for k in saved if saved.get(k) != cfg.run_identity().get(k))
                raise UsageError(
                    f"--resume: the run in {work} used different settings ({', '.join(diff)}); "
                    f"give the same flags, or --force to start over"
                )
        work.mkdir(parents=True, exist_ok=True)
        identity.write_text(json.dumps(cfg.run_identity(), indent=2) + "\n")
    acc.wait_for_everyone()
    return work


STAGES = ("teacher", "width", "depth", "exits")  # "exits": DeeBERT's second stage (train/exits.py)


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


def _optimizer(model: Bert, cfg: "TrainConfig", total: int):
    """AdamW: no weight decay on biases and norms; exit heads (train/exits.py) at lr x cfg.exit_lr_scale."""
    groups = {}
    for n, p in model.named_parameters():
        decays = p.ndim > 1 and "norm" not in n
        exit_head = n.startswith("exits.")
        group = groups.setdefault(
            (decays, exit_head),
            {
                "params": [],
                "weight_decay": cfg.weight_decay if decays else 0.0,
                "lr": cfg.lr * (cfg.exit_lr_scale if exit_head else 1.0),
            },
        )
        group["params"].append(p)
    opt = torch.optim.AdamW(list(groups.values()), lr=cfg.lr)
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )
    return opt, sched


def _batch_at(step: int, stage: str, per_epoch: int, cfg, acc, train_set, tokenizer, labels, seq_len) -> dict:
    """The batch of `step`: a pure function of (seed, stage, step), which is what lets --resume
    continue without repeating or skipping data. Each process takes its own slice."""
    epoch, i = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + STAGES.index(stage) * 10_007 + epoch)
    order = torch.randperm(len(train_set), generator=gen)
    start = (i * acc.num_processes + acc.process_index) * cfg.batch_size
    examples = [train_set.examples[j] for j in order[start : start + cfg.batch_size].tolist()]
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
    (tmp / "progress.json").write_text(
        json.dumps({"stage": stage, "step": step, "seconds": seconds, "history": history}) + "\n"
    )
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


def run_stage(
    stage,
    student,
    teacher,
    step_fn,
    *,
    cfg,
    acc,
    work,
    train_set,
    tokenizer,
    labels,
    log,
    progress,
    stop_at,
    after_step=None,
) -> Bert:
    """`after_step(student, steps_done, total)` runs after each optimizer step, before any checkpoint
    (compress's pruning keeps its zeros there, so a checkpoint never holds a weight the mask removed)."""
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
    bar = tqdm(
        total=total, initial=start, desc=f"train: {stage}", unit="step", disable=not progress or not acc.is_main_process
    )
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
            if after_step is not None:
                after_step(student, step + 1, total)
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
    log["stages"][stage] = {
        "steps": total,
        "seconds": round(seconds, 1),
        "loss_first": sum(history[:k]) / k,
        "loss_last": sum(history[-k:]) / k,
        "history": history,
    }
    log["peak_rss_mb"] = round(max(log.get("peak_rss_mb", 0), peak_rss_mb()), 1)
    if acc.is_main_process:
        (work / "log.json").write_text(json.dumps(log) + "\n")
    return student.eval()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
