"""Run an edgebert artifact in an older runtime (ai-edge-litert 1.x, tflite-runtime, onnxruntime 1.x).

Self-contained on purpose (standard library + numpy + the runtime): it runs with the interpreter of an
isolated venv (export/isolated.py names them), because these releases need numpy < 2 and cannot share an
environment with edgebert. It serves JSON lines on stdin/stdout so the model loads once per check:

  first request   {"package": "ai-edge-litert" | "tflite-runtime" | "onnxruntime", "model": PATH, "threads": 1}
  first answer    {"version", "loaded": bool, "error": str | null, "signatures": [[key, seq_len], ...]}
  or              {"package": "onnxruntime", "mobile_package_config": true}
                  -> {"version", "config": text of the reduced ORT Mobile package's op set, or null}
  then, per batch {"feeds": {"input_ids": [[...]], "attention_mask": ..., "token_type_ids": ...}}
  answer          {"output": [[float, ...], ...]} or {"error": str}

A static-shape .tflite runs each row in the smallest signature that holds its tokens, padded with zeros (the
padding token, mask 0, type 0), as edgebert's own LiteRT wrapper does. Native logs go to stderr: the
protocol owns stdout.
"""

import json
import os
import sys

# This file sits among edgebert's modules; none of them may shadow the runtime's imports.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_MODULES = {"ai-edge-litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


def _version(package):
    from importlib import metadata

    return metadata.version(package)


class _Tflite:
    def __init__(self, package, path, threads):
        import importlib

        interpreter = importlib.import_module(_MODULES[package]).Interpreter(model_path=path, num_threads=threads)
        self.signatures = []
        for key in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(key)
            details = runner.get_input_details()
            names = {}
            for name, d in details.items():  # signature inputs are named, or args_N for positional exports
                canon = name if name in INPUT_NAMES else INPUT_NAMES[int(name.rsplit("_", 1)[1])]
                names[canon] = (name, d["dtype"])
            seq_len = int(next(iter(details.values()))["shape"][1])
            self.signatures.append((seq_len, key, runner, names, next(iter(runner.get_output_details()))))
        self.signatures.sort(key=lambda s: s[0])

    def __call__(self, feeds):
        import numpy as np

        rows = []
        for b in range(feeds["input_ids"].shape[0]):
            n_tokens = int(feeds["attention_mask"][b].sum())
            sig = next((s for s in self.signatures if s[0] >= n_tokens), self.signatures[-1])
            seq_len, _, runner, names, output = sig
            args = {}
            for canon, (name, dtype) in names.items():
                row = feeds[canon][b : b + 1, :seq_len]
                args[name] = np.pad(row, ((0, 0), (0, seq_len - row.shape[1]))).astype(dtype)
            rows.append(np.asarray(runner(**args)[output], dtype=np.float32))
        return np.concatenate(rows)


class _Ort:
    def __init__(self, package, path, threads):
        import numpy as np
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        types = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}
        self.inputs = [(i.name, types.get(i.type, np.int64)) for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.signatures = []

    def __call__(self, feeds):
        import numpy as np

        run = {name: feeds[name].astype(dtype) for name, dtype in self.inputs}
        return np.asarray(self.session.run([self.output], run)[0], dtype=np.float32)


def _mobile_package_config():
    import importlib.util

    root = os.path.dirname(importlib.util.find_spec("onnxruntime").origin)
    path = os.path.join(root, "tools", "mobile_helpers", "mobile_package.required_operators.config")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read()


def _answer(out, obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()


def main():
    out = os.fdopen(os.dup(1), "w")  # the protocol's stdout; fd 1 (native logs included) goes to stderr
    os.dup2(2, 1)
    request = json.loads(sys.stdin.readline())
    package = request["package"]
    if request.get("mobile_package_config"):
        _answer(out, {"version": _version(package), "config": _mobile_package_config()})
        return
    answer = {"version": _version(package), "loaded": False, "error": None, "signatures": []}
    try:
        kind = _Ort if package == "onnxruntime" else _Tflite
        model = kind(package, request["model"], int(request.get("threads", 1)))
        answer["loaded"] = True
        answer["signatures"] = [[s[1], s[0]] for s in model.signatures]
    except Exception as exc:  # the verdict: this runtime cannot load the file, and why
        answer["error"] = f"{type(exc).__name__}: {exc}"
    _answer(out, answer)
    if not answer["loaded"]:
        return
    import numpy as np

    for line in sys.stdin:
        if not line.strip():
            continue
        feeds = {k: np.asarray(v, dtype=np.int64) for k, v in json.loads(line)["feeds"].items()}
        try:
            _answer(out, {"output": model(feeds).tolist()})
        except Exception as exc:  # loads but cannot run: also a verdict
            _answer(out, {"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
