"""calibrate: refit a device's latency model from measurements.

`full` is `edgebert calibrate` (≤ 10 sub-networks on any target, an override in the config folder);
`quick` is what `--device host` runs on a machine the shipped fit was not made on (about a minute,
cached per machine)."""

from edgebert.calibrate.full import CALIBRATION_SPECS, CalibrateRequest, calibrate, seq_lens
from edgebert.calibrate.quick import QuickRequest, calibrate_host, quick_calibrate

__all__ = [
    "CalibrateRequest",
    "CALIBRATION_SPECS",
    "calibrate",
    "seq_lens",
    "QuickRequest",
    "quick_calibrate",
    "calibrate_host",
]
