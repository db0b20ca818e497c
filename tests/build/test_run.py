"""`edgebert build` on a tiny model: matrix, cache, reproducible bytes, --check, exit codes, index.json."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DOUBLES, make_tiny_model, save_tiny_model_dir

from edgebert.cli import main

FORMATS = ("onnx", "tflite", "torchscript")
# Files that must come out byte-identical from the same inputs. manifest.json, report.md and pareto.png
# hold timestamps and timings; subnet/model.safetensors is compared by content (see safetensors_content).
REPRODUCIBLE = ("model.onnx", "model.tflite", "model.pt", "subnet/edgebert_config.json", "vocab.txt", "tokenizer.json")


def write_board(folder: Path, name: str, memory_mb: int = 100) -> Path:
    """A device profile the tiny model fits in a few ms: every format at fp32, one thread."""
    prov = {"source": "test coefficients", "date": "2026-01-01"}
    doc = {
        "name": name,
        "description": "a test board",
        "detect": True,
        "model_memory_mb": memory_mb,
        "default_threads": 1,
        "formats": list(FORMATS),
        "runtime": "a test runtime",  # words: no app runtime to hold the selection to
        "reach": "local",
        "default_budget_ms": 20,
        "latency_model": {
            "kind": "linear-v1",
            "source": "test coefficients",
            "entries": [
                {
                    "format": f,
                    "precision": "fp32",
                    "threads": 1,
                    "linear_gmacs_per_s": 10,
                    "attention_gmacs_per_s": 5,
                    "per_layer_ms": 0.1,
                    "fixed_ms": 1,
                    "expected_error": 0.1,
                    "provenance": prov,
                }
                for f in FORMATS
            ],
            "memory": [
                {
                    "format": f,
                    "weight_factor": 1.0,
                    "activation_factor": 2.0,
                    "overhead_mb": 1,
                    "expected_error": 0.1,
                    "provenance": prov,
                }
                for f in FORMATS
            ],
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def write_config(folder: Path, body: str, formats=FORMATS) -> Path:
    path = folder / "edgebert.toml"
    path.write_text(
        f'model = "tiny"\nformats = {json.dumps(list(formats))}\nseq_len = 16\nquantize = "fp32"\n'
        f'[output]\ndir = "dist"\n{body}'
    )
    return path


def make_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_tiny_model_dir(folder / "tiny", make_tiny_model())
    write_board(folder, "board-a")
    write_board(folder, "board-b")
    return folder


MATRIX = '[matrix."board-a.yaml"]\nlatency = "40ms"\n[matrix."board-b.yaml"]\nlatency = ["40ms"]\n'


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def safetensors_content(path: Path) -> tuple[dict, bytes]:
    """(header, tensor bytes): safetensors writes its __metadata__ keys in a Rust HashMap's random order."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def index_of(out: Path) -> dict:
    return json.loads((out / "index.json").read_text())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A two-device matrix, every format, built once for the tests that only read it."""
    root = make_project(tmp_path_factory.mktemp("build"))
    cfg = write_config(root, MATRIX)
    assert main(["build", str(cfg)]) == 0
    return cfg


def test_matrix_builds_every_entry_with_an_index(built):
    out = built.parent / "dist"
    index = index_of(out)
    assert [e["name"] for e in index["entries"]] == ["board-a-40ms", "board-b-40ms"]
    assert index["exit_code"] == 0 and index["counts"] == {"built": 2}
    for e in index["entries"]:
        assert e["status"] == "built" and e["budget"]["latency_ms"] == 40 and e["spec"]["width"] > 0
        assert e["chosen"]["predicted_latency_ms"] > 0
        assert [a["format"] for a in e["artifacts"]] == list(FORMATS)
        manifest = json.loads((out / e["folder"] / "manifest.json").read_text())
        assert manifest["build"]["cache_key"] == e["cache_key"]
        for a in e["artifacts"]:
            path = out / a["file"]
            assert a["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            assert a["size_bytes"] == path.stat().st_size and a["parity"]["passed"]
            assert a["latency"]["predicted"]["value"] > 0 and a["latency"]["measured"] == []  # kept apart
            assert a["byte_reproducible"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folders left


def test_artifacts_hold_no_path_of_the_build_machine(built):
    # ONNX node stack traces and TorchScript debug records name edgebert's source files: normalised away.
    import edgebert

    source = str(Path(edgebert.__file__).resolve().parent.parent).encode()
    for name in ("model.onnx", "model.tflite", "model.pt"):
        assert source not in (built.parent / "dist" / "board-a-40ms" / name).read_bytes(), name


def test_second_build_is_a_cache_hit_and_changes_nothing(built, capsys):
    out = built.parent / "dist"
    before = {f: snapshot(out / f) for f in ("board-a-40ms", "board-b-40ms")}
    assert main(["build", str(built), "--json"]) == 0
    index = json.loads(capsys.readouterr().out)
    assert index == index_of(out)
    assert [e["status"] for e in index["entries"]] == ["cached", "cached"]
    assert {f: snapshot(out / f) for f in before} == before


def test_no_cache_rebuild_is_byte_identical(built, tmp_path):
    # Same process as the first build: TorchScript's mangled class names differ, the normalised zip does not.
    out = built.parent / "dist"
    assert main(["build", str(built), "--no-cache", "--only", "board-a-40ms", "--out", str(tmp_path)]) == 0
    for rel in REPRODUCIBLE:
        a, b = out / "board-a-40ms" / rel, tmp_path / "board-a-40ms" / rel
        assert a.read_bytes() == b.read_bytes(), rel
    subnet = "board-a-40ms/subnet/model.safetensors"
    assert safetensors_content(out / subnet) == safetensors_content(tmp_path / subnet)
    manifest = json.loads((tmp_path / "board-a-40ms" / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        normalised = any(n.startswith("normalised by edgebert build") for n in a["notes"])
        assert normalised == (a["format"] in ("onnx", "torchscript")), a["notes"]
    assert index_of(tmp_path)["entries"][1]["status"] == "skipped"  # not asked for, not built


def test_check_passes_then_names_a_tampered_artifact(built, tmp_path, capsys):
    out = tmp_path / "dist"
    shutil.copytree(built.parent / "dist", out)
    assert main(["build", str(built), "--check", "--out", str(out)]) == 0
    target = out / "board-b-40ms" / "model.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["build", str(built), "--check", "--out", str(out)]) == 4
    text = capsys.readouterr().out
    assert "board-b-40ms: mismatch" in text and "board-b-40ms/model.onnx sha256 differs" in text
    assert "board-a-40ms: ok" in text


def test_check_catches_a_parity_regression(built, tmp_path, capsys, monkeypatch):
    from edgebert.registry import CONVERTERS

    conv = CONVERTERS.get("tflite")
    real = conv.load

    def broken(self, path, threads=1):
        run = real(self, path, threads)
        return lambda feeds: run(feeds) + 0.5

    monkeypatch.setattr(conv, "load", broken)
    assert main(["build", str(built), "--check", "--only", "board-a"]) == 4
    assert "board-a-40ms/model.tflite" in capsys.readouterr().out


def test_editing_a_budget_rebuilds_only_that_entry(tmp_path, monkeypatch, capsys):
    from edgebert.select import quality

    root = make_project(tmp_path)
    calls = []
    real = quality._quality
    monkeypatch.setattr(quality, "_quality", lambda *a: calls.append(1) or real(*a))
    cfg = write_config(root, MATRIX, formats=("torchscript",))
    assert main(["build", str(cfg)]) == 0
    assert len(calls) == 1  # the proxy quality table is measured once per build, not per entry
    out = root / "dist"
    a_before, b_before = snapshot(out / "board-a-40ms"), snapshot(out / "board-b-40ms")
    write_config(
        root, MATRIX.replace('latency = ["40ms"]', 'latency = ["40ms"]\nmemory = "90MB"'), formats=("torchscript",)
    )
    assert main(["build", str(cfg), "--check"]) == 4  # the CI gate sees the folder no longer matches the config
    assert "board-b-40ms is stale (inputs changed: budget)" in capsys.readouterr().out
    assert main(["build", str(cfg)]) == 0
    rows = {e["name"]: e for e in index_of(out)["entries"]}
    assert rows["board-a-40ms"]["status"] == "cached" and snapshot(out / "board-a-40ms") == a_before
    assert rows["board-b-40ms"]["status"] == "built" and rows["board-b-40ms"]["reason"] == "inputs changed: budget"
    assert rows["board-b-40ms"]["budget"]["memory_mb"] == 90 and snapshot(out / "board-b-40ms") != b_before


def test_impossible_budget_exits_3_and_keeps_the_other_entry(tmp_path, capsys):
    root = make_project(tmp_path)
    cfg = write_config(
        root,
        '[matrix."board-a.yaml"]\nlatency = "40ms"\n[[entry]]\ndevice = "board-b.yaml"\nlatency = "0.5ms"\n',
        formats=("torchscript",),
    )
    assert main(["build", str(cfg)]) == 3
    text = capsys.readouterr().out
    assert "over-budget: board-b-0.5ms: no candidate fits 0.5 ms" in text
    out = root / "dist"
    rows = {e["name"]: e for e in index_of(out)["entries"]}
    assert rows["board-a-40ms"]["status"] == "built" and (out / "board-a-40ms" / "model.pt").is_file()
    over = rows["board-b-0.5ms"]
    assert over["status"] == "over-budget" and "--budget of at least" in over["message"]
    assert not (out / "board-b-0.5ms").exists()
    # Unchanged inputs: the verdict is reused without loading the model, and the exit code stays 3.
    assert main(["build", str(cfg)]) == 3
    assert [e["status"] for e in index_of(out)["entries"]] == ["cached", "over-budget"]
    assert main(["build", str(cfg), "--check"]) == 3


def test_parity_failure_exits_4_and_keeps_the_other_entry(tmp_path, monkeypatch, capsys):
    from edgebert.registry import CONVERTERS

    conv = CONVERTERS.get("torchscript")
    real = conv.load

    def broken_for_board_b(self, path, threads=1):
        run = real(self, path, threads)
        return (lambda feeds: run(feeds) + 0.5) if "board-b" in str(path) else run

    monkeypatch.setattr(conv, "load", broken_for_board_b)
    root = make_project(tmp_path)
    cfg = write_config(root, MATRIX, formats=("torchscript",))
    assert main(["build", str(cfg)]) == 4
    out = root / "dist"
    rows = {e["name"]: e for e in index_of(out)["entries"]}
    assert rows["board-a-40ms"]["status"] == "built" and (out / "board-a-40ms" / "manifest.json").is_file()
    assert rows["board-b-40ms"]["status"] == "failed" and "model.pt" in rows["board-b-40ms"]["message"]
    assert rows["board-b-40ms"]["exit_code"] == 4 and not (out / "board-b-40ms").exists()


def test_torchscript_kept_raw_when_it_cannot_be_normalised(tmp_path, monkeypatch):
    from edgebert.registry import CONVERTERS

    def refuse(self, src, dst):
        raise ValueError("unexpected record")

    monkeypatch.setattr(CONVERTERS.get("torchscript"), "normalise", refuse)
    root = make_project(tmp_path)
    cfg = write_config(root, '[[entry]]\ndevice = "board-a.yaml"\n', formats=("torchscript",))
    assert main(["build", str(cfg)]) == 0
    art = index_of(root / "dist")["entries"][0]["artifacts"][0]
    assert art["byte_reproducible"] is False and art["parity"]["passed"]
    manifest = json.loads((root / "dist" / "board-a-20ms" / "manifest.json").read_text())
    assert any("not normalised (ValueError: unexpected record)" in n for n in manifest["artifacts"][0]["notes"])
    assert main(["build", str(cfg), "--check"]) == 0  # the raw zip is still what the manifest describes


@pytest.mark.parametrize(
    "body, text",
    [
        ('[[entry]]\nlatency = "40ms"\n', "[[entry]] #1 device: missing"),
        ('seq_len_typo = 3\n[matrix."board-a.yaml"]\n', "unknown key 'seq_len_typo'"),
        ('[matrix."board-a.yaml"]\nlatency = 40\n', "[matrix.board-a.yaml] latency: expected a latency budget"),
        ('[matrix.pixel99]\nlatency = "40ms"\n', "known devices: galaxy-s23"),
        ('[matrix."board-a.yaml"]\nlatency = "40 parsecs"\n', "latency budget '40 parsecs' is not understood"),
        ('[matrix."board-a.yaml"]\nlatency = "40ms"\nmemory = ["1MB", "2MB"]\n', "two entries would write folder"),
        ('[output]\nfolder = "{device}-{chip}"\n[matrix."board-a.yaml"]\n', "[output] folder: expected placeholders"),
    ],
)
def test_config_errors_exit_2_before_any_folder(tmp_path, capsys, body, text):
    root = make_project(tmp_path)
    if body.startswith("[output]"):
        (root / "edgebert.toml").write_text(f'model = "tiny"\n{body}')
    else:
        write_config(root, body)
    assert main(["build", str(root / "edgebert.toml")]) == 2
    err = capsys.readouterr().err
    assert "edgebert.toml" in err and text in err, err
    assert not (root / "dist").exists()


@pytest.mark.parametrize(
    "head, text",
    [
        (
            'formats = ["onnx", "coreml"]\n',
            "formats: expected formats from: executorch, onnx, tflite, torchscript, got 'coreml'",
        ),
        ('seq_len = "16"\n', "seq_len: expected an integer >= 8, got '16'"),
        ('model = "nowhere"\n', "model: expected an existing model folder"),
    ],
)
def test_top_level_config_errors(tmp_path, capsys, head, text):
    root = make_project(tmp_path)
    (root / "edgebert.toml").write_text(head + '[matrix."board-a.yaml"]\nlatency = "40ms"\n')
    assert main(["build", str(root / "edgebert.toml")]) == 2
    assert text in capsys.readouterr().err
    assert not (root / "dist").exists()


def test_unknown_only_lists_entries(tmp_path, capsys):
    root = make_project(tmp_path)
    cfg = write_config(root, MATRIX)
    assert main(["build", str(cfg), "--only", "pixel6"]) == 2
    assert "entries: board-a-40ms, board-b-40ms" in capsys.readouterr().err
    assert not (root / "dist").exists()


def test_subprocess_json_and_help(tmp_path):
    root = make_project(tmp_path)
    cfg = write_config(root, '[[entry]]\ndevice = "board-a.yaml"\nfolder = "a"\n', formats=("torchscript",))
    cmd = [sys.executable, "-m", "edgebert.cli", "build"]
    r = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "--check" in r.stdout and "exit codes" in r.stdout
    r = subprocess.run(cmd + [str(cfg), "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == index_of(root / "dist")
    assert "[1/1] a: built" in r.stderr and "Traceback" not in r.stderr


def test_entry_with_an_adb_target_measures_on_the_phone_and_records_skips(tmp_path, fake_phone):
    """Issue 12 item 2: a build entry's `target` measured every format on it, and adb runs no ONNX."""
    pytest.importorskip("litert_torch", reason="the tflite extra (litert-torch) is not installed")
    root = make_project(tmp_path / "project")
    entry = '[[entry]]\ndevice = "pixel6"\nlatency = "40ms"\ntarget = "adb://FAKE0123456789"\n'
    runner = f'[runner]\nadb = "{DOUBLES / "adb"}"\nbenchmark_binary = "{DOUBLES / "benchmark_model"}"\n'
    assert main(["build", str(write_config(root, entry + runner, formats=("tflite", "onnx")))]) == 0
    m = json.loads((root / "dist" / "pixel6-40ms" / "manifest.json").read_text())
    lat = {a["format"]: a["latency"] for a in m["artifacts"]}
    assert [x["where"] for x in lat["tflite"]["measured"]] == ["adb://FAKE0123456789"]
    assert lat["onnx"]["measured"] == [] and "--onnx-perf-test" in lat["onnx"]["skipped"][0]["why"]


