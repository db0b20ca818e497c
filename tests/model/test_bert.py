import json

import pytest
import torch
from conftest import SENTENCES, make_tiny_model, save_tiny_hf_dir, save_tiny_model_dir

from edgebert.errors import ModelError
from edgebert.model.bert import CONFIG_FILE, WEIGHTS_FILE, Bert, load_model, mean_pool
from edgebert.model.slicing import slice_model
from edgebert.model.spec import SubnetSpec
from edgebert.model.tokenizer import encode, load_tokenizer


def _batch(model_dir, texts=SENTENCES, seq_len=None):
    """Tokenized texts of different lengths, so the batch carries padding."""
    arrays = encode(load_tokenizer(model_dir), texts, seq_len=seq_len)
    assert (arrays["attention_mask"] == 0).any()
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def _hf(cls_name, directory):
    import transformers

    return getattr(transformers, cls_name).from_pretrained(directory).eval()


def test_matches_transformers_bert_model_with_padding(tmp_path):
    d = save_tiny_hf_dir(tmp_path / "hf")
    batch = _batch(d)
    ours = load_model(d)
    assert ours.config.task == "embedding"
    with torch.no_grad():
        want = _hf("BertModel", d)(**batch).last_hidden_state
        got = ours.encode(**batch)[-1]
    assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()


def test_matches_transformers_classifier_logits(tmp_path):
    d = save_tiny_hf_dir(tmp_path / "hf-cls", classifier=True)
    batch = _batch(d)
    ours = load_model(d)
    # transformers 5 writes no id2label for its default 2 labels: still a 2-class classifier
    assert ours.config.task == "classification" and ours.config.labels == ("LABEL_0", "LABEL_1")
    with torch.no_grad():
        want = _hf("BertForSequenceClassification", d)(**batch).logits
        got = ours(**batch)
    assert got.shape == (len(SENTENCES), 2)
    assert torch.allclose(got, want, atol=1e-5, rtol=0), (got - want).abs().max()


def test_token_type_ids_default_to_zeros(tiny_model):
    ids = torch.randint(5, tiny_model.config.vocab_size, (2, 7))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        a = tiny_model(ids, mask)
        b = tiny_model(ids, mask, torch.zeros_like(ids))
        c = tiny_model(ids, mask, torch.ones_like(ids))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)  # the segment embedding really is used when given


def _outputs(model, batch):
    with torch.no_grad():
        return model(**batch)


def test_save_load_round_trip(tmp_path, tiny_model_dir):
    model = load_model(tiny_model_dir)
    batch = _batch(tiny_model_dir)
    model.save(tmp_path / "again")
    back = load_model(tmp_path / "again")
    assert back.config == model.config
    assert torch.equal(_outputs(back, batch), _outputs(model, batch))


def test_save_load_uneven_and_sliced_model(tmp_path, tiny_model_dir):
    model = make_tiny_model(
        heads=(3, 1, 2), ffn=(70, 33, 12), task="classification", num_labels=3, labels=("a", "b", "c")
    )
    batch = _batch(tiny_model_dir)
    for name, m in {"uneven": model, "sliced": slice_model(model, SubnetSpec(0.5, 0.75))}.items():
        m.save(tmp_path / name)
        back = load_model(tmp_path / name)
        assert back.config == m.config
        assert [tuple(p.shape) for p in back.parameters()] == [tuple(p.shape) for p in m.parameters()]
        assert torch.equal(_outputs(back, batch), _outputs(m, batch))
    sliced = load_model(tmp_path / "sliced")
    assert sliced.config.heads == (2, 1) and sliced.config.ffn == (35, 17)
    assert sliced.config.source_layers == (0, 1)


def test_missing_dir_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_non_bert_checkpoint_names_its_type(tmp_path):
    d = tmp_path / "gpt"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    with pytest.raises(ModelError, match="'gpt2'"):
        load_model(d)


def test_dir_without_config_is_a_model_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_model(tmp_path / "empty")


@pytest.mark.parametrize("fmt", ["hf", "edgebert"])
def test_truncated_weights_are_a_model_error(tmp_path, fmt):
    if fmt == "hf":
        d = save_tiny_hf_dir(tmp_path / "m")
    else:
        d = save_tiny_model_dir(tmp_path / "m", make_tiny_model())
    path = d / WEIGHTS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt|truncated|cannot read") as err:
        load_model(d)
    assert str(path) in str(err.value)


def test_config_without_weights_is_a_model_error(tmp_path):
    hf = save_tiny_hf_dir(tmp_path / "hf")
    (hf / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelError, match="no weights"):
        load_model(hf)
    ours = save_tiny_model_dir(tmp_path / "ours", make_tiny_model())
    (ours / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelError, match=WEIGHTS_FILE):
        load_model(ours)


def test_weights_of_wrong_shape_are_a_model_error(tmp_path):
    d = save_tiny_model_dir(tmp_path / "m", make_tiny_model())
    cfg = json.loads((d / CONFIG_FILE).read_text())
    cfg["ffn"] = [71, 70, 70]
    (d / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="shape"):
        load_model(d)


def test_classification_config_needs_labels():
    with pytest.raises(ModelError, match="num_labels"):
        make_tiny_model(task="classification", num_labels=0)


@pytest.mark.slow
def test_packaged_minilm_matches_transformers(minilm_dir):
    batch = _batch(minilm_dir, SENTENCES + ["A much longer sentence, with punctuation; numbers like 3.14 and 42."])
    ours = load_model(minilm_dir)
    assert isinstance(ours, Bert) and ours.config.num_layers == 6 and ours.config.heads[0] == 12
    with torch.no_grad():
        want = _hf("BertModel", minilm_dir)(**batch).last_hidden_state
        got = ours.encode(**batch)[-1]
    # At padding positions (garbage that pooling ignores) float noise grows to ~5e-5 on values
    # up to ~6, with transformers' sdpa and eager attention alike; real tokens agree to ~2e-6.
    real = batch["attention_mask"].bool()
    assert torch.allclose(got[real], want[real], atol=1e-5, rtol=0), (got[real] - want[real]).abs().max()
    assert torch.allclose(ours(**batch), mean_pool(want, batch["attention_mask"]), atol=1e-5, rtol=0)
