"""Device profiles: shipped ones load and validate; errors name file, field and expectation; budgets parse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

from edgebert.errors import ProfileError, UsageError
from edgebert.select.budget import parse_latency, parse_memory
from edgebert.select.costs import costs
from edgebert.select.profiles import (
    list_profiles,
    load_profile,
    profile_names,
    profiles_dir,
)

REQUIRED = {"pixel6", "pixel8", "galaxy-s23", "raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "host"}
COEFFICIENTS = ("linear_gmacs_per_s", "attention_gmacs_per_s", "per_layer_ms", "fixed_ms")


def test_every_shipped_profile_loads_and_validates():
    names = profile_names()
    assert REQUIRED <= set(names)
    for p in list_profiles():
        assert p.sha256 and len(p.sha256) == 64 and Path(p.path).is_file()
        assert p.cpu.cores >= 1 and p.default_threads >= 1 and p.model_memory_mb > 0 and p.default_budget_ms > 0
        assert p.formats and p.reach in ("adb", "ssh", "local")
        for fmt in p.formats:
            assert p.latency_model.covers(fmt, "fp32"), (p.name, fmt)
            assert any(m.format == fmt for m in p.latency_model.memory), (p.name, fmt)
        for e in p.latency_model.entries:
            prov = e.provenance
            assert prov.get("source") and prov.get("date"), (p.name, e.key)
            assert e.expected_error > 0, (p.name, e.key)  # no prediction claims to be exact
            for coefficient in COEFFICIENTS:  # shipped profiles say where every coefficient came from
                assert prov.get(coefficient), (p.name, e.key, coefficient)
        pred = p.latency_model.predict_latency(costs(tiny_config(), 32), p.formats[0], "fp32", p.default_threads)
        assert pred.value > 0 and pred.source.startswith("predicted:")


def test_phones_have_a_big_core_mask_and_boards_do_not_need_one():
    for name in ("pixel6", "pixel8", "galaxy-s23"):
        p = load_profile(name)
        assert p.reach == "adb" and p.big_core_mask and p.formats[0] == "tflite"
    assert load_profile("raspberry-pi-4").reach == "ssh"


def test_host_is_detected_at_load_time():
    p = load_profile("host")
    assert p.reach == "local" and p.cpu.cores >= 1 and p.ram_mb > 0
    assert any("detected" in note for note in p.provenance)


def test_estimated_profiles_say_they_are_estimates():
    for name in REQUIRED - {"host"}:
        p = load_profile(name)
        assert "estimate" in p.latency_model.source.lower(), name
        assert all(e.expected_error >= 0.2 for e in p.latency_model.entries), name


def test_profile_by_path_works_the_same(tmp_path):
    src = profiles_dir() / "pixel6.yaml"
    dst = tmp_path / "my-board.yaml"
    dst.write_bytes(src.read_bytes())
    by_path, by_name = load_profile(str(dst)), load_profile("pixel6")
    assert by_path.latency_model.entries == by_name.latency_model.entries
    assert by_path.sha256 == by_name.sha256 and by_path.path == str(dst.resolve())


def test_unknown_device_lists_known_names():
    with pytest.raises(ProfileError) as info:
        load_profile("pixel99")
    msg = str(info.value)
    assert "pixel99" in msg and "pixel6" in msg and "raspberry-pi-4" in msg and info.value.exit_code == 2
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile("./nowhere/board.yaml")


def _broken(tmp_path, edit) -> Path:
    doc = yaml.safe_load((profiles_dir() / "raspberry-pi-4.yaml").read_text())
    edit(doc)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    "edit, field, expected",
    [
        (lambda d: d.pop("ram_mb"), "ram_mb", "missing"),
        (lambda d: d.update(default_threads="four"), "default_threads", "a number > 0"),
        (lambda d: d.update(reach="bluetooth"), "reach", "one of adb, ssh, local"),
        (lambda d: d.update(formats=["onnx", "coreml"]), "formats[1]", "one of"),
        (lambda d: d["cpu"]["clusters"][0].update(max_ghz=-1), "cpu.clusters[0].max_ghz", "a number > 0"),
        (
            lambda d: d["latency_model"]["entries"][0].update(precision="int4"),
            "latency_model.entries[0].precision",
            "one of fp32, fp16, int8",
        ),
        (
            lambda d: d["latency_model"]["entries"][1].pop("linear_gmacs_per_s"),
            "latency_model.entries[1].linear_gmacs_per_s",
            "missing",
        ),
        (
            lambda d: d["latency_model"]["entries"][0]["provenance"].pop("date"),
            "latency_model.entries[0].provenance.date",
            "missing",
        ),
        (lambda d: d.update(big_core_mask="big"), "big_core_mask", "hex CPU mask"),
    ],
)
def test_malformed_profile_names_file_field_and_expectation(tmp_path, edit, field, expected):
    path = _broken(tmp_path, edit)
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    msg = str(info.value)
    assert str(path) in msg and f"'{field}'" in msg and expected in msg


def test_not_yaml_or_not_a_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(str(bad))
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ProfileError, match="must be a YAML mapping"):
        load_profile(str(bad))


def test_calibration_override_replaces_the_shipped_entries(tmp_path, monkeypatch):
    shipped = load_profile("pixel6")
    e = next(e for e in shipped.latency_model.entries if e.format == "tflite" and e.precision == "int8")
    override = {
        "name": "pixel6",
        "latency_model": {
            "source": "calibrated on my Pixel 6, 2026-11-30",
            "entries": [
                {
                    "format": "tflite",
                    "precision": "int8",
                    "threads": e.threads,
                    "linear_gmacs_per_s": 123.0,
                    "attention_gmacs_per_s": 20.0,
                    "per_layer_ms": 0.1,
                    "fixed_ms": 0.5,
                    "expected_error": 0.05,
                    "provenance": {"source": "edgebert calibrate --target adb://X", "date": "2026-11-30"},
                }
            ],
        },
    }
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "pixel6.yaml").write_text(yaml.safe_dump(override))
    monkeypatch.setenv("EDGEBERT_CONFIG_DIR", str(tmp_path))
    p = load_profile("pixel6")
    got = next(x for x in p.latency_model.entries if x.key == e.key)
    assert got.linear_gmacs_per_s == 123.0 and got.provenance["source"].startswith("edgebert calibrate")
    assert len(p.latency_model.entries) == len(shipped.latency_model.entries)  # the others stay
    assert any("overridden by" in note and "pixel6.yaml" in note for note in p.provenance)
    assert "calibrated" in p.latency_model.source
    assert p.sha256 == shipped.sha256  # the shipped file's identity is unchanged
    other = load_profile("pixel8")
    assert not any("overridden" in n for n in other.provenance)


def test_a_malformed_override_names_the_override_file(tmp_path, monkeypatch):
    (tmp_path / "profiles").mkdir()
    bad = tmp_path / "profiles" / "pixel6.yaml"
    bad.write_text(yaml.safe_dump({"latency_model": {"source": "x", "entries": [{"format": "tflite"}]}}))
    monkeypatch.setenv("EDGEBERT_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ProfileError, match=str(bad)):
        load_profile("pixel6")


@pytest.mark.parametrize(
    "text, ms",
    [
        ("40ms", 40.0),
        ("40 ms", 40.0),
        ("0.04s", 40.0),
        ("1.5 s", 1500.0),
        ("250us", 0.25),
        ("40MS", 40.0),
        (" 7.5ms ", 7.5),
    ],
)
def test_latency_budgets_parse(text, ms):
    assert parse_latency(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["fast", "-5ms", "0ms", "40", "", "40 parsecs", "ms", "inf ms", "nan ms", "4 0ms"])
def test_bad_latency_budgets_are_usage_errors(text):
    with pytest.raises(UsageError) as info:
        parse_latency(text)
    assert repr(text) in str(info.value) and "40ms" in str(info.value)


@pytest.mark.parametrize(
    "text, mb",
    [
        ("150MB", 150.0),
        ("1.5GB", 1500.0),
        ("512KiB", 0.524288),
        ("150 mb", 150.0),
        ("2GiB", 2147.483648),
        ("64MiB", 67.108864),
    ],
)
def test_memory_limits_parse(text, mb):
    assert parse_memory(text) == pytest.approx(mb)


@pytest.mark.parametrize("text", ["lots", "-1MB", "0GB", "150", "1.5 GBs"])
def test_bad_memory_limits_are_usage_errors(text):
    with pytest.raises(UsageError) as info:
        parse_memory(text)
    assert repr(text) in str(info.value) and "150MB" in str(info.value)
