"""Older runtimes' venvs made on demand in the cache folder (`edgebert compat --install-runtimes`)."""

from __future__ import annotations

import pytest

from edgebert.errors import RunnerError
from edgebert.export.isolated import ISOLATED, IsolatedRuntime, isolated_python
from edgebert.export.runtime_envs import install_missing, install_runtime

ORT = ISOLATED["onnxruntime==1.18.0"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEBERT_CACHE_DIR", str(tmp_path / "cache"))
    for runtime in ISOLATED.values():
        monkeypatch.delenv(runtime.env_var, raising=False)
    return tmp_path / "cache"


def test_a_made_venv_is_found_when_no_variable_names_one(cache, monkeypatch):
    monkeypatch.setattr(IsolatedRuntime, "requirements", property(lambda self: ()))  # no index needed
    assert isolated_python(ORT) is None
    python = install_runtime(ORT)
    assert python == str(cache / "runtimes" / "onnxruntime-1.18.0" / "bin" / "python")
    assert isolated_python(ORT) == python
    assert sorted(p.name for p in (cache / "runtimes").iterdir()) == ["onnxruntime-1.18.0"]  # no staging left
    monkeypatch.setenv(ORT.env_var, "/opt/my/python")  # the variable wins over the cache
    assert isolated_python(ORT) == "/opt/my/python"


def test_a_failed_install_says_why_and_leaves_nothing(cache, monkeypatch):
    monkeypatch.setattr(IsolatedRuntime, "requirements", property(lambda self: ("/nonexistent/edgebert-pkg",)))
    with pytest.raises(RunnerError, match="could not install onnxruntime==1.18.0 into .*pip install") as err:
        install_runtime(ORT)
    assert "compat FOLDER --install-runtimes" in str(err.value)
    assert list((cache / "runtimes").iterdir()) == [] and isolated_python(ORT) is None


def test_install_missing_skips_what_is_set_up(cache, monkeypatch):
    made = []
    monkeypatch.setattr("edgebert.export.runtime_envs.install_runtime", lambda rt: made.append(rt.name) or "py")
    monkeypatch.setenv(ORT.env_var, "/opt/my/python")
    done = install_missing(on_step=lambda name: None)
    assert ORT.name not in done and sorted(made) == sorted(n for n in ISOLATED if n != ORT.name)


def test_not_set_up_names_the_install_flag(cache):
    assert "edgebert compat FOLDER --install-runtimes" in ORT.setup_hint
