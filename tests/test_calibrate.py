"""`edgebert calibrate`: measure on a target, refit, report held-out error, write an override."""

from __future__ import annotations

import json

import yaml

from edgebert.cli import main


def test_calibrate_local_writes_override_used_by_selector(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEBERT_CONFIG_DIR", str(tmp_path / "cfg"))
    from edgebert.select.profiles import load_profile

    shipped = load_profile("host")
    shipped_bytes = open(shipped.path, "rb").read()
    code = main(
        [
            "calibrate",
            "--device",
            "host",
            "--target",
            "local",
            "--model",
            str(tiny_model_dir),
            "--formats",
            "onnx",
            "--precisions",
            "fp32",
            "--seq-len",
            "16",
            "--runs",
            "5",
            "--json",
        ]
    )
    r = json.loads(capsys.readouterr().out)
    assert code == 0
    # 10 sub-networks, each measured at --seq-len and half of it (one ONNX file, dynamic shapes)
    assert r["n_subnetworks"] == 10 and r["seq_lens"] == [16, 8] and r["n_measurements"] == 20
    assert sorted((x["spec"], x["seq_len"]) for x in r["rows"]) == sorted(
        {(x["spec"], n) for x in r["rows"] for n in (16, 8)}
    )
    assert all(x["measured_p50_ms"] > 0 for x in r["rows"])
    # held out by sub-network: 3 of 10, at both lengths, never also in the fit
    held = {x["spec"] for x in r["rows"] if x["held_out"]}
    assert len(held) == 3 and sum(x["held_out"] for x in r["rows"]) == 6
    assert r["held_out_median_error"] is not None
    override = tmp_path / "cfg" / "profiles" / "host.yaml"
    assert r["override"] == str(override) and override.exists()
    doc = yaml.safe_load(override.read_text())
    assert doc["latency_model"]["source"].startswith("calibrated: fitted on 20 measurements on local")
    # one thread count measured: the efficiency cannot be fitted, so the profile's own is kept (not fit()'s 0.8)
    assert doc["latency_model"]["parallel_efficiency"] == shipped.latency_model.parallel_efficiency
    assert r["parallel_efficiency"] == shipped.latency_model.parallel_efficiency
    # the shipped profile is untouched; loading it now merges the override
    assert open(shipped.path, "rb").read() == shipped_bytes
    merged = load_profile("host")
    assert "calibrated" in merged.latency_model.source
    assert any(str(override) in p for p in merged.provenance)


def test_calibrate_out_file_is_a_full_profile(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "my-host.yaml"
    code = main(
        [
            "calibrate",
            "--device",
            "host",
            "--model",
            str(tiny_model_dir),
            "--formats",
            "torchscript",
            "--precisions",
            "fp32",
            "--seq-len",
            "16",
            "--runs",
            "3",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and f"--device {out}" in text
    from edgebert.select.profiles import load_profile

    prof = load_profile(str(out))
    assert prof.latency_model.covers("torchscript", "fp32")


def test_calibrate_bad_target(tiny_model_dir, capsys):
    code = main(["calibrate", "--device", "host", "--target", "ftp://x", "--model", str(tiny_model_dir)])
    assert code == 2 and "ssh://" in capsys.readouterr().err


def test_a_phone_is_not_calibrated_on_this_machine(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Without --target, or on a target that reports another model, a phone's override is never written."""
    monkeypatch.setenv("EDGEBERT_CONFIG_DIR", str(tmp_path / "cfg"))
    assert main(["calibrate", "--device", "pixel6", "--model", str(tiny_model_dir)]) == 2
    assert "--target adb://SERIAL" in capsys.readouterr().err
    args = [
        "calibrate",
        "--device",
        "pixel6",
        "--target",
        "local",
        "--model",
        str(tiny_model_dir),
        "--formats",
        "torchscript",
        "--precisions",
        "fp32",
        "--seq-len",
        "16",
        "--runs",
        "3",
        "--threads",
        "1",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "as pixel6's" in err and "--force" in err and "Traceback" not in err
    assert not (tmp_path / "cfg" / "profiles" / "pixel6.yaml").exists()
