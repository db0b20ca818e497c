"""Run an export folder on raw text without torch: tokenizer, artifact (or early-exit segments), policy.

`edgebert predict` is this package's command line. It imports numpy, `tokenizers` and the format's
runtime (ONNX Runtime, LiteRT; TorchScript's runtime is torch itself), and of edgebert only the ground
modules, so an app-side Python port needs nothing else.
"""

from edgebert.runtime.policy import Confidence, Entropy, Patience, Policy, parse_policy, run_policy
from edgebert.runtime.predictor import Prediction, Predictor

__all__ = ["Confidence", "Entropy", "Patience", "Policy", "Prediction", "Predictor", "parse_policy", "run_policy"]
