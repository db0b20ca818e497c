"""`edgebert export --device ... --budget ...` end to end on a tiny model."""

from __future__ import annotations

import json

import pytest
from conftest import DOUBLES

from edgebert.cli import main
from edgebert.export.manifest import validate


def _run(capsys, *args):
    code = main(["export", *map(str, args)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_host_export_json_manifest_validates(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "host"
    code, stdout, err = _run(
        capsys,
        "--model",
        tiny_model_dir,
        "--device",
        "host",
        "--budget",
        "50ms",
        "--seq-len",
        32,
        "--out",
        out,
        "--json",
        "--runs",
        5,
    )
    assert code == 0, err
    summary = json.loads(stdout)
    m = json.loads((out / "manifest.json").read_text())
    validate(m)
    assert m["device"]["name"] == "host" and len(m["device"]["sha256"]) == 64
    assert m["budget"]["latency_ms"] == 50.0
    sel = m["selection"]
    assert sel["chosen"]["fits"] and sel["chosen"]["predicted_latency_p90_bound_ms"] <= 50.0
    # a tiny model fits any sane budget: the best-quality candidate (full width and depth) wins
    assert (sel["chosen"]["width"], sel["chosen"]["depth"]) == (1.0, 1.0)
    assert "proxy" in sel["quality_source"]
    art = m["artifacts"][0]
    assert art["latency"]["predicted"]["kind"] == "predicted" and "predicted" in art["latency"]["predicted"]["source"]
    assert art["latency"]["measured"][0]["kind"] == "measured" and art["latency"]["measured"][0]["where"] == "local"
    assert (out / "report.md").exists() and (out / "pareto.png").stat().st_size > 1000
    assert summary["artifacts"][0]["latency_ms"]["measured_p50"] > 0


def test_budget_picks_smaller_subnet_and_impossible_budget_exits_3(tiny_model_dir, tmp_path, capsys):
    # A hand-made profile: a slow device on which only small sub-networks fit a mid budget.
    import yaml

    from edgebert.select.profiles import load_profile

    host = yaml.safe_load(open(load_profile("host").path))
    for e in host["latency_model"]["entries"]:
        # hand-made coefficients: no machine recorded, so no machine's calibration replaces them
        for key in ("cpu_model", "cores", "machine"):
            e["provenance"].pop(key, None)
        e.update(
            linear_gmacs_per_s=0.001,
            attention_gmacs_per_s=0.001,
            per_layer_ms=0.0,
            fixed_ms=1.0,
            expected_error=0.0,
            error_p90=0.0,
        )
    host["name"] = "slowboard"
    prof = tmp_path / "slowboard.yaml"
    prof.write_text(yaml.safe_dump(host))
    code, stdout, err = _run(
        capsys,
        "--model",
        tiny_model_dir,
        "--device",
        prof,
        "--budget",
        "1ms",
        "--seq-len",
        32,
        "--out",
        tmp_path / "x",
        "--no-measure",
    )
    assert code == 3, err
    assert "fastest" in err and "--budget" in err and not (tmp_path / "x").exists()
    # A budget between the smallest and the full sub-network's predictions.
    from edgebert.model.bert import load_model
    from edgebert.model.spec import SubnetSpec
    from edgebert.select.costs import costs

    slow, cfg = load_profile(str(prof)), load_model(tiny_model_dir).config
    lo, hi = (
        slow.latency_model.predict_latency(costs(cfg, 32, SubnetSpec(w, d)), "onnx", "fp32", 2).value
        for w, d in ((0.25, 0.5), (1.0, 1.0))
    )
    budget = (lo + hi) / 2
    code, stdout, err = _run(
        capsys,
        "--model",
        tiny_model_dir,
        "--device",
        prof,
        "--budget",
        f"{budget:.3f}ms",
        "--seq-len",
        32,
        "--formats",
        "onnx",
        "--threads",
        2,
        "--out",
        tmp_path / "y",
        "--no-measure",
        "--json",
    )
    assert code == 0, err
    m = json.loads((tmp_path / "y" / "manifest.json").read_text())
    chosen = m["selection"]["chosen"]
    assert chosen["predicted_latency_ms"] <= budget
    assert (chosen["width"], chosen["depth"]) != (1.0, 1.0)
    assert m["subnet"]["parameters"] < m["subnet"]["full_parameters"]
    assert m["artifacts"][0]["latency"]["measured"] == []


@pytest.mark.parametrize("budget", ["fast", "-5ms", "0ms", "40", "40 parsecs"])
def test_bad_budget_is_usage_error(tiny_model_dir, tmp_path, capsys, budget):
    code, _, err = _run(
        capsys, "--model", tiny_model_dir, "--device", "host", f"--budget={budget}", "--out", tmp_path / "o"
    )
    assert code == 2 and budget in err and not (tmp_path / "o").exists()


def test_unknown_device_lists_known(tiny_model_dir, tmp_path, capsys):
    code, _, err = _run(capsys, "--model", tiny_model_dir, "--device", "nokia3310", "--out", tmp_path / "o")
    assert code == 2 and "nokia3310" in err and "pixel6" in err and "raspberry-pi-4" in err


def test_width_and_device_together_is_an_error(tiny_model_dir, tmp_path, capsys):
    code, _, err = _run(
        capsys, "--model", tiny_model_dir, "--device", "host", "--width", "0.5", "--out", tmp_path / "o"
    )
    assert code == 2 and "not both" in err


def test_profiles_command(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in ("pixel6", "pixel8", "galaxy-s23", "raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "host"):
        assert name in out
    assert main(["profiles", "show", "raspberry-pi-4", "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["latency_model"]["entries"] and prof["latency_model"]["source"]


def test_proxy_quality_is_cached_per_weights(tiny_model_dir, tmp_path, monkeypatch):
    """The proxy is measured once per model: a later export reads it back (and says so); other weights,
    a damaged cache file or an unwritable cache directory mean it is measured again, never an error."""
    from edgebert.model.loaded import load
    from edgebert.select import proxy
    from edgebert.select import quality as select_export

    calls = []
    real = proxy.proxy_quality
    monkeypatch.setattr(proxy, "proxy_quality", lambda *a, **k: calls.append(1) or real(*a, **k))
    first, first_src = select_export._quality(load(str(tiny_model_dir)), False)
    second, second_src = select_export._quality(load(str(tiny_model_dir)), False)
    assert len(calls) == 1 and second == first
    assert "read from the cache" in second_src and "read from the cache" not in first_src
    assert "proxy" in second_src and len(first) == 12 and first["w1-d1"][0] == pytest.approx(1.0, abs=1e-6)

    cached = list(proxy.proxy_cache_dir().glob("*.json"))
    assert len(cached) == 1
    cached[0].write_text("{not json")
    assert select_export._quality(load(str(tiny_model_dir)), False)[0] == first and len(calls) == 2

    from conftest import make_tiny_model, save_tiny_model_dir

    other = save_tiny_model_dir(tmp_path / "other", make_tiny_model(seed=7))
    select_export._quality(load(str(other)), False)
    assert len(calls) == 3 and len(list(proxy.proxy_cache_dir().glob("*.json"))) == 2

    shipped = tmp_path / "shipped"  # what edgebert/data/quality-proxy holds for the default model
    shipped.mkdir()
    for f in proxy.proxy_cache_dir().glob("*.json"):
        f.rename(shipped / f.name)
    monkeypatch.setattr(proxy, "_SHIPPED_PROXY", shipped)
    table, src = select_export._quality(load(str(tiny_model_dir)), False)
    assert table == first and len(calls) == 3 and src.endswith("for these exact weights, shipped with edgebert")

    monkeypatch.setattr(proxy, "_SHIPPED_PROXY", tmp_path / "none")
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    monkeypatch.setenv("EDGEBERT_CACHE_DIR", str(blocked))
    assert select_export._quality(load(str(tiny_model_dir)), False)[0] == first and len(calls) == 4


@pytest.mark.slow
def test_shipped_proxy_matches_the_packaged_minilm(minilm_dir):
    """The table shipped for the default model is found for it: a change to rewiring, the proxy or the
    calibration texts must bump PROXY_VERSION and re-seed (python -m edgebert.select.proxy --seed-proxy)."""
    from edgebert.model.loaded import load
    from edgebert.select import proxy

    loaded = load(str(minilm_dir))
    key = proxy.proxy_key(loaded, proxy.proxy_texts())
    table, when, where = proxy._read_proxy(key)
    assert where == "shipped with edgebert" and table["w1-d1"][0] == pytest.approx(1.0, abs=1e-5)
    assert 0.6 < table["w0.5-d1"][0] < table["w0.75-d1"][0] < 1.0


def _phone_export(tiny_model_dir, out, *extra):
    return [
        "--model", tiny_model_dir, "--device", "pixel6", "--budget", "40ms", "--formats", "tflite,onnx",
        "--seq-len", 16, "--out", out, "--no-measure", "--runs", 5, "--target", "adb://FAKE0123456789",
        "--adb", DOUBLES / "adb", "--benchmark-binary", DOUBLES / "benchmark_model", *extra,
    ]  # fmt: skip


def test_export_measures_on_the_phone_and_skips_what_adb_cannot_run(tiny_model_dir, tmp_path, capsys, fake_phone):
    pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
    out = tmp_path / "pixel6"
    code, stdout, err = _run(capsys, *_phone_export(tiny_model_dir, out))
    assert code == 0, err
    m = json.loads((out / "manifest.json").read_text())
    validate(m)
    tfl, onnx = (next(a for a in m["artifacts"] if a["format"] == f) for f in ("tflite", "onnx"))
    (meas,) = tfl["latency"]["measured"]
    assert meas["where"] == "adb://FAKE0123456789" and meas["device"] == "Pixel 6" and meas["p50_ms"] > 0
    assert onnx["latency"]["measured"] == [] and "failed" not in onnx["latency"]
    (skip,) = onnx["latency"]["skipped"]
    assert skip["where"] == "adb://FAKE0123456789" and "--onnx-perf-test" in skip["why"]
    assert "skipped on adb://FAKE0123456789" in stdout
    runs = [c[3] for c in map(json.loads, (tmp_path / "adb.log").read_text().splitlines()) if "--graph=" in c[-1]]
    assert runs and runs[0].startswith("taskset f0 ")  # pixel6's big cores, as toybox takes them


def test_failed_phone_measurement_publishes_the_verified_artifacts_and_exits_5(
    tiny_model_dir, tmp_path, capsys, fake_phone, monkeypatch
):
    pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
    monkeypatch.setenv("EDGEBERT_FAKE_ADB_STATE", "offline")
    out = tmp_path / "pixel6"
    code, stdout, err = _run(capsys, *_phone_export(tiny_model_dir, out, "--json"))
    assert code == 5 and "Traceback" not in err
    assert "published in" in err and "offline" in err and "edgebert bench" in err
    m = json.loads((out / "manifest.json").read_text())
    validate(m)
    assert {a["format"] for a in m["artifacts"]} == {"tflite", "onnx"} and all(
        a["parity"]["passed"] for a in m["artifacts"]
    )
    (fail,) = next(a for a in m["artifacts"] if a["format"] == "tflite")["latency"]["failed"]
    assert fail["where"] == "adb://FAKE0123456789" and fail["error"] == "DeviceOffline" and "offline" in fail["why"]
    summary = json.loads(stdout)  # the summary still comes first, with what failed
    assert [f["file"] for f in summary["measurement_failures"]] == ["model.tflite"]


def _gated_entry(precision: str, latency_ms: float, memory_mb: float) -> dict:
    def pred(v, unit):
        return {
            "kind": "predicted",
            "value": v,
            "unit": unit,
            "source": "t",
            "expected_error": 0.1,
            "error_p90": 0.2,
        }

    return {
        "precision": precision,
        "requested_precision": "int8",
        "notes": [],
        "latency": {"predicted": pred(latency_ms, "ms"), "measured": []},
        "memory": {"predicted": pred(memory_mb, "MB"), "measured": []},
    }


def test_a_gate_fallback_that_breaks_the_memory_limit_is_recorded_not_claimed():
    from edgebert.deploy import check_fallback_budget
    from edgebert.select.budget import Budget

    budget = Budget(latency_ms=40.0, memory_mb=90.0)
    same = _gated_entry("int8", 10.0, 50.0)
    check_fallback_budget(same, budget)
    assert "budget_check" not in same and same["notes"] == []  # the selector judged this one already

    fits = _gated_entry("fp16", 20.0, 70.0)  # p90 bounds 24 ms, 84 MB
    check_fallback_budget(fits, budget)
    assert fits["budget_check"] == {"precision": "fp16", "selected_precision": "int8", "fits": True, "why": []}

    over = _gated_entry("fp16", 20.0, 80.0)  # p90 bound 96 MB > 90 MB
    check_fallback_budget(over, budget)
    assert over["budget_check"]["fits"] is False
    assert "96 MB > limit 90 MB" in over["budget_check"]["why"][0]
    assert "does not fit" in over["notes"][0] and "--max-quality-drop" in over["notes"][0]


def test_a_bucketed_tflite_is_timed_per_signature_on_the_phone(tiny_model_dir, tmp_path, capsys, fake_phone):
    """benchmark_model refuses a multi-signature file without --signature_to_run_for: each bucket is one run."""
    pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
    out = tmp_path / "pixel6"
    argv = [str(a) for a in _phone_export(tiny_model_dir, out)]
    argv[argv.index("tflite,onnx")] = "tflite"
    argv[argv.index("--seq-len") + 1] = "16,32"
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    (tfl,) = json.loads((out / "manifest.json").read_text())["artifacts"]
    signatures = [b["signature"] for b in tfl["buckets"]]
    assert len(signatures) == 2
    for b in tfl["buckets"]:
        (meas,) = b["latency"]["measured"]
        assert meas["where"] == "adb://FAKE0123456789" and meas["p50_ms"] > 0
    calls = [c[-1] for c in map(json.loads, (tmp_path / "adb.log").read_text().splitlines()) if "--graph=" in c[-1]]
    assert [next(s for s in signatures if f"--signature_to_run_for={s}" in c) for c in calls] == signatures

    # `edgebert bench` times the file's own (largest) length, by its signature.
    (tmp_path / "adb.log").unlink()
    bench = ["bench", str(out), "--target", "adb://FAKE0123456789", "--adb", str(DOUBLES / "adb")]
    code = main([*bench, "--benchmark-binary", str(DOUBLES / "benchmark_model"), "--runs", "5"])
    assert code == 0, capsys.readouterr().err
    (call,) = [c[-1] for c in map(json.loads, (tmp_path / "adb.log").read_text().splitlines()) if "--graph=" in c[-1]]
    own = next(b["signature"] for b in tfl["buckets"] if b["seq_len"] == tfl["seq_len"])
    assert f"--signature_to_run_for={own}" in call
