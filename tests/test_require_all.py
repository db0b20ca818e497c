"""EDGEBERT_REQUIRE_ALL=1 (set by .ci/run): a skip for a missing tool fails instead of vanishing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _run(tmp_path, require: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n"
        "def test_no_sshd():\n    pytest.skip('no loopback sshd: /usr/sbin/sshd missing')\n"
        "def test_not_applicable():\n    pytest.skip('only on macOS')\n"
    )
    (tmp_path / "conftest.py").write_text(
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        f"spec = importlib.util.spec_from_file_location('edgebert_conftest', {str(TESTS / 'conftest.py')!r})\n"
        "ours = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(ours)\n"
        "pytest_runtest_makereport = ours.pytest_runtest_makereport\n"
    )
    env = {**os.environ, "EDGEBERT_REQUIRE_ALL": "1" if require else "0"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_skips.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_a_missing_tool_fails_under_require_all_and_other_skips_stay_skips(tmp_path):
    strict = _run(tmp_path, True)
    assert strict.returncode == 1 and "1 failed, 1 skipped" in strict.stdout, strict.stdout
    assert "EDGEBERT_REQUIRE_ALL=1" in strict.stdout
    lenient = _run(tmp_path, False)
    assert lenient.returncode == 0 and "2 skipped" in lenient.stdout, lenient.stdout


def test_ci_sets_require_all():
    assert "export EDGEBERT_REQUIRE_ALL=1" in (TESTS.parent / ".ci" / "run").read_text()
