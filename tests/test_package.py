"""Packaging promises: `import edgebert` stays light; the wheel nests everything under `edgebert`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "onnxruntime",
    "onnx",
    "onnxscript",
    "tensorflow",
    "ai_edge_litert",
    "litert_torch",
    "ai_edge_quantizer",
    "transformers",
    "accelerate",
    "matplotlib",
    "jax",
)


def test_import_edgebert_is_light():
    code = (
        "import sys, json, edgebert, edgebert.cli, edgebert.registry; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    mods = set(
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    )
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_help_and_profiles_import_no_torch():
    """`edgebert --help` and `edgebert profiles` answer without importing torch or any runtime."""
    code = (
        "import sys, json, contextlib, io; from edgebert.cli import main; "
        "out = io.StringIO(); ctx = contextlib.redirect_stdout(out); ctx.__enter__(); "
        "codes = [main(['--help']), main(['profiles']), main(['profiles', 'show', 'pixel6']), main(['export', '--help'])]; "
        "ctx.__exit__(None, None, None); "
        "print(json.dumps([codes, sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    codes, mods = json.loads(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    assert codes == [0, 0, 0, 0]
    assert not set(mods) & {"torch", *HEAVY}, set(mods) & {"torch", *HEAVY}


def test_wheel_puts_nothing_generic_at_top_level(tmp_path):
    import zipfile

    try:
        import hatchling  # noqa: F401
    except ImportError:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", str(ROOT), "-w", str(tmp_path)],
            capture_output=True,
            text=True,
        )
    else:
        r = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(ROOT), "-w", str(tmp_path)],
            capture_output=True,
            text=True,
        )
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("edgebert-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"edgebert", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for must in (
        "edgebert/cli.py",
        "edgebert/converters/onnx.py",
        "edgebert/device_profiles/pixel6.yaml",
        "edgebert/data/manifest.schema.json",
        "edgebert/data/calibration.txt",
    ):
        assert must in names


def test_readme_setup_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup -->\s*```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    for c in commands:
        assert c in ci, f"README command not in .ci/run: {c}"
