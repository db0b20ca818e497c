"""Exit training: RomeBERT joint training and DeeBERT's second stage on a tiny model and a learnable toy task."""

import json

import pytest
import torch
from conftest import make_tiny_model, save_tiny_model_dir, sentiment_csv
from test_recipe import _cfg

from edgebert.cli import main
from edgebert.errors import UsageError
from edgebert.model.bert import load_model
from edgebert.model.exits import exit_logits, with_exits
from edgebert.train.config import TrainConfig
from edgebert.train.exits import RomeBert
from edgebert.train.recipe import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both modes, trained once for the module from a tiny encoder (so the teacher stage learns the task)."""
    tmp = tmp_path_factory.mktemp("exits")
    model_dir = save_tiny_model_dir(tmp / "base", make_tiny_model())
    data = sentiment_csv(tmp / "train.csv", n=320)
    outs = {}
    for mode in ("romebert", "deebert"):
        cfg = _cfg(
            tmp,
            model_dir,
            data,
            out=mode,
            exits=mode,
            max_steps=25,
            teacher_max_steps=30,
            widths=(0.5, 1.0),
            depths=(0.5, 1.0),
        )
        outs[mode] = train(cfg, progress=False)
    return outs


@pytest.mark.parametrize("mode", ["romebert", "deebert"])
def test_training_saves_exits_and_losses_fall(trained, mode):
    out = trained[mode]
    model = load_model(out)
    assert model.config.exits and len(model.exits) == model.config.num_layers - 1
    log = json.loads((out / "training.json").read_text())
    stages = ["width", "depth"] + (["exits"] if mode == "deebert" else [])
    for stage in stages:
        s = log["stages"][stage]
        assert s["loss_last"] < s["loss_first"], (stage, s["loss_first"], s["loss_last"])
    table = json.loads((out / "exits.json").read_text())
    assert set(table) == {"w0.5-d0.5", "w1-d0.5", "w0.5-d1", "w1-d1"}
    full = table["w1-d1"]["exit_accuracy"]
    assert len(full) == 3 and all(0.0 <= a <= 1.0 for a in full)
    # The last exit is the quality table's figure: same sliced network, same data.
    quality = json.loads((out / "quality.json").read_text())
    assert full[-1] == pytest.approx(quality["w1-d1"]["score"], abs=1e-6)


def test_deebert_leaves_the_backbone_alone(tmp_path):
    """DeeBERT's stage 2 only moves the exits: the backbone and final head equal the stage-1 result."""
    base = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    model_dir = save_tiny_model_dir(tmp_path / "base", base)
    data = sentiment_csv(tmp_path / "train.csv")
    cfg = _cfg(tmp_path, model_dir, data, exits="deebert", max_steps=3, widths=(1.0,), depths=(1.0,))
    plain = _cfg(tmp_path, model_dir, data, out="plain", max_steps=3, widths=(1.0,), depths=(1.0,))
    a, b = load_model(train(cfg, progress=False)), load_model(train(plain, progress=False))
    sa, sb = a.state_dict(), b.state_dict()
    for k, v in sb.items():
        assert torch.equal(sa[k], v), k
    assert any(not torch.equal(sa[f"exits.0.{n}"], sa[f"head.{n}"]) for n in ("pooler.weight", "classifier.weight"))


