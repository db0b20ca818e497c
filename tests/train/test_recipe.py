import json
import random

import pytest
import torch
from conftest import WORDS, make_tiny_model, save_tiny_model_dir, sentiment_csv
from safetensors.torch import load_file

from edgebert.cli import main
from edgebert.errors import DataError, UsageError
from edgebert.model.bert import load_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.select.quality import QUALITY_FILE
from edgebert.train.config import TRAIN_CONFIG_FILE, TrainConfig
from edgebert.train.recipe import train

KEYS = {SubnetSpec(w, d).key for w in WIDTHS for d in DEPTHS}


@pytest.fixture
def setup(tmp_path):
    model_dir = save_tiny_model_dir(tmp_path / "base", make_tiny_model())
    data = sentiment_csv(tmp_path / "train.csv")
    return tmp_path, model_dir, data


def _cfg(tmp_path, model_dir, data, out="out", **kw):
    base = dict(
        data=str(data),
        out=str(tmp_path / out),
        model=str(model_dir),
        batch_size=16,
        seq_len=16,
        max_steps=6,
        lr=1e-3,
        checkpoint_every=2,
        rewire_texts=32,
        no_quantized=True,  # the quantized scores have their own tests (test_train_quantized.py)
    )
    base.update(kw)
    return TrainConfig(**base)


def test_config_round_trips_through_json():
    cfg = TrainConfig(data="d.csv", out="o", widths=(0.5, 1.0), max_steps=3)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.widths == (0.5, 1.0)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"task": "regression"}, "--task"),
        ({"batch_size": 0}, "--batch-size"),
        ({"max_steps": 0}, "--max-steps"),
        ({"widths": (0.5,)}, "must include 1.0"),
        ({"depths": (1.5, 1.0)}, "depth|width"),
    ],
)
def test_bad_config(kw, match):
    with pytest.raises(Exception, match=match):
        TrainConfig(data="d", out="o", **kw)


def test_cli_arguments_build_the_config(monkeypatch):
    seen = []
    monkeypatch.setattr("edgebert.commands.train.train", lambda cfg, progress: seen.append(cfg) or "o")
    assert main(["train", "--data", "d.csv", "--out", "o", "--max-steps", "5", "--widths", "0.5,1", "--resume"]) == 0
    cfg = seen[0]
    assert cfg.max_steps == 5 and cfg.widths == (0.5, 1.0) and cfg.resume and cfg.batch_size == 32


def test_both_stages_run_losses_go_down_and_table_is_complete(setup):
    tmp_path, model_dir, data = setup
    out = train(_cfg(tmp_path, model_dir, data, epochs=20, max_steps=24, teacher_max_steps=60), progress=False)
    log = json.loads((out / "training.json").read_text())
    assert set(log["stages"]) == {"teacher", "width", "depth"}
    for name, stage in log["stages"].items():
        assert len(stage["history"]) == stage["steps"]
        assert stage["loss_last"] < stage["loss_first"], name
    table = json.loads((out / QUALITY_FILE).read_text())
    assert set(table) == KEYS and all(0 <= e["score"] <= 1 for e in table.values())
    model = load_model(out)
    assert model.config.task == "classification" and model.config.labels == ("neg", "pos")
    assert TrainConfig.from_dict(json.loads((out / TRAIN_CONFIG_FILE).read_text())).max_steps == 24
    assert (out / "tokenizer.json").exists() and (out / "rewire.json").exists()
    assert not (tmp_path / ".out.train").exists()  # the work folder is gone once the run is finished
    assert table["w1-d1"]["score"] >= 0.8  # the toy task is learnt


@pytest.mark.parametrize("stage,step", [("teacher", 3), ("width", 1), ("depth", 4)])
def test_resume_after_interrupt_reproduces_the_uninterrupted_run(setup, stage, step):
    tmp_path, model_dir, data = setup
    straight = train(_cfg(tmp_path, model_dir, data, out="a"), progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, model_dir, data, out="b"), progress=False, _stop_at=(stage, step))
    assert not (tmp_path / "b").exists() and (tmp_path / ".b.train" / "checkpoint").exists()
    resumed = train(_cfg(tmp_path, model_dir, data, out="b", resume=True), progress=False)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la, lb = (json.loads((d / "training.json").read_text())["stages"] for d in (straight, resumed))
    assert all(la[s]["history"] == lb[s]["history"] for s in la)  # no batch repeated or skipped


