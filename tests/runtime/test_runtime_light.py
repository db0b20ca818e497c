"""edgebert.runtime runs on numpy and the formats' runtimes: importing it (and parsing a policy) loads no torch."""

import json
import subprocess
import sys


def test_runtime_imports_no_torch():
    code = (
        "import sys, json; import edgebert.runtime as r; r.parse_policy('patience=2'); "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    mods = set(
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    )
    assert not mods & {"torch", "transformers", "onnxruntime", "ai_edge_litert"}, mods
