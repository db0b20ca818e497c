"""The parity gate with stand-in runtimes (no export needed): figures, verdicts and the ParityError message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_model, save_tiny_model_dir

from edgebert.artifact import ArtifactConfig, Tolerance
from edgebert.errors import ParityError
from edgebert.export.verify import PARITY_TEXTS, check, verify
from edgebert.model.tokenizer import INPUT_NAMES, load_tokenizer

SEQ_LEN = 32


class FakeConverter:
    """Just what verify reads from a converter."""

    name = "fake"

    def __init__(self, dynamic=True):
        self.dynamic_shapes = dynamic

    def tolerance(self, precision):
        return {
            "fp32": Tolerance(max_abs_diff=1e-4, min_cosine=0.9999),
            "int8": Tolerance(max_abs_diff=None, min_cosine=0.98, min_argmax_agreement=0.9),
        }[precision]


def torch_runtime(model, transform=lambda out: out, seen=None):
    def run(feeds):
        if seen is not None:
            seen.append(feeds["input_ids"].shape)
        with torch.no_grad():
            out = model(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES)).numpy()
        return transform(out)

    return run


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load_tokenizer(save_tiny_model_dir(tmp_path_factory.mktemp("tok"), make_tiny_model()))


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


@pytest.fixture(scope="module")
def classifier():
    return make_tiny_model(seed=3, task="classification", num_labels=3, labels=("a", "b", "c"))


def test_exact_runtime_passes_with_full_figures(model, tok):
    figures = verify(model, torch_runtime(model), tok, FakeConverter(), ArtifactConfig("onnx", "fp32", SEQ_LEN))
    assert figures["passed"] and figures["failures"] == []
    assert figures["max_abs_diff"] == 0.0 and figures["mean_abs_diff"] == 0.0
    assert figures["min_cosine"] == pytest.approx(1.0) and figures["mean_cosine"] == pytest.approx(1.0)
    assert figures["argmax_agreement"] is None  # not a classifier
    assert figures["tolerance"]["max_abs_diff"] == 1e-4
    check(figures, "model.onnx")  # no exception


def test_dynamic_formats_get_a_batch_and_singles_of_several_lengths(model, tok):
    seen = []
    # 64: the tiny vocabulary spells most words letter by letter, so medium sentences need room.
    figures = verify(
        model, torch_runtime(model, seen=seen), tok, FakeConverter(True), ArtifactConfig("onnx", "fp32", 64)
    )
    n = len(PARITY_TEXTS)
    assert figures["n_inputs"] == 2 * n and figures["batch_sizes"] == [1, n]
    assert seen[0] == (n, 64)  # the batch is padded to its longest row, here the cut paragraph
    assert max(figures["seq_lens"]) == 64 and min(figures["seq_lens"]) <= 6 and len(figures["seq_lens"]) >= 4


def test_static_formats_get_batch_one_unpadded(model, tok):
    seen = []
    figures = verify(
        model, torch_runtime(model, seen=seen), tok, FakeConverter(False), ArtifactConfig("tflite", "fp32", SEQ_LEN)
    )
    assert figures["batch_sizes"] == [1] and figures["n_inputs"] == len(PARITY_TEXTS)
    assert all(shape[0] == 1 for shape in seen)


def test_given_texts_are_used(model, tok):
    seen = []
    verify(
        model,
        torch_runtime(model, seen=seen),
        tok,
        FakeConverter(False),
        ArtifactConfig("tflite", "fp32", SEQ_LEN),
        texts=["fun", "the movie"],
    )
    assert len(seen) == 2


def test_seq_len_is_capped_by_the_model(model, tok):
    # A config longer than the position table must not feed impossible lengths to the reference.
    figures = verify(model, torch_runtime(model), tok, FakeConverter(), ArtifactConfig("onnx", "fp32", 512))
    assert max(figures["seq_lens"]) == model.config.max_position_embeddings


def test_broken_runtime_fails_check_naming_the_artifact(model, tok):
    figures = verify(
        model,
        torch_runtime(model, lambda out: out + 0.1),
        tok,
        FakeConverter(),
        ArtifactConfig("onnx", "fp32", SEQ_LEN),
    )
    assert not figures["passed"]
    assert figures["max_abs_diff"] == pytest.approx(0.1, rel=1e-3)
    with pytest.raises(ParityError, match=r"model\.onnx \(onnx fp32\).*max_abs_diff 0\.1 > 0\.0001") as err:
        check(figures, "model.onnx (onnx fp32)")
    assert err.value.exit_code == 4


def test_non_finite_outputs_fail(model, tok):
    figures = verify(
        model,
        torch_runtime(model, lambda out: out * np.nan),
        tok,
        FakeConverter(),
        ArtifactConfig("onnx", "int8", SEQ_LEN),
    )
    assert not figures["passed"] and "outputs are not finite" in figures["failures"]


def test_quantized_precision_is_judged_by_cosine_not_abs_diff(model, tok):
    noisy = torch_runtime(model, lambda out: out * 1.05)  # scaled: large abs diff, cosine 1
    figures = verify(model, noisy, tok, FakeConverter(), ArtifactConfig("onnx", "int8", SEQ_LEN))
    assert figures["max_abs_diff"] > 1e-3 and figures["passed"]


def test_classifier_argmax_disagreement_fails(classifier, tok):
    swapped = torch_runtime(classifier, lambda out: out[:, ::-1].copy())
    figures = verify(classifier, swapped, tok, FakeConverter(), ArtifactConfig("onnx", "int8", SEQ_LEN))
    assert figures["argmax_agreement"] < 0.9
    with pytest.raises(ParityError, match="argmax_agreement"):
        check(figures, "model.onnx")


def test_classifier_agreement_is_reported(classifier, tok):
    figures = verify(
        classifier, torch_runtime(classifier), tok, FakeConverter(), ArtifactConfig("onnx", "fp32", SEQ_LEN)
    )
    assert figures["argmax_agreement"] == 1.0 and figures["passed"]


def test_reference_training_mode_is_restored(tok):
    model = make_tiny_model().train()
    verify(model, torch_runtime(model), tok, FakeConverter(), ArtifactConfig("onnx", "fp32", SEQ_LEN))
    assert model.training


# The int8 classifier tolerance the converters ship (converters/_common.py).
INT8_CLASSIFIER = Tolerance(max_abs_diff=None, min_cosine=0.98, min_argmax_agreement=1.0, max_prob_diff=0.1)


def _failures_of(ref, out, tol=INT8_CLASSIFIER):
    from edgebert.export.verify import _failures, decision_figures

    ref, out = np.asarray(ref, dtype=np.float32), np.asarray(out, dtype=np.float32)
    cos = (ref * out).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(out, axis=1)
    figures = {
        "max_abs_diff": float(np.abs(ref - out).max()),
        "min_cosine": float(cos.min()),
        "argmax_agreement": float((ref.argmax(1) == out.argmax(1)).mean()),
        **decision_figures(ref, out, tol),
    }
    return figures, _failures(figures, tol)


def test_a_near_tie_that_flips_is_not_a_parity_failure():
    """Measured case (LadaBERT r256 int8 TFLite): logits (-0.011, -0.027) became (-0.067, 0.023): cosine 0.078
    and one decision in eight flipped, yet the 200 dev decisions agreed 99.5% with probabilities within 0.05."""
    ref = [[1.237, -1.253], [-0.55, 0.617], [-0.011, -0.027], [1.553, -1.494]]
    out = [[1.239, -1.255], [-0.561, 0.622], [-0.067, 0.023], [1.548, -1.478]]
    figures, failures = _failures_of(ref, out)
    assert figures["min_cosine"] < 0.1 and figures["argmax_agreement"] == 0.75
    assert figures["n_decided"] == 3 and figures["decided_agreement"] == 1.0 and failures == []


def test_a_decided_input_that_flips_fails():
    ref = [[1.0, -1.0], [0.2, 0.0]]  # the second: p = (0.55, 0.45), margin 0.10 < 2 x 0.1: a near-tie
    figures, failures = _failures_of(ref, [[1.0, -1.0], [0.0, 0.05]])  # flips, p moves 0.06
    assert figures["argmax_agreement"] == 0.5 and failures == []
    _, failures = _failures_of([[1.0, -1.0], [0.6, 0.0]], [[1.0, -1.0], [0.0, 0.1]])  # margin 0.29: decided
    assert any("max_prob_diff" in f for f in failures) and any("not near-ties" in f for f in failures)


def test_probabilities_that_move_too_far_fail_even_without_a_flip():
    _, failures = _failures_of([[3.0, -3.0]], [[0.9, -0.9]])  # p 0.998 -> 0.858
    assert failures == ["max_prob_diff 0.139 > 0.1"]


def test_encoders_are_still_judged_by_cosine():
    from edgebert.export.verify import _failures

    figures = {"max_abs_diff": 0.5, "min_cosine": 0.95, "argmax_agreement": None}
    assert _failures(figures, INT8_CLASSIFIER) == ["min_cosine 0.95000 < 0.98"]
