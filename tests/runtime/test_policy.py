"""Early-exit policies: parsing (the one place text becomes a policy) and the exit loop."""

import numpy as np
import pytest

from edgebert.errors import UsageError
from edgebert.runtime.policy import Confidence, Entropy, Patience, parse_policy, policy_from_dict, run_policy, to_dict

SURE, UNSURE = np.array([0.0, 9.0]), np.array([0.1, 0.0])


@pytest.mark.parametrize(
    "text,policy",
    [
        ("entropy=0.3", Entropy(0.3)),
        ("patience=2", Patience(2)),
        ("confidence=0.9", Confidence(0.9)),
        (" Patience = 1 ", Patience(1)),
    ],
)
def test_parse_round_trips(text, policy):
    assert parse_policy(text) == policy
    assert policy_from_dict(to_dict(policy)) == policy


@pytest.mark.parametrize(
    "text,match",
    [
        ("patience=0", "K >= 1"),
        ("patience=1.5", "integer"),
        ("entropy=-1", "T >= 0"),
        ("entropy=nan", "T >= 0"),
        ("confidence=1.5", r"\[0, 1\]"),
        ("foo=1", "unknown early-exit policy"),
        ("confidence", "NAME=VALUE"),
        ("", "NAME=VALUE"),
    ],
)
def test_bad_policies_are_usage_errors(text, match):
    with pytest.raises(UsageError, match=match) as info:
        parse_policy(text)
    assert info.value.exit_code == 2


def test_confidence_zero_exits_at_layer_one_and_entropy_zero_never_fires():
    exits = [UNSURE, SURE, SURE, SURE]
    assert run_policy(Confidence(0.0), exits)[0] == 1
    assert run_policy(Entropy(0.0), [SURE] * 4)[0] == 4
    assert run_policy(Confidence(0.99), exits)[0] == 2
    assert run_policy(Entropy(0.01), exits)[0] == 2


def test_patience_counts_agreeing_exits_after_the_first():
    flip = np.array([9.0, 0.0])
    assert run_policy(Patience(1), [flip, SURE, SURE, SURE])[0] == 3
    assert run_policy(Patience(2), [SURE, flip, SURE, SURE, SURE])[0] == 5
    layer, logits = run_policy(Patience(3), [SURE, SURE])  # never fires: the last exit answers
    assert layer == 2 and np.array_equal(logits, SURE)


def test_exits_after_the_one_taken_are_never_computed():
    computed = []

    def lazy():
        for k, z in enumerate([UNSURE, SURE, SURE], start=1):
            computed.append(k)
            yield z

    assert run_policy(Confidence(0.99), lazy())[0] == 2 and computed == [1, 2]