def test_gradient_regularisation_projects_conflicts():
    """RomeBERT's GR: when the distillation gradient opposes the task gradient, the accumulated gradient
    has the conflicting component removed (its dot product with the task gradient is >= 0)."""
    torch.manual_seed(0)
    model = with_exits(make_tiny_model(task="classification", num_labels=2, labels=("a", "b"))).train()
    ids = torch.randint(5, 60, (8, 10))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    batch["labels"] = torch.randint(0, 2, (8,))
    rome = RomeBert(gamma=0.9, temperature=2.0)
    fired = 0
    for seed in range(6):
        torch.manual_seed(seed)
        model.zero_grad(set_to_none=True)
        states = model.encode(ids)
        out = model.head(states[-1])
        main_loss = torch.nn.functional.cross_entropy(out, batch["labels"])
        ce, kd = rome.losses(model, out, states, list(range(3)), batch)
        params = list(model.parameters())
        g_task = torch.autograd.grad(main_loss + ce, params, retain_graph=True, allow_unused=True)

        class _Acc:
            backward = staticmethod(lambda loss: loss.backward())

        torch.manual_seed(seed)
        states = model.encode(ids)
        out = model.head(states[-1])
        rome.backward(
            _Acc, model, torch.nn.functional.cross_entropy(out, batch["labels"]), out, states, [0, 1, 2], batch
        )
        dot = sum((p.grad * g).sum() for p, g in zip(params, g_task) if g is not None and p.grad is not None)
        assert float(dot) >= -1e-6
        fired += rome.projected
    assert fired >= 0  # reported, not required: whether a random batch conflicts is the data's business


def test_exits_need_a_classifier_and_a_known_mode():
    with pytest.raises(UsageError, match="--task classification"):
        TrainConfig(data="d", out="o", task="embedding", exits="romebert")
    with pytest.raises(UsageError, match="--exits"):
        TrainConfig(data="d", out="o", exits="pabee")


def test_cli_bare_exits_means_romebert(monkeypatch):
    seen = []
    monkeypatch.setattr("edgebert.commands.train.train", lambda cfg, progress: seen.append(cfg) or "o")
    assert main(["train", "--data", "d.csv", "--out", "o", "--exits"]) == 0
    assert main(["train", "--data", "d.csv", "--out", "o", "--exits", "deebert"]) == 0
    assert main(["train", "--data", "d.csv", "--out", "o"]) == 0
    assert [c.exits for c in seen] == ["romebert", "deebert", None]
    assert main(["train", "--data", "d.csv", "--out", "o", "--exits", "pabee"]) == 2
    assert [(c.exit_pool, c.exit_lr_scale) for c in seen] == [("mean", 10.0)] * 3
    assert main(["train", "--data", "d.csv", "--out", "o", "--exits", "--exit-pool", "cls"]) == 0
    assert main(["train", "--data", "d.csv", "--out", "o", "--exits", "--exit-lr-scale", "3"]) == 0
    assert (seen[-2].exit_pool, seen[-1].exit_lr_scale) == ("cls", 3.0)
    assert main(["train", "--data", "d.csv", "--out", "o", "--exits", "--exit-pool", "max"]) == 2
    assert main(["train", "--data", "d.csv", "--out", "o", "--exits", "--exit-lr-scale", "0"]) == 2


def test_trained_exits_pool_as_asked(trained):
    """The default --exit-pool mean is what the saved model's exit heads do (and the final head still reads
    [CLS], so the plain export is unchanged)."""
    model = load_model(trained["romebert"])
    assert model.config.exit_pool == "mean" and {h.pool for h in model.exits} == {"mean"}
    assert model.head.pool == "cls"


def test_exit_heads_learn_at_their_own_rate():
    """The optimizer puts the exit heads at lr x exit_lr_scale and everything else at lr."""
    from edgebert.train.loop import _optimizer

    model = with_exits(make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos")), "mean")
    cfg = TrainConfig(data="d", out="o", lr=2e-4, exit_lr_scale=5.0, exits="romebert", task="classification")
    opt, _ = _optimizer(model, cfg, total=10)
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        assert rate[id(p)] == pytest.approx(1e-3 if name.startswith("exits.") else 2e-4), name
    assert len(rate) == len(list(model.parameters()))


def test_exit_model_without_exit_flag_is_plain(trained):
    """The final exit is the model's own output: exit_logits(...)[-1] equals model(...)."""
    model = load_model(trained["romebert"])
    ids = torch.randint(5, 60, (3, 9))
    with torch.no_grad():
        assert torch.allclose(exit_logits(model, ids)[-1], model(ids))
