"""Untrained embedding ranks: `export --device` on a model folder without compressed variants that does not fit."""

import json
from dataclasses import replace

import pytest
import yaml
from conftest import make_tiny_model, save_tiny_model_dir, tiny_config

from edgebert.cli import main
from edgebert.export.manifest import validate
from edgebert.model.bert import load_model
from edgebert.model.spec import SubnetSpec
from edgebert.select.costs import costs
from edgebert.select.profiles import load_profile
from edgebert.select.quality import write_table
from edgebert.select.ranks import embedding_ranks
from edgebert.select.selector import round_up

SEQ = 32
SMALLEST = SubnetSpec(0.25, 0.5)


@pytest.fixture
def board(tmp_path):
    model = make_tiny_model(task="classification", num_labels=2, labels=("neg", "pos"))
    base = save_tiny_model_dir(tmp_path / "rt-tiny", model)
    host = yaml.safe_load(open(load_profile("host").path))
    host["name"] = "board"  # a named profile: no host calibration in the test
    (tmp_path / "board.yaml").write_text(yaml.safe_dump(host))
    return tmp_path, base


def _memory(config, rank: int, spec=SMALLEST) -> float:
    """The p90 bound of the predicted peak memory, as the selector judges it (torchscript fp32 on the host fit)."""
    c = costs(replace(config, embedding_rank=rank), SEQ, spec)
    return load_profile("host").latency_model.predict_memory(c, "torchscript", "fp32").upper


def _argv(tmp_path, base, out, memory):
    argv = ["export", "--model", str(base), "--device", str(tmp_path / "board.yaml"), "--budget", "1000ms"]
    argv += ["--memory", f"{memory:.6f}MB", "--seq-len", str(SEQ), "--formats", "torchscript", "--quantize", "fp32"]
    return argv + ["--no-measure", "--out", str(out)]


def test_ranks_are_shares_of_the_hidden_size_below_the_tables_own_rank():
    assert embedding_ranks(replace(tiny_config(), vocab_size=30522, hidden_size=384)) == (256, 192, 128, 96, 64, 48)
    cfg = tiny_config()  # hidden 48, ~150 words: only ranks whose two factors are smaller than the table
    assert embedding_ranks(cfg) == (32, 24, 16, 12, 8, 6)
    assert embedding_ranks(replace(cfg, embedding_rank=16)) == (12, 8, 6)


def test_round_up_never_rounds_a_limit_below_what_it_must_hold():
    assert [round_up(x) for x in (0.2747, 0.244, 6.93, 7.0, 12.1)] == ["0.28", "0.25", "7", "7", "13"]


def test_a_model_too_big_for_the_limit_gets_an_untrained_rank_and_says_it_is_a_proxy(board, capsys):
    tmp_path, base = board
    config = load_model(base).config
    uncompressed, rank16 = _memory(config, 0), _memory(config, 16)
    assert rank16 < uncompressed  # the tiny model's smallest slice fits only with a smaller word table
    limit = (rank16 + uncompressed) / 2
    out = tmp_path / "out"
    assert main(_argv(tmp_path, base, out, limit)) == 0
    m = json.loads((out / "manifest.json").read_text())
    validate(m)
    sel = m["selection"]
    er = sel["embedding_rank"]
    rank = er["rank"]
    fit = {r for r in embedding_ranks(config) if _memory(config, r) <= limit}
    assert rank in fit and 32 not in fit and 6 in fit  # only ranks that fit were candidates
    assert er["trained"] is False and er["quality"] == {
        "figure": sel["chosen"]["quality"],
        "kind": "proxy",
        "measured": False,
        "source": sel["chosen"]["quality_source"],
    }
    assert "proxy, untrained (SVD only" in sel["chosen"]["quality_source"] and "not measured" in sel["quality_source"]
    says = f"embedding rank {rank} chosen by the proxy, untrained (SVD only); quality figure "
    assert er["says"].startswith(says) and "is a proxy, not measured" in er["says"]
    assert f"edgebert compress --model {base} --embedding-rank {rank} --data DATA" in er["says"]
    # The best proxy among everything that fits won; the ranks that do not fit measured no proxy.
    scored = {(c["rank"], k): q for c in er["considered"] for k, q in c["proxy"].items()}
    assert {r for r, _ in scored} == fit and round(sel["chosen"]["quality"], 4) == max(scored.values())
    assert not any(c["proxy"] for c in er["considered"] if c["rank"] not in fit)
    assert er["uncompressed"]["why"].startswith("no candidate fits") and er["uncompressed"]["fits"] is False
    assert sel["chosen"]["variant"] == f"embedding rank {rank} (untrained, SVD)"
    # What was exported is the truncated slice: its table really is vocab x rank, and it passed parity.
    assert m["compression"]["subnet"]["embedding_rank"] == rank and m["compression"]["source_record"] is None
    assert m["compression"]["subnet"]["factorised"]["embeddings.word"][1] == rank
    assert m["artifacts"][0]["parity"]["passed"] and m["source_model"]["path"] == str(base.resolve())
    pred, spec = m["artifacts"][0]["memory"]["predicted"], SubnetSpec.from_dict(m["subnet"]["spec"])
    assert pred["value"] * (1 + pred["error_p90"]) == pytest.approx(_memory(config, rank, spec))  # truncated shapes
    report = (out / "report.md").read_text()
    assert f"**Untrained embedding rank:** {says}" in report
    assert f"embedding rank {rank} chosen by the proxy, untrained (SVD only)" in capsys.readouterr().out