def test_normalised_torchscript_zip_is_reproducible_and_loads(tmp_path):
    import zipfile

    import torch

    from edgebert.artifact import ArtifactConfig
    from edgebert.converters._common import example_inputs
    from edgebert.registry import CONVERTERS

    model, conv = make_tiny_model(), CONVERTERS.get("torchscript")()
    raw, norm = [], []
    for i in range(2):  # the second trace in this process gets other mangled class names
        (tmp_path / str(i)).mkdir()
        raw.append(tmp_path / str(i) / "model.pt")
        norm.append(tmp_path / str(i) / "normalised.pt")
        conv.convert(model, ArtifactConfig("torchscript", "fp32", 16), raw[-1])
        conv.normalise(raw[-1], norm[-1])
    assert raw[0].read_bytes() != raw[1].read_bytes()
    assert norm[0].read_bytes() == norm[1].read_bytes()
    inputs = example_inputs(model, batch=3, seq_len=12, seed=3)
    assert torch.equal(torch.jit.load(str(raw[0]))(*inputs), torch.jit.load(str(norm[1]))(*inputs))
    with zipfile.ZipFile(norm[0]) as z:
        assert z.testzip() is None and not [n for n in z.namelist() if "mangle" in n or n.endswith(".debug_pkl")]
        for info in z.infolist():  # torch aligns record data to 64 bytes; the rewrite keeps it
            assert (info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)) % 64 == 0


