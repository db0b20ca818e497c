import json

import pytest

from edgebert.errors import DataError
from edgebert.train.data import DataSet, check_labels, hash_split, load_data, split_of, to_batch


def test_csv_with_pairs_and_quoted_multiline_text(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text('sentence,other,y\n"a good, fun film",yes,1\n"two\nlines",no,0\nplain,x,1\n')
    data = load_data(f, text_column="sentence", text_pair_column="other", label_column="y")
    assert [e.text for e in data.examples] == ["a good, fun film", "two\nlines", "plain"]
    assert [e.text_pair for e in data.examples] == ["yes", "no", "x"]
    assert data.labels == ("0", "1")
    assert [e.line for e in data.examples] == [2, 3, 5]  # the quoted newline spans lines 3-4


def test_tsv_and_jsonl_and_labels_as_strings(tmp_path):
    (tmp_path / "d.tsv").write_text("text\tlabel\ngood\tpos\nbad\tneg\n")
    (tmp_path / "d.jsonl").write_text(
        json.dumps({"text": "good", "label": 1}) + "\n\n" + json.dumps({"text": "bad", "label": 0}) + "\n"
    )
    assert load_data(tmp_path / "d.tsv").labels == ("neg", "pos")
    j = load_data(tmp_path / "d.jsonl")
    assert j.labels == ("0", "1") and [e.line for e in j.examples] == [1, 3]


def test_plain_text_for_embedding(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("first sentence\n\n  second one  \n")
    data = load_data(f, labelled=False)
    assert data.texts == ["first sentence", "second one"]
    with pytest.raises(DataError, match="plain text has no labels"):
        load_data(f)


def test_embedding_ignores_the_label_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("text\nonly text here\n")
    assert load_data(f, labelled=False).texts == ["only text here"]


@pytest.mark.parametrize(
    "content,match",
    [
        ("", r"d\.csv:1: empty file"),
        ("text,label\n", r"d\.csv:1: no examples"),
        ("words,label\nhi,1\n", r"d\.csv:1: no column 'text'"),
        ("text,label\nhi,1\nthere,\n", r"d\.csv:3: empty value in column 'label'"),
        ("text,label\nhi,1,extra\n", r"d\.csv:2: more cells"),
    ],
)
def test_bad_csv_names_file_and_line(tmp_path, content, match):
    f = tmp_path / "d.csv"
    f.write_text(content)
    with pytest.raises(DataError, match=match):
        load_data(f)


def test_bad_jsonl(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "a", "label": 1}\n{"text": "b"\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
        load_data(f)
    f.write_text('{"text": "a", "label": 1}\n{"txt": "b", "label": 0}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: no column 'text'"):
        load_data(f)


def test_non_utf8_names_the_line(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes(b"text,label\nfine,1\ncaf\xe9,0\n")
    with pytest.raises(DataError, match=r"d\.csv:3: not UTF-8"):
        load_data(f)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "nope.csv")
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataError, match="unknown data format"):
        load_data(tmp_path / "d.xlsx")


def test_unseen_eval_label(tmp_path):
    f = tmp_path / "dev.csv"
    f.write_text("text,label\na,pos\nb,maybe\n")
    with pytest.raises(DataError, match=r"dev\.csv:3: label 'maybe' was not in the training data"):
        check_labels(load_data(f), ("neg", "pos"))


def test_split_is_deterministic_and_proportioned():
    texts = [f"review number {i}" for i in range(3000)]
    splits = [split_of(t) for t in texts]
    assert splits == [split_of(t) for t in texts]
    assert 0.75 < splits.count("train") / 3000 < 0.85
    assert 0.07 < splits.count("test") / 3000 < 0.13


def test_hash_split_is_disjoint(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(200)))
    train, dev = hash_split(load_data(f))
    assert len(train) + len(dev) == 200 and not set(train.texts) & set(dev.texts)


def test_to_batch_pads_to_longest(tiny_model_dir):
    from edgebert.model.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    ds = DataSet("x", "x", ())
    from edgebert.train.data import Example

    b = to_batch(tok, [Example("good", label="pos"), Example("a very good movie", label="neg")], 32, ("neg", "pos"))
    assert b["input_ids"].shape == (2, 6) and b["labels"].tolist() == [1, 0]
    assert b["attention_mask"].sum(1).tolist() == [3, 6]
    assert len(ds) == 0


@pytest.mark.slow
def test_rotten_tomatoes_builtin():
    full = load_data("rotten-tomatoes")
    assert len(full) == 12808 and full.labels == ("fresh", "rotten")
    parts = {s: load_data("rotten-tomatoes", split=s) for s in ("train", "dev", "test")}
    assert sum(len(p) for p in parts.values()) == 12808
    assert not set(parts["train"].texts) & set(parts["test"].texts)
    assert parts["dev"].name == "rotten-tomatoes:dev" and 1000 < len(parts["test"]) < 1600
    assert load_data("rotten-tomatoes", split="test").texts == parts["test"].texts
    assert load_data("rotten-tomatoes", split="dev", labelled=False).labels == ()
