import copy
import json
import time

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_model, save_tiny_model_dir

from edgebert.errors import DataError
from edgebert.model.bert import load_model
from edgebert.model.rewire import compute_importance, rewire
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec
from edgebert.model.texts import DEFAULT_CALIBRATION_FILE, calibration_texts
from edgebert.model.tokenizer import encode, load_tokenizer

# Small calibration runs: the tiny model is cheap, but the machine is shared.
FAST = dict(batch_size=8, seq_len=24, progress=False)
CLASSIFIER = dict(task="classification", num_labels=2, labels=("neg", "pos"))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load_tokenizer(save_tiny_model_dir(tmp_path_factory.mktemp("tok"), make_tiny_model()))


@pytest.fixture(scope="module")
def texts():
    return calibration_texts()[:16]


def _inputs(tok, texts, seq_len=24):
    return {k: torch.from_numpy(v) for k, v in encode(tok, texts, seq_len=seq_len).items()}


def _out(model, inputs):
    with torch.no_grad():
        return model(**inputs)


@pytest.mark.parametrize("kind", ["embedding", "classifier-labels", "classifier-self"])
def test_rewired_full_model_computes_the_same(kind, tok, texts):
    model = make_tiny_model(**({} if kind == "embedding" else CLASSIFIER))
    labels = [i % 2 for i in range(len(texts))] if kind == "classifier-labels" else None
    before = copy.deepcopy(model.state_dict())
    rewired, report = rewire(model, texts, tok, labels=labels, **FAST)

    assert rewired is not model
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # input untouched
    assert all(p.requires_grad for p in model.parameters()) and all(p.requires_grad for p in rewired.parameters())
    moved = [k for k, v in rewired.state_dict().items() if not torch.equal(v, before[k])]
    assert any("ffn.up" in k for k in moved)  # something was actually reordered

    inputs = _inputs(tok, texts)
    assert torch.allclose(_out(rewired, inputs), _out(model, inputs), atol=1e-5, rtol=0)
    expected_loss = {
        "embedding": "subnet_distance",
        "classifier-labels": "cross_entropy",
        "classifier-self": "self_cross_entropy",
    }[kind]
    assert report["loss"] == expected_loss
    # the flag later stages check, kept through save/load
    assert rewired.config.extra["rewired"]["loss"] == expected_loss and "rewired" not in model.config.extra


def test_report_is_json_and_describes_each_layer(tok, texts, tiny_model):
    _, report = rewire(tiny_model, texts, tok, **FAST)
    back = json.loads(json.dumps(report))
    assert back["num_texts"] == len(texts) and back["loss"] == "subnet_distance"
    assert len(back["layers"]) == 3
    for layer in back["layers"]:
        assert sorted(layer["head_order"]) == [0, 1, 2]
        imp = layer["head_importance"]
        assert [imp[j] for j in layer["head_order"]] == sorted(imp, reverse=True)
        n = layer["neuron_importance"]
        assert n["count"] == 70 and 0 <= n["min"] <= n["mean"] <= n["max"]
        assert 0.5 <= n["share_in_first_half"] <= 1.0


def test_rewired_flag_survives_save_and_load(tok, texts, tiny_model, tmp_path):
    rewired, _ = rewire(tiny_model, texts, tok, **FAST)
    rewired.save(tmp_path / "rw")
    back = load_model(tmp_path / "rw")
    assert back.config.extra["rewired"] == {"loss": "subnet_distance", "num_texts": len(texts), "seed": 0}


def test_deterministic_for_a_seed(tok, texts, tiny_model):
    a, ra = rewire(tiny_model, texts, tok, seed=3, **FAST)
    b, rb = rewire(tiny_model, texts, tok, seed=3, **FAST)
    assert ra == rb
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _rank_correlation(importance: torch.Tensor) -> float:
    """Pearson correlation between each unit's position and its importance rank (1: perfectly sorted)."""
    ranks = torch.argsort(torch.argsort(importance, descending=True)).float()
    return torch.corrcoef(torch.stack([ranks, torch.arange(len(importance)).float()]))[0, 1].item()


def test_importance_is_descending_after_rewiring(tok, texts):
    # Cross-entropy importance does not depend on the units' order, so a rerun is exactly sorted.
    model = make_tiny_model(**CLASSIFIER)
    labels = [i % 2 for i in range(len(texts))]
    rewired, _ = rewire(model, texts, tok, labels=labels, **FAST)
    imp = compute_importance(rewired, texts, tok, labels=labels, batch_size=8, seq_len=24)
    for values in imp.heads + imp.neurons:
        assert torch.allclose(values, values.sort(descending=True).values, rtol=1e-4, atol=1e-9)


