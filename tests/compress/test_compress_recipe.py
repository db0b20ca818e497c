"""`edgebert compress` end to end on a tiny classifier: output folder, record, quality before/after, resume,
and the bad inputs with their exit codes."""

import json
import random

import pytest
import torch
from conftest import WORDS, make_tiny_model, save_tiny_model_dir, sentiment_csv

from edgebert.cli import main
from edgebert.compress.config import CompressConfig
from edgebert.compress.recipe import compress
from edgebert.model.bert import load_model
from edgebert.model.compression import COMPRESSION_FILE, sparsity
from edgebert.model.exits import with_exits
from edgebert.select.quality import QUALITY_FILE


@pytest.fixture
def setup(tmp_path):
    model = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    return tmp_path, save_tiny_model_dir(tmp_path / "cls", model), sentiment_csv(tmp_path / "train.csv")


def _flags(tmp_path, model_dir, data, out="out"):
    return [
        "compress",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / out),
        "--batch-size",
        "16",
        "--seq-len",
        "16",
        "--max-steps",
        "4",
        "--lr",
        "1e-3",
        "--no-quantized",  # two ONNX conversions per sub-network: tested once, below
    ]


def test_compress_writes_a_dynamic_compressed_model_and_says_how(setup, capsys):
    tmp_path, model_dir, data = setup
    argv = _flags(tmp_path, model_dir, data) + ["--embedding-rank", "16", "--weight-rank", "0.25", "--prune", "0.4"]
    assert main(argv) == 0
    out = tmp_path / "out"
    model = load_model(out)
    assert (model.config.embedding_rank, model.config.weight_rank) == (16, 12)
    assert model.config.heads == (2, 2, 2)  # structured 0.4 of 3 heads keeps 2
    record = json.loads((out / COMPRESSION_FILE).read_text())
    plan = {"embedding_rank": 16, "weight_rank": 12, "prune": 0.4, "prune_kind": "structured", "prune_steps": 3}
    assert record["plan"] == plan  # structured pruning in 3 steps by default, the 4 distillation steps split 2/1/1
    assert record["distillation"]["steps"] == 4
    assert [s["steps"] for s in record["distillation"]["prune_steps"]] == [2, 1, 1]
    table = json.loads((out / QUALITY_FILE).read_text())
    assert len(table) == 12 and set(record["quality"]["after"]) == set(table) == set(record["quality"]["before"])
    assert record["structure"]["parameters"] < 0.5 * record["parameters_before"]
    text = capsys.readouterr().out
    assert "embedding rank 16" in text and "w0.5-d0.75" in text and "measured" in text


