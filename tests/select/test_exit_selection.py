"""Selector with early exits: each candidate also comes with a small grid of (policy, threshold), judged on
the p90 of its latency distribution (or the worst case), its quality lowered by what the policy loses."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import tiny_config

from edgebert.errors import BudgetError
from edgebert.model.spec import SubnetSpec
from edgebert.runtime.policy import Confidence, Entropy, to_text
from edgebert.select.exits import AUTO_GRID, auto_policy, exit_candidates, policy_outcome
from edgebert.select.latency import LatencyEntry, LatencyModel, Prediction
from edgebert.select.selector import Candidate, select, typical_ms


def _config():
    return tiny_config(task="classification", num_labels=2, labels=("neg", "pos"), heads=(3, 3, 3), exits=True)


def _profile():
    entry = LatencyEntry("onnx", "fp32", 1, 0.01, 0.01, 1.0, 1.0, 0.0, 0.1, {"source": "test fit"})
    return SimpleNamespace(latency_model=LatencyModel(entries=(entry,), source="test fit"))


def _evidence(labelled=True):
    """10 dev texts, 3 exits: 9 are confidently right at exit 1, one stays a near-tie until the last exit."""
    logits = np.zeros((10, 3, 2), np.float32)
    logits[:9, :, 1] = 6.0
    logits[9, :2] = [0.1, 0.0]  # near-tie, and wrong, before the last exit
    logits[9, 2] = [0.0, 6.0]
    labels = np.ones(10, int) if labelled else None
    return lambda spec: (logits, labels, "test dev texts")


def _base():
    c = _config()
    lat = _profile().latency_model.predict_latency
    from edgebert.select.costs import costs

    full = lat(costs(c, 16), "onnx", "fp32", 1)
    cand = Candidate(SubnetSpec(1.0, 1.0), "onnx", "fp32", 16, 1, full, Prediction(5.0, "MB", "t", 0, 0), 0.9, "q")
    return c, cand


def test_policy_outcome_histogram_and_drop():
    logits, labels, _ = _evidence()(None)
    hist, drop, src = policy_outcome(logits, labels, Confidence(0.99))
    assert hist == (9, 0, 1) and drop == pytest.approx(0.0) and "accuracy" in src
    hist, drop, _ = policy_outcome(logits, labels, Confidence(0.5))  # the near-tie leaves at exit 1, wrong
    assert hist == (10, 0, 0) and drop == pytest.approx(0.1)
    _, drop_u, src_u = policy_outcome(logits, None, Confidence(0.5))
    assert drop_u == pytest.approx(0.1) and "unlabelled" in src_u


def test_exit_candidates_are_judged_on_p90_and_marked():
    config, base = _config(), _base()[1]
    cands = exit_candidates([base], config, _profile(), _evidence(), grid=(Confidence(0.99), Entropy(0.0)))
    assert len(cands) == 3 and cands[0].early_exit is None
    conf, never = cands[1], cands[2]
    assert conf.early_exit.text == "confidence=0.99" and conf.early_exit.histogram == (9, 0, 1)
    lat = conf.early_exit.latency
    assert conf.latency.value == lat.p90_ms == lat.latencies_ms[0]  # 9 in 10 leave at exit 1
    assert lat.worst_ms > base.latency.value  # three calls and three heads cost more than the plain model
    assert conf.latency.error_p90 == pytest.approx(0.1) and conf.quality == pytest.approx(0.9)
    assert never.early_exit.histogram == (0, 0, 10) and never.latency.value == never.early_exit.latency.worst_ms
    # a budget the plain model misses but the exit policy's p90 meets: the policy is chosen
    budget = (lat.p90_ms * 1.1 + base.latency.value) / 2
    assert lat.p90_ms * 1.1 < budget < base.latency.value
    sel = select(cands, budget, None)
    assert sel.chosen.early_exit is not None and sel.chosen.early_exit.text == "confidence=0.99"
    assert "exit confidence=0.99" in sel.chosen.label
    assert sel.to_dict()["chosen"]["early_exit"]["latency"]["kind"] == "predicted"


def test_on_equal_quality_the_policy_faster_on_average_wins():
    """Both fit: the policy whose p90 (2 of 10 texts run every layer) is above the plain model's latency, but
    whose expected latency is far below it, loses nothing on the dev texts, so it is chosen."""
    config, base = _config(), _base()[1]
    logits, labels, data = _evidence()(None)
    logits[8] = logits[9]  # a second near-tie: 20 % of the texts now reach the last exit
    cands = exit_candidates([base], config, _profile(), lambda spec: (logits, labels, data), grid=(Confidence(0.99),))
    ee = cands[1]
    lat = ee.early_exit.latency
    assert ee.early_exit.histogram == (8, 0, 2) and ee.quality == pytest.approx(base.quality)
    assert lat.p90_ms == lat.worst_ms > base.latency.value > lat.expected_ms
    assert typical_ms(ee) == lat.expected_ms and typical_ms(base) == base.latency.value
    chosen = select(cands, lat.worst_ms * 10, None).chosen
    assert chosen.early_exit is not None and chosen.early_exit.text == "confidence=0.99"
    # the policy loses a point on the dev texts: the plain model wins again, whatever the policy's speed
    worse = dataclasses.replace(ee, quality=ee.quality - 0.01)
    assert select([base, worse], lat.worst_ms * 10, None).chosen.early_exit is None


def test_budget_on_worst_demands_every_layer():
    config, base = _config(), _base()[1]
    cands = exit_candidates([base], config, _profile(), _evidence(), "worst", grid=(Confidence(0.99),))
    ee = cands[1]
    assert ee.latency.value == ee.early_exit.latency.worst_ms
    with pytest.raises(BudgetError):
        select(cands, ee.early_exit.latency.p90_ms * 1.2, None)  # p90 fits, the worst case does not
    with pytest.raises(ValueError):
        exit_candidates([base], config, _profile(), _evidence(), "mean")


def test_a_policy_that_loses_accuracy_loses_quality():
    config, base = _config(), _base()[1]
    (_, loose) = exit_candidates([base], config, _profile(), _evidence(), grid=(Confidence(0.5),))
    assert loose.quality == pytest.approx(0.9 - 0.1) and "confidence=0.5" in loose.quality_source
    (_, unl) = exit_candidates([base], config, _profile(), _evidence(labelled=False), grid=(Confidence(0.5),))
    assert "unlabelled" in unl.quality_source


def test_auto_policy_picks_the_fewest_layers_within_the_limit():
    logits, labels, _ = _evidence()(None)
    policy, record = auto_policy(logits, labels, "test dev texts", 0.005)
    # every within-limit policy that lets the 9 confident texts leave at exit 1 runs 1.2 layers on average;
    # confidence=0.5 (1.0 layers) loses the near-tie's point (10 pt) and is named as over the limit
    assert record["chosen"] == to_text(policy) and record["full_accuracy"] == pytest.approx(1.0)
    chosen = next(t for t in record["tried"] if t["policy"] == record["chosen"])
    assert chosen["mean_exit_layer"] == pytest.approx(1.2) and chosen["quality_drop"] == 0 and chosen["within_limit"]
    assert len(record["tried"]) == len(AUTO_GRID) and "over the limit: confidence=0.5" in record["why"]
    never = next(t for t in record["tried"] if t["policy"] == "entropy=0")
    assert never["histogram"] == [0, 0, 10] and never["within_limit"]
    # a looser limit lets the faster, lossier policy win
    policy, record = auto_policy(logits, labels, "test dev texts", 0.10)
    assert to_text(policy) == "confidence=0.5" and record["tried"][0]["accuracy"] is not None
    # unlabelled texts: the drop is the share of labels that differ from the last exit's
    _, record = auto_policy(logits, None, "texts", 0.005)
    assert record["full_accuracy"] is None and "unlabelled" in record["quality_drop"]
