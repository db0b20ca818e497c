"""Shared fixtures: tiny random BERTs built here (no downloads), and the packaged MiniLM for slow tests."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Tiny models: one thread is faster than two fighting over a shared machine's cores (and
# subprocesses started by tests inherit this).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Nothing a test computes may land in, or be read from, the user's ~/.cache/edgebert: module- and
# session-scoped fixtures use this folder; each test gets its own (_own_cache_dir below).
os.environ["EDGEBERT_CACHE_DIR"] = tempfile.mkdtemp(prefix="edgebert-test-cache-")
atexit.register(shutil.rmtree, os.environ["EDGEBERT_CACHE_DIR"], True)

import pytest  # noqa: E402
import torch  # noqa: E402

from edgebert.model.bert import Bert, BertConfig  # noqa: E402

torch.set_num_threads(1)

WORDS = (
    "the a an and or but not is was are were be been this that it its of to in on for with as at by from "
    "movie film story plot actor actress director scene music good bad great terrible funny boring slow "
    "fast love hate best worst fun dull smart clever charming awful brilliant mess ending beginning "
    "phone board device battery screen model small large quick fresh rotten review really very quite"
).split()


def tiny_vocab() -> list[str]:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    return special + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + WORDS


def tiny_config(**overrides) -> BertConfig:
    """Odd shapes on purpose: 3 heads of 16 (hidden 48), 3 layers, FFN 70."""
    kw = dict(
        vocab_size=len(tiny_vocab()),
        hidden_size=48,
        heads=(3, 3, 3),
        ffn=(70, 70, 70),
        head_dim=16,
        max_position_embeddings=64,
        type_vocab_size=2,
    )
    kw.update(overrides)
    return BertConfig(**kw)


def make_tiny_model(seed: int = 0, **overrides) -> Bert:
    torch.manual_seed(seed)
    model = Bert(tiny_config(**overrides))
    # LayerNorm weights of ones and zero biases make a too-symmetric model; perturb them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def save_tiny_model_dir(directory: Path, model: Bert) -> Path:
    """An edgebert-format model folder with a matching WordPiece vocab."""
    from tokenizers.implementations import BertWordPieceTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    (directory / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    tok = BertWordPieceTokenizer(str(directory / "vocab.txt"), lowercase=True)
    tok.save(str(directory / "tokenizer.json"))
    return directory


def save_tiny_hf_dir(directory: Path, seed: int = 0, classifier: bool = False) -> Path:
    """A transformers-format BERT checkpoint folder (config.json + model.safetensors), via transformers."""
    import transformers

    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=len(tiny_vocab()),
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=70,
        max_position_embeddings=64,
    )
    if classifier:
        hf = transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=2, **cfg))
    else:
        hf = transformers.BertModel(transformers.BertConfig(**cfg))
    hf.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(tiny_vocab()) + "\n")
    return directory


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory, monkeypatch):
    """Each test gets an empty edgebert cache and config folder: nothing read from, or left in, the
    user's ~/.cache/edgebert or ~/.config/edgebert (a calibration override there would change predictions)."""
    monkeypatch.setenv("EDGEBERT_CACHE_DIR", str(tmp_path_factory.mktemp("edgebert-cache")))
    monkeypatch.setenv("EDGEBERT_CONFIG_DIR", str(tmp_path_factory.mktemp("edgebert-config")))


# Skips that mean "this machine lacks a tool", not "this test does not apply". Under
# EDGEBERT_REQUIRE_ALL=1 (.ci/run sets it) they fail: CI must run the sshd, litert-torch and toybox
# tests, never quietly drop them. The permission test does not skip as root (CI runs as root): it
# runs its check as `nobody` (tests/export/test_pipeline.py).
REQUIRED_SKIPS = ("sshd", "litert", "tflite extra", "toybox", "executorch")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("EDGEBERT_REQUIRE_ALL") != "1" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(word.lower() in reason.lower() for word in REQUIRED_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"EDGEBERT_REQUIRE_ALL=1: a skip would hide this test ({reason}); install what it names"


DOUBLES = Path(__file__).resolve().parent / "doubles"


@pytest.fixture
def fake_phone(tmp_path, monkeypatch) -> Path:
    """tests/doubles/adb's device folder: an attached, authorized Pixel 6 whose shell tools are toybox's.

    Each adb call is logged (JSON lines) to the folder's sibling adb.log."""
    if not shutil.which("toybox"):
        pytest.skip("the adb stand-in runs the phone's shell tools with Debian's toybox: apt-get install toybox")
    root = tmp_path / "phone"
    monkeypatch.setenv("EDGEBERT_FAKE_ADB_ROOT", str(root))
    monkeypatch.setenv("EDGEBERT_FAKE_ADB_STATE", "device")
    monkeypatch.setenv("EDGEBERT_FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    # The doubles start with `#!/usr/bin/env python3`: make that this interpreter (it has the runtimes).
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    return root


@pytest.fixture
def tiny_model() -> Bert:
    return make_tiny_model()


@pytest.fixture
def tiny_model_dir(tmp_path) -> Path:
    return save_tiny_model_dir(tmp_path / "tiny", make_tiny_model())


@pytest.fixture
def tiny_classifier_dir(tmp_path) -> Path:
    return save_tiny_model_dir(
        tmp_path / "tiny-cls", make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    )


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from edgebert.model.packaged import default_model_dir

    return default_model_dir()


SENTENCES = [
    "the movie was great",
    "a boring and slow story with a terrible ending",
    "fun",
    "the director is clever , the actors are charming and the music is really very good !",
]


@pytest.fixture
def sentences() -> list[str]:
    return list(SENTENCES)


POS, NEG = ["good", "great", "fun", "brilliant", "charming"], ["bad", "terrible", "boring", "awful", "dull"]


def sentiment_csv(path, n=160, seed=0):
    """A learnable toy sentiment task: filler words plus one positive or negative word per row."""
    import random

    rng = random.Random(seed)
    rows = ["text,label"]
    for _ in range(n):
        y = rng.random() < 0.5
        words = rng.sample(WORDS[:30], 4) + [rng.choice(POS if y else NEG)]
        rng.shuffle(words)
        rows.append(" ".join(words) + "," + ("pos" if y else "neg"))
    path.write_text("\n".join(rows) + "\n")
    return path