@pytest.mark.parametrize(
    "manifest", [{"schema": "someone-else/3"}, None], ids=["foreign-schema-manifest", "export-plus-user-file"]
)
def test_build_never_replaces_a_folder_edgebert_did_not_write(tmp_path, capsys, manifest):
    """Issue 11 item 2: a manifest.json of another schema, or user files beside an edgebert manifest (before:
    replaced, exit 0, "schema None"); now that entry fails with exit 2 and its folder is untouched."""
    root = make_project(tmp_path)
    cfg = write_config(root, MATRIX, formats=("torchscript",))
    mine = root / "dist" / "board-a-40ms"
    if manifest is None:
        assert main(["build", str(cfg), "--only", "board-a"]) == 0
    else:
        mine.mkdir(parents=True)
        (mine / "manifest.json").write_text(json.dumps(manifest))
    (mine / "notes.md").write_text("mine")
    before = snapshot(mine)
    assert main(["build", str(cfg), "--no-cache"]) == 2
    rows = {e["name"]: e for e in index_of(root / "dist")["entries"]}
    assert rows["board-a-40ms"]["status"] == "failed" and "never replaces" in rows["board-a-40ms"]["message"]
    assert rows["board-b-40ms"]["status"] == "built"
    assert snapshot(mine) == before