def test_unstructured_pruning_is_exact_after_a_resumed_run(setup):
    tmp_path, model_dir, data = setup
    kw = dict(
        data=str(data), out=str(tmp_path / "u"), model=str(model_dir), batch_size=16, seq_len=16, max_steps=6,
        lr=1e-3, checkpoint_every=2, rewire_texts=32, prune=0.5, prune_kind="unstructured",
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        compress(CompressConfig(**kw), progress=False, _stop_at=("depth", 3))
    compress(CompressConfig(**kw, resume=True), progress=False)
    model = load_model(tmp_path / "u")
    assert sparsity(model)["share"] == pytest.approx(0.5, abs=1e-3)
    record = json.loads((tmp_path / "u" / COMPRESSION_FILE).read_text())
    assert record["structure"]["sparsity"]["bytes_saved_stored_dense"] == 0
    assert any("save no bytes" in n for n in record["notes"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--embedding-rank", "0"], "must be >= 1"),
        (["--embedding-rank", "49"], "above the full rank 48"),
        (["--weight-rank", "1.5"], "share of the full rank"),
        (["--embedding-rank", "abc"], "takes a rank"),
        (["--prune", "1.0"], "1.0 leaves nothing"),
        (["--memory", "12MB"], "go together"),
        (["--subnets-per-step", "1"], "--subnets-per-step takes 0"),
    ],
)
def test_bad_inputs_exit_2_with_a_clear_message(setup, capsys, extra, message):
    tmp_path, model_dir, data = setup
    assert main(_flags(tmp_path, model_dir, data) + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unreachable_memory_exits_3_with_the_smallest_reachable_size(setup, capsys):
    tmp_path, model_dir, data = setup
    assert main(_flags(tmp_path, model_dir, data) + ["--memory", "1KB", "--device", "pixel6"]) == 3
    err = capsys.readouterr().err
    assert "smallest reachable is" in err and "MB" in err and "Raise --memory" in err


def test_a_model_without_task_head_is_refused(tmp_path, capsys):
    model_dir = save_tiny_model_dir(tmp_path / "enc", make_tiny_model())
    data = sentiment_csv(tmp_path / "train.csv")
    assert main(_flags(tmp_path, model_dir, data) + ["--embedding-rank", "16"]) == 2
    assert "no task head" in capsys.readouterr().err
    torch.manual_seed(0)


def test_data_with_a_label_the_model_lacks_exits_2_before_any_work(tmp_path, capsys):
    model = make_tiny_model(task="classification", num_labels=2, labels=("bad", "good"))
    model_dir = save_tiny_model_dir(tmp_path / "cls", model)
    data = sentiment_csv(tmp_path / "train.csv")  # labels neg/pos
    assert main(_flags(tmp_path, model_dir, data) + ["--embedding-rank", "16"]) == 2
    err = capsys.readouterr().err
    assert "label 'neg' is not one of the model's labels" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_sentence_encoder_is_scored_against_the_uncompressed_model(tmp_path):
    model_dir = save_tiny_model_dir(tmp_path / "enc", make_tiny_model())
    rng = random.Random(0)
    (tmp_path / "texts.txt").write_text("\n".join(" ".join(rng.sample(WORDS, 6)) for _ in range(120)) + "\n")
    argv = ["compress", "--model", str(model_dir), "--task", "embedding", "--data", str(tmp_path / "texts.txt")]
    argv += ["--out", str(tmp_path / "o"), "--embedding-rank", "16", "--max-steps", "2", "--batch-size", "16"]
    assert main(argv + ["--seq-len", "16"]) == 0
    q = json.loads((tmp_path / "o" / COMPRESSION_FILE).read_text())["quality"]
    assert q["metric"] == "cosine_fidelity" and q["before"]["w1-d1"] == 1.0
    assert 0.5 < q["after"]["w1-d1"] < 1.0  # fidelity to the uncompressed encoder, not to itself


def test_compress_scores_the_compressed_artifacts_per_precision_as_train_does(setup, capsys):
    """The selector's int8 candidates of a compressed variant are then measured, not derived (issue 16 item 4)."""
    tmp_path, model_dir, data = setup
    argv = _flags(tmp_path, model_dir, data) + ["--embedding-rank", "16", "--widths", "1", "--depths", "1"]
    argv[argv.index("--no-quantized")] = "--quantized=onnx/int8"
    assert main(argv) == 0, capsys.readouterr().err
    row = json.loads((tmp_path / "out" / QUALITY_FILE).read_text())["w1-d1"]
    scored = row["precisions"]["onnx/int8"]
    assert (scored["format"], scored["precision"], scored["metric"]) == ("onnx", "int8", row["metric"])
    assert 0.0 <= scored["score"] <= 1.0 and scored["n"] == row["n"]
    log = json.loads((tmp_path / "out" / "training.json").read_text())["quantized_quality"]
    assert log["scored"] == ["onnx/int8"] and log["failed"] == []
    assert main(_flags(tmp_path, model_dir, data, "o2") + ["--quantized", "onnx/int8"]) == 2  # with --no-quantized
    assert "give one of them, not both" in capsys.readouterr().err


def test_a_source_with_exit_heads_is_compressed_without_them_and_says_so(tmp_path):
    """Distillation trains the final head only: exits kept on the compressed backbone would be stale and
    unrecorded, so they are dropped, and the record's notes say so."""
    model = with_exits(make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos")), "mean")
    model_dir = save_tiny_model_dir(tmp_path / "cls", model)
    assert load_model(model_dir).config.exits
    assert main(_flags(tmp_path, model_dir, sentiment_csv(tmp_path / "train.csv")) + ["--embedding-rank", "16"]) == 0
    out = load_model(tmp_path / "out")
    assert not out.config.exits and not any(k.startswith("exits.") for k in out.state_dict())
    notes = json.loads((tmp_path / "out" / COMPRESSION_FILE).read_text())["notes"]
    assert any("early-exit heads were dropped" in n for n in notes)