def test_embedding_importance_is_roughly_descending_after_rewiring(tok, texts, tiny_model):
    # The sub-networks probed are drawn by position, so after reordering they are different
    # ones: the rerun is only approximately sorted.
    rewired, _ = rewire(tiny_model, texts, tok, **FAST)
    imp = compute_importance(rewired, texts, tok, batch_size=8, seq_len=24)
    for heads, neurons in zip(imp.heads, imp.neurons):
        assert heads[0] == heads.max()
        assert _rank_correlation(neurons) > 0.8


def _mean_cosine(model, sub, inputs) -> float:
    return F.cosine_similarity(_out(sub, inputs), _out(model, inputs), dim=-1).mean().item()


def test_rewiring_keeps_a_planted_important_head(tok):
    model = make_tiny_model()
    with torch.no_grad():  # head 2 of the last layer dominates its layer's attention output
        model.layers[2].attention.value.weight[32:48] *= 8.0
        model.layers[2].attention.value.bias[32:48] *= 8.0
    calibration, held_out = calibration_texts()[:24], calibration_texts()[100:124]
    rewired, report = rewire(model, calibration, tok, **FAST)
    assert report["layers"][2]["head_order"][0] == 2

    spec = SubnetSpec(width=0.5)
    inputs = _inputs(tok, held_out)
    naive = _mean_cosine(model, slice_model(model, spec), inputs)
    better = _mean_cosine(model, slice_model(rewired, spec), inputs)
    assert better >= naive + 0.05, (naive, better)


def test_bad_labels_are_data_errors(tok, texts, tiny_model):
    classifier = make_tiny_model(**CLASSIFIER)
    with pytest.raises(DataError, match="sentence encoder"):
        rewire(tiny_model, texts, tok, labels=[0] * len(texts), **FAST)
    with pytest.raises(DataError, match="one label per text"):
        rewire(classifier, texts, tok, labels=[0, 1], **FAST)
    with pytest.raises(DataError, match="not a class index"):
        rewire(classifier, texts, tok, labels=[2] * len(texts), **FAST)
    with pytest.raises(DataError, match="at least one"):
        rewire(classifier, [], tok, **FAST)


# ---- calibration texts --------------------------------------------------------------------


def test_shipped_calibration_set():
    texts = calibration_texts()
    assert DEFAULT_CALIBRATION_FILE.is_file()
    assert 140 <= len(texts) <= 200
    assert len(set(texts)) == len(texts) and all(t == t.strip() and t for t in texts)
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) <= 3 and max(lengths) >= 15  # short and long
    assert sum(t.endswith("?") for t in texts) >= 15  # questions
    assert sum(any(ch.isdigit() for ch in t) for t in texts) >= 15  # numbers


def test_user_calibration_file(tmp_path):
    path = tmp_path / "cal.txt"
    path.write_text("\ufefffirst text\n\n   \n  second one  \nthird\n", encoding="utf-8")
    assert calibration_texts(path) == ["first text", "second one", "third"]
    assert calibration_texts(str(path)) == ["first text", "second one", "third"]


def test_missing_calibration_file(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        calibration_texts(tmp_path / "nope.txt")
    assert "nope.txt" in str(err.value) and "one text per line" in str(err.value)


def test_empty_calibration_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n  \n\n")
    with pytest.raises(DataError, match="no text") as err:
        calibration_texts(path)
    assert str(path) in str(err.value)


def test_non_utf8_calibration_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8") as err:
        calibration_texts(path)
    assert str(path) in str(err.value) and "re-save it as UTF-8" in str(err.value)


def test_calibration_path_that_is_a_directory(tmp_path):
    with pytest.raises(DataError, match="not a file"):
        calibration_texts(tmp_path)


# ---- the packaged model ---------------------------------------------------------------------


@pytest.mark.slow
def test_rewiring_minilm_improves_its_half_width_slice(minilm_dir):
    model, tok = load_model(minilm_dir), load_tokenizer(minilm_dir)
    texts = calibration_texts()
    calibration, held_out = texts[:64], texts[64:]  # judge on texts the importance never saw
    start = time.perf_counter()
    rewired, report = rewire(model, calibration, tok, seq_len=64, progress=False)
    seconds = time.perf_counter() - start

    inputs = _inputs(tok, held_out, seq_len=64)
    assert torch.allclose(_out(rewired, inputs), _out(model, inputs), atol=1e-5, rtol=0)
    spec = SubnetSpec(width=0.5, depth=1.0)
    naive = _mean_cosine(model, slice_model(model, spec), inputs)
    better = _mean_cosine(model, slice_model(rewired, spec), inputs)
    print(
        f"\nMiniLM w0.5-d1.0 mean cosine to the full model on {len(held_out)} held-out texts: "
        f"naive {naive:.4f}, rewired {better:.4f} (rewiring took {seconds:.1f} s, "
        f"{report['gradient_evaluations']} gradient evaluations)"
    )
    assert better > naive + 0.05
