"""The quick calibration's own pieces: in-process timing windows and the order pairs are calibrated in."""

from __future__ import annotations

import numpy as np

import edgebert.calibrate.quick as quick


def test_timing_window_warms_up_then_times_at_least_the_minimum_runs():
    seen = []
    times = quick._time_ms(seen.append, seq_len=24, vocab_size=50, window_s=0.0, min_runs=4)
    assert len(times) == 4 and len(seen) == 6 and all(t >= 0 for t in times)  # two warm-up calls not timed
    ids = seen[0]["input_ids"]
    assert ids.shape == (1, 24) and ids.dtype == np.int64 and 1 <= ids.min() and ids.max() < 50
    assert (seen[0]["attention_mask"] == 1).all() and (seen[0]["token_type_ids"] == 0).all()


def test_int8_is_calibrated_first_in_the_given_format_order():
    pairs = [("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8")]
    assert quick.most_useful_first(iter(pairs)) == (
        ("onnx", "int8"),
        ("tflite", "int8"),
        ("onnx", "fp32"),
        ("tflite", "fp32"),
    )
