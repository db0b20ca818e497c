"""The model card: WordPiece vocabulary in id order, labels, output kind."""

from __future__ import annotations

from conftest import make_tiny_model, save_tiny_model_dir, tiny_vocab

from edgebert.export.card import model_card, wordpiece_vocab
from edgebert.model.tokenizer import load_tokenizer


def test_vocab_in_id_order(tmp_path):
    tok = load_tokenizer(save_tiny_model_dir(tmp_path, make_tiny_model()))
    vocab, lowercase = wordpiece_vocab(tok)
    assert len(vocab) == len(tiny_vocab()) and lowercase is True
    # tiny_vocab lists "a" twice (a character and a word): the later id wins, the earlier line is a placeholder
    assert all(tok.token_to_id(t) == i for i, t in enumerate(vocab) if not t.startswith("[unused-id-"))
    assert sum(t.startswith("[unused-id-") for t in vocab) == len(tiny_vocab()) - len(set(tiny_vocab()))


def test_classifier_card(tmp_path):
    tok = load_tokenizer(save_tiny_model_dir(tmp_path, make_tiny_model()))
    cls = make_tiny_model(seed=1, task="classification", num_labels=2, labels=("neg", "pos"))
    card = model_card(cls, tok, name="x")
    assert (card.task, card.output_name, card.labels) == ("classification", "logits", ("neg", "pos"))
    assert card.to_dict()["vocab_size"] == len(tiny_vocab()) and "3 layers" in card.description


def test_non_wordpiece_tokenizer_gets_no_vocab():
    from tokenizers import Tokenizer, models

    assert wordpiece_vocab(Tokenizer(models.BPE())) == ((), True)