def test_interrupted_build_with_no_entry_finished_still_writes_the_index(tmp_path, monkeypatch, capsys):
    """Issue 11 item 6: Ctrl-C before the first entry finished left index.json unwritten (README: always)."""
    import edgebert.build.run as run

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    root = make_project(tmp_path)
    cfg = write_config(root, MATRIX, formats=("torchscript",))
    monkeypatch.setattr(run, "_build_one", interrupted)
    assert main(["build", str(cfg)]) == 130
    index = index_of(root / "dist")
    assert [(e["status"], e["this_run"]) for e in index["entries"]] == [("skipped", False)] * 2


@pytest.mark.parametrize("damage", ["truncate", "delete", "not-an-index"])
def test_check_reports_a_damaged_index(built, tmp_path, capsys, damage):
    """Issue 11 item 6: `build --check` said "ok" with a truncated index.json."""
    out = tmp_path / "dist"
    shutil.copytree(built.parent / "dist", out)
    index = out / "index.json"
    if damage == "truncate":
        index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])
    elif damage == "delete":
        index.unlink()
    else:
        index.write_text("[]")
    capsys.readouterr()
    assert main(["build", str(built), "--check", "--out", str(out)]) == 4
    text = capsys.readouterr().out
    assert "index.json: mismatch" in text and "run edgebert build" in text
    assert "board-a-40ms: ok" in text and "board-b-40ms: ok" in text
