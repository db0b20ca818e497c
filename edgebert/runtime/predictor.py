"""Predictor: an export folder run on raw text, one input at a time, as an app runs it.

Plain folders run their one artifact; early-exit folders run their segments in order and stop where
the policy (manifest.json's early_exit.policy, or one given here) says. A static (TFLite) file with
sequence-length buckets runs each text in the signature of the smallest bucket that holds its tokens
(the largest, truncating, when none does); dynamic files run every text at its own length. Every figure it returns is
measured here: `ms` is wall time per input (tokenizer + segments + policy), one run, this machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebert.errors import OutputError, UsageError
from edgebert.runtime.backends import open_session
from edgebert.runtime.policy import Policy, policy_from_dict, run_policy, softmax
from edgebert.runtime.text import INPUT_NAMES, encode_one, load_tokenizer

__all__ = ["Prediction", "Predictor", "FORMAT_PREFERENCE", "open_segments", "segment_exits"]

FORMAT_PREFERENCE = ("onnx", "tflite", "torchscript", "executorch")  # the fastest on a CPU host first (DESIGN.md table)


@dataclass(frozen=True)
class Prediction:
    exit_layer: int  # 1-based; the last layer when the folder has no exits
    ms: float
    label: str | None = None
    scores: dict[str, float] | None = None
    embedding: list[float] | None = field(default=None, repr=False)
    bucket: int | None = None  # the sequence-length bucket (signature's length) the text ran in, if any

    def to_dict(self) -> dict:
        d = {"label": self.label, "scores": self.scores} if self.embedding is None else {"embedding": self.embedding}
        d = {**d, "exit_layer": self.exit_layer, "ms": round(self.ms, 3)}
        return d if self.bucket is None else {**d, "bucket": self.bucket}


def open_segments(folder: Path, early_exit: dict, fmt: str, threads: int = 1, seq_len: int | None = None) -> list:
    """A session per segment, in order (manifest.json's early_exit section says which files and names).
    `seq_len`: TFLite's signatures of that sequence-length bucket (early_exit["buckets"]); default the largest."""
    files, segments = early_exit["files"][fmt], early_exit["segments"]
    signatures = [seg["name"] for seg in segments]
    if fmt == "tflite" and seq_len is not None:
        by_len = {b["seq_len"]: b["signatures"] for b in early_exit.get("buckets") or []}
        if seq_len not in by_len:
            raise UsageError(f"no {seq_len}-token bucket in these segments; buckets: {sorted(by_len) or 'none'}")
        signatures = by_len[seq_len]
    sessions = []
    for k, seg in enumerate(segments):
        entry = files[0] if len(files) == 1 else files[k]  # TFLite: one file, one signature per segment
        sessions.append(
            open_session(
                fmt,
                Path(folder) / entry["file"],
                inputs=[t["name"] for t in seg["inputs"]],
                outputs=[t["name"] for t in seg["outputs"]],
                threads=threads,
                signature=signatures[k] if fmt == "tflite" else None,
            )
        )
    return sessions


def segment_exits(sessions, feeds: dict[str, np.ndarray]):
    """Each exit's logits [B, labels], a segment run only when the next exit is asked for (a generator):
    segment 1 takes the token inputs, every later one the previous hidden state and the attention mask."""
    hidden = None
    for k, session in enumerate(sessions):
        if k == 0:
            out = session({n: feeds[n] for n in INPUT_NAMES})
        else:
            out = session({"hidden": hidden, "attention_mask": feeds["attention_mask"]})
        hidden = out.get("hidden_out")
        yield np.asarray(out["logits"], dtype=np.float32)


def _manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        raise OutputError(f"{folder} has no manifest.json; give an edgebert export folder")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise OutputError(f"{path} is not valid JSON ({exc}); re-run the export") from None


class Predictor:
    def __init__(self, folder, fmt: str | None = None, *, threads: int = 1, policy: Policy | None = None):
        self.folder = Path(folder)
        self.manifest = m = _manifest(self.folder)
        self.labels = list(m["source_model"].get("labels") or [])
        self.layers = len(m["subnet"]["heads"])
        self.early_exit = m.get("early_exit")
        formats = list(self.early_exit["files"]) if self.early_exit else [a["format"] for a in m["artifacts"]]
        if fmt is None:
            fmt = next((f for f in FORMAT_PREFERENCE if f in formats), None)
        if fmt not in formats:
            raise UsageError(
                f"{self.folder} has no {fmt} {'segments' if self.early_exit else 'artifact'}; it has: "
                f"{', '.join(formats) or 'none'}"
            )
        self.format, self.threads = fmt, threads
        self.buckets: list[int] = []  # sequence-length buckets of a static file, ascending
        self.tokenizer = load_tokenizer(self.folder)
        if self.early_exit:
            self._open_segments(fmt)
            self.policy = policy or policy_from_dict(self.early_exit["policy"])
        else:
            if policy is not None:
                raise UsageError(f"{self.folder} was exported without --early-exit; it has no exits to take")
            self._open_plain(fmt)
            self.policy = None

    def _open_plain(self, fmt: str) -> None:
        art = next(a for a in self.manifest["artifacts"] if a["format"] == fmt)
        self.seq_len, self.static = int(art["seq_len"]), not art.get("dynamic_shapes", True)
        self.output = art["outputs"][0]["name"]
        names = [t["name"] for t in art["inputs"]] or list(INPUT_NAMES)
        outputs = [t["name"] for t in art["outputs"]]
        buckets = sorted(art.get("buckets") or [], key=lambda b: b["seq_len"]) if self.static else []
        self.buckets = [int(b["seq_len"]) for b in buckets]

        def session(signature=None):
            path = self.folder / art["file"]
            return open_session(fmt, path, inputs=names, outputs=outputs, threads=self.threads, signature=signature)

        # One session per signature, opened when a text first needs it.
        self._signatures = {int(b["seq_len"]): b["signature"] for b in buckets}
        self._sessions: dict[int, object] = {}
        self._open_signature = session
        self.plain = None if buckets else session()

    def bucket_for(self, n_tokens: int) -> int | None:
        """The smallest bucket that holds n_tokens (the largest when none does); None without buckets."""
        if not self.buckets:
            return None
        return next((n for n in self.buckets if n >= n_tokens), self.buckets[-1])

    def _run_plain(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        session = self.plain
        if session is None:
            n = feeds["input_ids"].shape[1]
            if n not in self._sessions:
                self._sessions[n] = self._open_signature(self._signatures[n])
            session = self._sessions[n]
        return np.asarray(session(feeds)[self.output], dtype=np.float32)[0]

    def _open_segments(self, fmt: str) -> None:
        self.seq_len, self.static = int(self.early_exit["seq_len"]), fmt == "tflite"
        self.segments = open_segments(self.folder, self.early_exit, fmt, self.threads)
        if self.static:  # TFLite: each text runs in the signatures of the smallest bucket that holds it
            self.buckets = sorted(int(b["seq_len"]) for b in self.early_exit.get("buckets") or [])
        self._bucket_segments = {self.seq_len: self.segments}  # opened when a text first needs them

    def exits(self, feeds: dict[str, np.ndarray]):
        n = feeds["input_ids"].shape[1]
        if not self.buckets or n == self.seq_len:
            return segment_exits(self.segments, feeds)
        if n not in self._bucket_segments:
            self._bucket_segments[n] = open_segments(self.folder, self.early_exit, self.format, self.threads, n)
        return segment_exits(self._bucket_segments[n], feeds)

    def feeds(self, text: str) -> dict[str, np.ndarray]:
        if not self.buckets:
            return encode_one(self.tokenizer, text, self.seq_len, pad=self.static)
        own = encode_one(self.tokenizer, text, self.seq_len, pad=False)
        pad = self.bucket_for(own["input_ids"].shape[1]) - own["input_ids"].shape[1]
        return {k: np.pad(v, ((0, 0), (0, pad))) for k, v in own.items()}  # zeros: padding, mask 0

    def predict(self, text: str) -> Prediction:
        t0 = time.perf_counter()
        feeds = self.feeds(text)
        if self.early_exit:
            layer, out = run_policy(self.policy, (z[0] for z in self.exits(feeds)))
        else:
            layer, out = self.layers, self._run_plain(feeds)
        ms = (time.perf_counter() - t0) * 1000
        bucket = feeds["input_ids"].shape[1] if self.buckets else None
        if not self.labels:
            return Prediction(exit_layer=layer, ms=ms, embedding=[float(x) for x in out], bucket=bucket)
        probs = softmax(out)
        scores = {name: round(float(p), 6) for name, p in zip(self.labels, probs)}
        return Prediction(exit_layer=layer, ms=ms, label=self.labels[int(probs.argmax())], scores=scores, bucket=bucket)
