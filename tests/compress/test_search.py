"""The memory search: predicted sizes that account for compression, the stated rule, exit 3 when nothing fits."""

import pytest
from conftest import make_tiny_model

from edgebert.compress.factorise import factorise
from edgebert.compress.search import candidates, search
from edgebert.errors import BudgetError
from edgebert.model.bert import load_model
from edgebert.select.costs import costs
from edgebert.select.profiles import load_profile


def test_candidate_sizes_are_the_compressed_models_sizes():
    config = make_tiny_model(vocab_size=3000).config
    profile = load_profile("pixel6")
    fmt = profile.formats[0]
    for c in candidates(config, profile, fmt, "int8", 32)[::7]:
        model = factorise(make_tiny_model(vocab_size=3000), c.embedding_rank, c.weight_rank)
        assert c.parameters == model.num_parameters() or c.prune  # pruned ones: fewer heads, checked by costs tests
        if not c.prune:
            assert c.file_mb == pytest.approx(costs(model.config, 32).weight_bytes("int8", fmt) / 1e6)


def test_the_least_encoder_compression_that_fits_is_chosen():
    config = make_tiny_model(vocab_size=3000).config
    profile = load_profile("pixel6")
    found = candidates(config, profile, profile.formats[0], "int8", 32)
    limit = max(c.file_mb for c in found if c.embedding_rank and not c.prune and not c.weight_rank)
    limit = max(limit, max(c.memory_mb or 0 for c in found))  # memory never the binding limit here
    chosen, account = search(config, profile, limit, seq_len=32)
    assert chosen.prune == 0 and chosen.weight_rank == 0 and account["fitting"] >= 1
    assert "rule" in account and account["chosen"]["file_mb"] <= limit


def test_nothing_fits_raises_exit_3_with_the_smallest_reachable_size():
    config = make_tiny_model().config
    with pytest.raises(BudgetError, match="smallest reachable is") as err:
        search(config, load_profile("pixel6"), 0.001, seq_len=32)
    assert err.value.exit_code == 3


@pytest.mark.slow
def test_minilm_rank_128_table_shrinks_the_predicted_int8_tflite_by_about_8_mb(minilm_dir):
    config = load_model(minilm_dir).config
    from dataclasses import replace

    dense, small = costs(config, 128), costs(replace(config, embedding_rank=128), 128)
    saved = (dense.weight_bytes("int8", "tflite") - small.weight_bytes("int8", "tflite")) / 1e6
    assert saved == pytest.approx(30522 * (384 - 128) / 1e6 - 128 * 384 / 1e6, rel=0.01)  # 7.8 MB - projection
    # The profile's predicted peak memory (runtime overhead and activations included) binds before the file.
    chosen, account = search(config, load_profile("pixel6"), 30.0, seq_len=128)
    assert chosen.file_mb <= 30.0 and chosen.memory_mb <= 30.0
    # LiteRT maps the word table from the file and only touched rows become resident, so the predicted peak
    # memory hardly moves with the table rank: structured pruning is what fits 30 MB here.
    assert chosen.prune > 0
    with pytest.raises(BudgetError, match="smallest reachable is 1[0-9].[0-9] MB"):
        search(config, load_profile("pixel6"), 12.0, seq_len=128)
