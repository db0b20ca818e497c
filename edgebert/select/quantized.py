"""Measured quality of quantized sub-networks (issue 16 item 4), in place of a fixed precision penalty.

For a (width, depth), a format and a recipe, the sub-network is converted by that format's converter
(through the registry), run in the format's own runtime on the proxy's held-out calibration texts, and
compared with the full fp32 model: the mean cosine of its outputs to the full model's ("score"), beside
the fp32 slice's own cosine ("fp32") and, for classifiers, how often its label agrees with the fp32
slice's. Conversion costs seconds per artifact on MiniLM, so figures are measured only when the selector
asks (choose.py asks for the candidates that could still win) and cached per model beside the proxy
table, under the same key (PROXY_VERSION, weights, texts) plus the runtime's version.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from edgebert.artifact import RECIPES, ArtifactConfig
from edgebert.hashing import now_iso
from edgebert.model.loaded import Loaded
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import INPUT_NAMES, encode
from edgebert.registry import CONVERTERS
from edgebert.select.proxy import PROXY_SEQ_LEN, proxy_cache_dir, proxy_key, proxy_texts
from edgebert.select.quality import read_table

__all__ = ["QuantizedQuality", "measure_recipe"]

_BATCH = 32


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def measure_recipe(full, source, tokenizer, spec: SubnetSpec, fmt: str, recipe: str, texts: list[str]) -> dict:
    """Convert `source` (the rewired model) sliced at `spec` with `recipe`, run it in its runtime on `texts`.

    Returns {score, fp32, agreement, n, runtime}: mean cosine of the artifact's and of the fp32 slice's
    outputs to the full fp32 model's, and the artifact's label agreement with the fp32 slice (classifiers)."""
    conv = CONVERTERS.get(fmt)()
    sub = slice_model(source, spec).eval()
    seq_len = min(PROXY_SEQ_LEN, source.config.max_position_embeddings)
    precision = RECIPES[recipe]
    acfg = ArtifactConfig(fmt, precision, seq_len, recipe=recipe)
    outs, subs, fulls = [], [], []
    with tempfile.TemporaryDirectory(prefix="edgebert-qproxy-") as tmp:
        path = Path(tmp) / ("model" + conv.suffix)
        conv.convert(sub, acfg, path)
        runtime = conv.load(path, threads=1)
        with torch.no_grad():
            for i in range(0, len(texts), _BATCH):
                feeds = encode(tokenizer, texts[i : i + _BATCH], seq_len=seq_len)
                longest = int(feeds["attention_mask"].sum(1).max())
                feeds = {k: v[:, :longest] for k, v in feeds.items()}
                args = [torch.from_numpy(feeds[n]) for n in INPUT_NAMES]
                outs.append(np.asarray(runtime(feeds), dtype=np.float32))
                subs.append(sub(*args).float().numpy())
                fulls.append(full(*args).float().numpy())
    out, ref, base = np.concatenate(outs), np.concatenate(subs), np.concatenate(fulls)
    classify = full.config.task == "classification"
    return {
        "score": round(float(_cosines(out, base).mean()), 6),
        "fp32": round(float(_cosines(ref, base).mean()), 6),
        "agreement": round(float((out.argmax(1) == ref.argmax(1)).mean()), 6) if classify else None,
        "n": len(texts),
        "runtime": f"{conv.runtime} {conv.runtime_version()}",
    }


class QuantizedQuality:
    """choose.QuantizedQuality: quality(spec, fmt, precision) -> (score, source).

    `recorded`: the artifact's own score on the dev set, from the per-precision rows of quality.json
    (`edgebert train` writes them; `evaluate --quantized` for other formats). Else, when asked, measured
    (or read from the cache) on demand: with the proxy table (no quality.json) and a sentence encoder, the
    quantized artifact's own cosine to the full model, measured the same way as the fp32 proxy; with a
    quality.json, its fp32 score minus the drop measured here (cosine for encoders; the share of labels that
    change for classifiers), and the source says it is derived."""

    RECIPE = {"int8": "int8", "fp16": "fp16"}  # what the selector's precision is measured as (the gate's first)

    def __init__(self, loaded: Loaded, fp32: dict[str, tuple[float, str]], progress: bool = False):
        self.loaded = loaded
        self.fp32 = fp32
        self.progress = progress
        self.table = read_table(loaded.model_dir)
        self.texts = proxy_texts()
        self.path = proxy_cache_dir() / f"{proxy_key(loaded, self.texts)}.quantized.json"
        self.measured_now: list[str] = []

    def recorded(self, spec: SubnetSpec, fmt: str, precision: str) -> tuple[float, str] | None:
        row = self.table.get(spec.key, {}).get("precisions", {}).get(f"{fmt}/{self.RECIPE[precision]}")
        if row is None or "score" not in row:
            return None
        runtime = f" ({row['runtime']})" if row.get("runtime") else ""
        return float(row["score"]), (
            f"measured for {fmt} {precision} ({row.get('recipe', precision)}): {row.get('metric', 'score')} of "
            f"the artifact in its runtime{runtime} on {row.get('data', 'dev set')} (quality.json, "
            f"n={row.get('n', '?')}, {row.get('measured_at', 'date not recorded')})"
        )

    def __call__(self, spec: SubnetSpec, fmt: str, precision: str) -> tuple[float, str] | None:
        found = self.recorded(spec, fmt, precision)
        if found is not None:
            return found
        if spec.key not in self.fp32:
            return None
        recipe = self.RECIPE[precision]
        figures, where = self._figures(spec, fmt, recipe)
        fp32_score, _ = self.fp32[spec.key]
        what = (
            f"{fmt} {recipe} artifact run in {figures['runtime']} on {figures['n']} held-out calibration texts, {where}"
        )
        classify = self.loaded.full.config.task == "classification"
        if not self.table and not classify:
            return figures["score"], f"proxy measured for {precision}: mean cosine of the {what} to the full fp32 model"
        drop = (1.0 - figures["agreement"]) if classify else max(0.0, figures["fp32"] - figures["score"])
        how = "labels changed vs the fp32 slice" if classify else "cosine lost vs the fp32 slice"
        return (
            fp32_score - drop,
            f"derived for {precision}: fp32 figure {fp32_score:.4f} minus the measured drop {drop:.4f} ({how}; {what})",
        )

    def _figures(self, spec: SubnetSpec, fmt: str, recipe: str) -> tuple[dict, str]:
        name = f"{fmt}/{recipe}/{spec.key}"
        conv = CONVERTERS.get(fmt)()
        runtime = f"{conv.runtime} {conv.runtime_version()}"
        cached = self._read().get(name)
        if cached is not None and cached.get("runtime") == runtime:
            return cached, f"read from the cache (measured {cached.get('measured_at', 'earlier')})"
        source, _ = self.loaded.for_slicing(SubnetSpec(0.5, 1.0), True, self.progress)  # the rewired model
        figures = measure_recipe(self.loaded.full.eval(), source, self.loaded.tokenizer, spec, fmt, recipe, self.texts)
        figures["measured_at"] = now_iso()
        self._write(name, figures)
        self.measured_now.append(name)
        return figures, "measured now"

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())["figures"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def _write(self, name: str, figures: dict) -> None:
        """Best effort, merged with what is there (another process may have added figures meanwhile)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = {"key": self.path.name.split(".")[0], "figures": {**self._read(), name: figures}}
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
