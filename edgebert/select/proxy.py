"""The quality proxy for a model without a quality table, and its cache.

How close a slice stays to the full model (mean cosine of mean-pooled embeddings on held-out
calibration text) stands in for how much it keeps; every figure's source string says it is a
proxy, and whether it was measured now, read from the cache or shipped with edgebert.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from edgebert.hashing import now_iso
from edgebert.model.bert import mean_pool
from edgebert.model.loaded import Loaded, weights_sha256
from edgebert.model.slicing import slice_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.texts import calibration_texts
from edgebert.model.tokenizer import encode
from edgebert.user_cache import cache_dir

__all__ = ["proxy_quality", "proxy_table", "proxy_cache_dir", "proxy_key", "proxy_texts", "seed_proxy", "PROXY_VERSION"]

# The proxy is a property of the weights, not of the machine: computed once per model and kept in the
# user's cache (17 s for MiniLM on 1 thread, rewiring included: `--seed-proxy` below). Bump when
# rewiring, proxy_quality or the calibration texts change what it computes.
# 2: quantized sub-networks are measured too (select/quantized.py), cached beside the table under this key.
PROXY_VERSION = 2
PROXY_SEQ_LEN = 128


def proxy_texts() -> list[str]:
    return calibration_texts()[64:]  # held out from the texts rewiring used


def proxy_quality(
    model, tokenizer, texts: list[str], specs, seq_len: int = 128, batch_size: int = 32, reference=None
) -> dict[str, tuple[float, str]]:
    """Mean cosine between each sub-network's and the full model's mean-pooled embeddings.

    For a model without a quality table: how close a slice stays to the full model is a proxy
    for how much it keeps, and the source string says it is one. `reference`: the full model to compare
    with when it is not `model` itself (select/ranks.py: an SVD-truncated copy against the uncompressed model).
    """
    seq_len = min(seq_len, model.config.max_position_embeddings)
    batches = []
    for i in range(0, len(texts), batch_size):
        b = encode(tokenizer, texts[i : i + batch_size], seq_len=None)  # pad to the longest: cheaper
        if b["input_ids"].shape[1] > seq_len:
            b = encode(tokenizer, texts[i : i + batch_size], seq_len=seq_len)
        batches.append({k: torch.from_numpy(v) for k, v in b.items()})

    @torch.no_grad()
    def embed(m):
        m.eval()
        out = []
        for b in batches:
            # Pooled hidden states for every task: logits of a 2-label head say too little.
            hidden = m.encode(b["input_ids"], b["attention_mask"], b["token_type_ids"])[-1]
            out.append(mean_pool(hidden, b["attention_mask"]))
        return torch.cat(out)

    full = embed(model if reference is None else reference)
    source = f"proxy: mean cosine to full model on {len(texts)} calibration texts"
    result = {}
    for spec in specs:
        # w1-d1 is sliced too: its cosine of 1.0 then checks the slicer (and costs one more pass), not a shortcut.
        sub = embed(slice_model(model, spec))
        result[spec.key] = (float(F.cosine_similarity(sub, full, dim=-1).mean()), source)
    return result


def proxy_table(loaded: Loaded, progress: bool) -> tuple[dict, str]:
    texts = proxy_texts()
    what = (
        f"proxy (this model has no quality.json): mean cosine of each sub-network's embedding to the full "
        f"model's on {len(texts)} held-out calibration texts"
    )
    key = proxy_key(loaded, texts)
    cached = _read_proxy(key)
    if cached is not None:
        table, when, where = cached
        return table, f"{what}; computed {when} for these exact weights, {where}"
    model, _ = loaded.for_slicing(SubnetSpec(0.5, 1.0), True, progress)  # the rewired model, as exported
    specs = [SubnetSpec(w, d) for w in WIDTHS for d in DEPTHS]
    valid = [s for s in specs if s.fits(model.config.heads, model.config.ffn)]
    table = proxy_quality(model, loaded.tokenizer, texts, valid, seq_len=PROXY_SEQ_LEN)
    _write_proxy(key, table)
    return table, what


def proxy_cache_dir() -> Path:
    return cache_dir() / "quality-proxy"


def proxy_key(loaded: Loaded, texts: list[str]) -> str:
    parts = {
        "version": PROXY_VERSION,
        "weights": weights_sha256(loaded.model_dir),
        "seq_len": PROXY_SEQ_LEN,
        "config": loaded.full.config.to_dict(),
        "texts": hashlib.sha256("\n".join(texts).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


# Tables edgebert ships for the built-in default model, so that the first export needs no proxy run.
# Regenerate with `python -m edgebert.select.proxy --seed-proxy` after changing what the key covers.
_SHIPPED_PROXY = Path(__file__).parent.parent / "data" / "quality-proxy"


def _read_proxy(key: str) -> tuple[dict, str, str] | None:
    """(the cached or shipped table, when it was computed, where it was read), or None when there is
    none or it is unreadable (then it is simply measured again)."""
    for folder, where in ((proxy_cache_dir(), "read from the cache"), (_SHIPPED_PROXY, "shipped with edgebert")):
        found = _read_proxy_file(folder / f"{key}.json", key)
        if found is not None:
            return (*found, where)
    return None


def _read_proxy_file(path: Path, key: str) -> tuple[dict, str] | None:
    try:
        data = json.loads(path.read_text())
        table = {k: (float(score), str(source)) for k, (score, source) in data["table"].items()}
        for k in table:
            SubnetSpec.from_key(k)
        if data["key"] != key:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return table, str(data.get("computed_at", "in an earlier run"))


def seed_proxy(loaded: Loaded) -> Path:
    """Measure the default model's proxy table and store it in edgebert/data (maintainers)."""
    proxy_table(loaded, progress=True)
    key = proxy_key(loaded, proxy_texts())
    src = proxy_cache_dir() / f"{key}.json"
    _SHIPPED_PROXY.mkdir(parents=True, exist_ok=True)
    (_SHIPPED_PROXY / src.name).write_text(src.read_text())
    return _SHIPPED_PROXY / src.name


def _write_proxy(key: str, table: dict) -> None:
    """Best effort: an unwritable cache only costs the next run the same measurement."""
    folder = proxy_cache_dir()
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(
            json.dumps(
                {
                    "key": key,
                    "version": PROXY_VERSION,
                    "computed_at": now_iso(),
                    "table": {k: list(v) for k, v in table.items()},
                },
                indent=1,
            )
            + "\n"
        )
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


if __name__ == "__main__":
    import sys

    from edgebert.model.loaded import load

    if sys.argv[1:] != ["--seed-proxy"]:
        sys.exit(
            "usage: python -m edgebert.select.proxy --seed-proxy   (writes the default model's proxy table "
            "into edgebert/data/quality-proxy)"
        )
    print(f"wrote {seed_proxy(load(None))}")
