import json

import pytest

from edgebert.errors import SpecError
from edgebert.model.spec import DEPTHS, WIDTHS, SubnetSpec, kept_count, kept_layers


def test_depth_rule_matches_dynabert():
    assert kept_layers(0.5, 12) == [0, 2, 4, 6, 8, 10]
    assert kept_layers(0.75, 12) == [0, 1, 2, 4, 5, 6, 8, 9, 10]  # every fourth layer dropped
    assert kept_layers(1.0, 12) == list(range(12))
    assert kept_layers(0.5, 6) == [0, 2, 4]
    assert kept_layers(0.75, 6) == [0, 1, 2, 4, 5]  # round(4.5) -> 5 layers (halves go up)


def test_depth_rule_half_up_and_in_range():
    # 0.75 * 6 = 4.5 rounds half-up to 5 layers, not Python's banker's 4
    assert kept_count(0.75, 6) == 5
    for d in DEPTHS:
        for n in range(1, 25):
            layers = kept_layers(d, n)
            assert layers == sorted(set(layers)) and all(0 <= i < n for i in layers)


def test_widths_keep_rounded_counts():
    assert [kept_count(w, 12) for w in WIDTHS] == [3, 6, 9, 12]
    assert [kept_count(w, 1536) for w in WIDTHS] == [384, 768, 1152, 1536]
    assert kept_count(0.5, 3) == 2  # 1.5 rounds up
    assert kept_count(0.25, 70) == 18  # 17.5 rounds up
    assert kept_count(0.25, 3) == 1


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, "a", True, None, float("nan")])
@pytest.mark.parametrize("field", ["width", "depth"])
def test_invalid_multipliers_are_spec_errors(field, bad):
    with pytest.raises(SpecError, match=field) as err:
        SubnetSpec(**{field: bad})
    assert "(0, 1]" in str(err.value)


def test_width_leaving_no_heads_is_refused():
    with pytest.raises(SpecError, match="keeps 0 of the 3 attention heads") as err:
        SubnetSpec(width=0.1).check_fits((3, 3, 3), (70, 70, 70))
    assert "--width" in str(err.value)  # the message says what to do


def test_depth_leaving_no_layers_is_refused():
    with pytest.raises(SpecError, match="keeps no layer"):
        SubnetSpec(depth=0.1).check_fits((3, 3, 3), (70, 70, 70))


def test_grid_specs_fit_a_tiny_model():
    for w in WIDTHS:
        for d in DEPTHS:
            SubnetSpec(w, d).check_fits((3, 3, 3), (70, 70, 70))


def test_json_round_trip():
    spec = SubnetSpec(width=0.75, depth=0.5)
    back = SubnetSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    assert SubnetSpec(1, 1) == SubnetSpec(1.0, 1.0)  # ints are accepted and normalised


def test_key_round_trip():
    for w in WIDTHS:
        for d in DEPTHS:
            spec = SubnetSpec(w, d)
            assert SubnetSpec.from_key(spec.key) == spec
    assert SubnetSpec(0.5, 0.75).key == "w0.5-d0.75"


@pytest.mark.parametrize("key", ["0.5", "w0.5", "wide-deep", "w0.5-d0.75-x", ""])
def test_bad_keys_are_spec_errors(key):
    with pytest.raises(SpecError):
        SubnetSpec.from_key(key)
