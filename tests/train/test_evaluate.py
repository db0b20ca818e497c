import json

import pytest
from conftest import SENTENCES

from edgebert.cli import main
from edgebert.errors import DataError
from edgebert.model.bert import load_model
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec
from edgebert.model.tokenizer import load_tokenizer
from edgebert.select.quality import QUALITY_FILE, read_table
from edgebert.train.data import load_data
from edgebert.train.evaluate import evaluate, measure

KEYS = {SubnetSpec(w, d).key for w in WIDTHS for d in DEPTHS}


def _csv(path, labels=("neg", "pos", "neg", "pos")):
    path.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in zip(SENTENCES, labels)))
    return path


def test_classifier_table(tiny_classifier_dir, tmp_path):
    model = load_model(tiny_classifier_dir)
    table = measure(model, load_data(_csv(tmp_path / "d.csv")), load_tokenizer(tiny_classifier_dir))
    assert set(table) == KEYS
    for e in table.values():
        assert 0 <= e["score"] <= 1 and e["metric"] == "accuracy" and e["n"] == 4
        assert e["data"].endswith("d.csv") and "measured_at" in e


def test_embedding_table_is_fidelity(tiny_model_dir, tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(SENTENCES * 3))
    table = evaluate(tiny_model_dir, str(tmp_path / "c.txt"))
    assert set(table) == KEYS
    assert table["w1-d1"]["score"] == pytest.approx(1.0, abs=1e-5)
    assert table["w1-d1"]["nn_agreement"] == 1.0
    assert all(0 <= e["score"] <= 1 and e["metric"] == "cosine_fidelity" for e in table.values())


def test_embedding_fidelity_against_a_reference_model(tiny_model_dir, tmp_path):
    """With `reference`, every sub-network (the full one included) is scored against another model's
    embeddings: here a differently seeded one, so even w1-d1 falls below 1, and equals the direct cosine."""
    import torch
    import torch.nn.functional as F
    from conftest import make_tiny_model

    (tmp_path / "c.txt").write_text("\n".join(SENTENCES * 3))
    data, tok = load_data(str(tmp_path / "c.txt"), labelled=False), load_tokenizer(tiny_model_dir)
    model, other = load_model(tiny_model_dir), make_tiny_model(seed=5).eval()
    own = measure(model, data, tok, [SubnetSpec(1, 1)])["w1-d1"]["score"]
    against = measure(model, data, tok, [SubnetSpec(1, 1)], reference=other)["w1-d1"]
    assert own == pytest.approx(1.0, abs=1e-5) and against["score"] < 0.99
    from edgebert.model.tokenizer import encode

    with torch.no_grad():
        b = {k: torch.from_numpy(v) for k, v in encode(tok, data.texts, seq_len=None).items()}
        direct = F.cosine_similarity(
            model(b["input_ids"], b["attention_mask"], b["token_type_ids"]),
            other(b["input_ids"], b["attention_mask"], b["token_type_ids"]),
            dim=-1,
        )
    assert against["score"] == pytest.approx(float(direct.clamp(0, 1).mean()), abs=1e-4)


def test_unseen_label_is_a_data_error(tiny_classifier_dir, tmp_path):
    with pytest.raises(DataError, match=r"d\.csv:3: label 'meh'"):
        evaluate(tiny_classifier_dir, str(_csv(tmp_path / "d.csv", ("neg", "meh", "pos", "pos"))))


def test_evaluate_command_writes_the_table(tiny_classifier_dir, tmp_path, capsys):
    assert main(["evaluate", "--model", str(tiny_classifier_dir), "--data", str(_csv(tmp_path / "d.csv"))]) == 0
    assert "w0.5-d0.5" in capsys.readouterr().out
    assert set(read_table(tiny_classifier_dir)) == KEYS
    assert set(json.loads((tiny_classifier_dir / QUALITY_FILE).read_text())) == KEYS
    other = tmp_path / "elsewhere.json"
    assert (
        main(["evaluate", "--model", str(tiny_classifier_dir), "--data", str(tmp_path / "d.csv"), "--out", str(other)])
        == 0
    )
    assert set(json.loads(other.read_text())) == KEYS