def test_a_limit_no_rank_reaches_exits_3_naming_the_smallest_reachable_size(board, capsys):
    tmp_path, base = board
    config = load_model(base).config
    reach = min(_memory(config, r) for r in embedding_ranks(config))  # the smallest rank at the smallest slice
    assert reach == _memory(config, 6)
    assert main(_argv(tmp_path, base, tmp_path / "none", reach * 0.97)) == 3
    err = capsys.readouterr().err
    assert "truncated by SVD (untrained) to rank 32, 24, 16, 12, 8, 6" in err
    assert f"the smallest reachable predicted memory is {reach:.3g} MB" in err and "embedding rank 6" in err
    assert f"a --memory of at least {round_up(reach)} MB" in err and "Traceback" not in err
    assert not (tmp_path / "none").exists()


def test_trained_variants_keep_the_old_behaviour_and_a_model_that_fits_gets_no_rank(board, capsys):
    tmp_path, base = board
    config = load_model(base).config
    m = json.loads(_export_ok(tmp_path, base, tmp_path / "roomy", 1e4))
    assert "embedding_rank" not in m["selection"] and m["compression"] is None
    # A compressed variant in the folder (even one left out: the model has no measured table) means the
    # variants branch decides, as before: nothing fits is the selector's own exit 3, no rank is tried.
    variant = save_tiny_model_dir(base / "r16", make_tiny_model(seed=1, task="classification", num_labels=2))
    (variant / "compression.json").write_text(json.dumps({"plan": {}, "source": {}}))
    write_table(variant, {"w1-d1": {"score": 0.5, "metric": "accuracy", "data": "x", "n": 1}})
    limit = (_memory(config, 16) + _memory(config, 0)) / 2
    assert main(_argv(tmp_path, base, tmp_path / "tight", limit)) == 3
    err = capsys.readouterr().err
    assert "no candidate fits" in err and "SVD" not in err and "a --memory of at least" in err


def _export_ok(tmp_path, base, out, memory) -> str:
    assert main(_argv(tmp_path, base, out, memory)) == 0
    return (out / "manifest.json").read_text()


def test_with_a_measured_table_only_the_sub_networks_it_serves_are_candidates(board):
    tmp_path, base = board
    config = load_model(base).config
    row = {"metric": "accuracy", "data": "dev.csv", "n": 10}
    write_table(base, {"w1-d1": {"score": 0.9, **row}, "w0.25-d0.75": {"score": 0.7, **row}})  # trained at these
    served = SubnetSpec(0.25, 0.75)
    limit = (_memory(config, 16, served) + _memory(config, 0, served)) / 2
    m = json.loads(_export_ok(tmp_path, base, tmp_path / "served", limit))
    er = m["selection"]["embedding_rank"]
    assert m["selection"]["chosen"]["spec"] == "w0.25-d0.75"  # w0.25-d0.5 fits better but was never trained
    assert {k for c in er["considered"] for k in c["proxy"]} == {"w0.25-d0.75"}
    assert "is a proxy, not measured" in er["says"] and f"--eval DEV --out {base}/r{er['rank']}" in er["says"]