def test_unfinished_run_needs_resume_or_force(setup):
    tmp_path, model_dir, data = setup
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, model_dir, data), progress=False, _stop_at=("teacher", 2))
    with pytest.raises(UsageError, match="--resume"):
        train(_cfg(tmp_path, model_dir, data), progress=False)
    with pytest.raises(UsageError, match="different settings.*lr"):
        train(_cfg(tmp_path, model_dir, data, lr=1e-4, resume=True), progress=False)
    assert train(_cfg(tmp_path, model_dir, data, force=True), progress=False).exists()


def test_given_classifier_is_the_teacher(tmp_path):
    model_dir = save_tiny_model_dir(
        tmp_path / "cls", make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    )
    out = train(_cfg(tmp_path, model_dir, sentiment_csv(tmp_path / "t.csv"), max_steps=2), progress=False)
    assert "teacher" not in json.loads((out / "training.json").read_text())["stages"]


def test_embedding_task_on_plain_text(tmp_path):
    model_dir = save_tiny_model_dir(tmp_path / "base", make_tiny_model())
    rng = random.Random(1)
    (tmp_path / "c.txt").write_text("\n".join(" ".join(rng.sample(WORDS, 6)) for _ in range(120)) + "\n")
    out = train(_cfg(tmp_path, model_dir, tmp_path / "c.txt", task="embedding", max_steps=12), progress=False)
    log = json.loads((out / "training.json").read_text())
    assert set(log["stages"]) == {"width", "depth"}
    assert log["stages"]["width"]["loss_last"] < log["stages"]["width"]["loss_first"]
    table = json.loads((out / QUALITY_FILE).read_text())
    assert set(table) == KEYS and table["w1-d1"]["score"] == pytest.approx(1.0, abs=1e-5)
    assert all(e["metric"] == "cosine_fidelity" and 0 <= e["nn_agreement"] <= 1 for e in table.values())
    assert load_model(out).config.task == "embedding"


def test_bad_data_gives_exit_code_2(setup, capsys):
    tmp_path, model_dir, _ = setup
    (tmp_path / "dev.csv").write_text("text,label\nfun film,pos\nhmm,unsure\n")
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "train.csv"),
            "--eval",
            str(tmp_path / "dev.csv"),
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "dev.csv:3: label 'unsure'" in capsys.readouterr().err
    (tmp_path / "one.csv").write_text("text,label\n" + "".join(f"film {i},pos\n" for i in range(60)))
    with pytest.raises(DataError, match="only one label"):
        train(_cfg(tmp_path, model_dir, tmp_path / "one.csv"), progress=False)


def test_ctrl_c_checkpoints_and_exits_130(setup):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    tmp_path, model_dir, data = setup
    argv = [
        sys.executable,
        "-m",
        "edgebert.train",
        "--data",
        str(data),
        "--model",
        str(model_dir),
        "--out",
        str(tmp_path / "o"),
        "--batch-size",
        "16",
        "--seq-len",
        "16",
        "--epochs",
        "500",
        "--max-steps",
        "400",
        "--checkpoint-every",
        "3",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    first = tmp_path / ".o.train" / "checkpoint" / "progress.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline:  # the loop is running
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err
    progress = json.loads((tmp_path / ".o.train" / "checkpoint" / "progress.json").read_text())
    assert progress["stage"] == "teacher" and 3 <= progress["step"] < 400
    assert len(progress["history"]) == progress["step"]


@pytest.mark.slow
def test_minilm_embedding_distillation_smoke(tmp_path, minilm_dir):
    """The packaged MiniLM through the whole embedding recipe (one step per stage, tiny data)."""
    from edgebert.train.data import load_data

    texts = load_data("rotten-tomatoes", split="dev", labelled=False).texts
    (tmp_path / "train.txt").write_text("\n".join(texts[:48]) + "\n")
    (tmp_path / "dev.txt").write_text("\n".join(texts[48:80]) + "\n")
    out = train(
        TrainConfig(
            data=str(tmp_path / "train.txt"),
            eval=str(tmp_path / "dev.txt"),
            out=str(tmp_path / "o"),
            task="embedding",
            batch_size=8,
            seq_len=32,
            max_steps=1,
            rewire_texts=16,
        ),
        progress=False,
    )
    table = json.loads((out / QUALITY_FILE).read_text())
    assert set(table) == KEYS and table["w1-d1"]["score"] > 0.999
    assert all(0 < e["score"] <= 1 and e["n"] == 32 for e in table.values())
    assert (out / "tokenizer.json").exists() and load_model(out).config.hidden_size == 384
