"""Issue 11, "nothing lost, nothing false": each probe from the issue, its exit code, and what must survive.

One row per bad input or dangerous output folder; each test says what the user had before and checks it is
still there, byte for byte, after edgebert refused (or that edgebert's own result is what it says).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgebert.cli import main
from edgebert.export.manifest import SCHEMA


def export_args(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "export",
        "--model",
        str(model_dir),
        "--width",
        "0.5",
        "--depth",
        "0.5",
        "--formats",
        "torchscript",
        "--seq-len",
        "16",
        "--no-measure",
        "--out",
        str(out),
        *extra,
    ]


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def made_export(tmp_path_factory) -> Path:
    """One finished edgebert export, copied by the tests that need an edgebert folder to start from."""
    from conftest import make_tiny_model, save_tiny_model_dir

    root = tmp_path_factory.mktemp("made")
    model_dir = save_tiny_model_dir(root / "tiny", make_tiny_model())
    assert main(export_args(model_dir, root / "exp")) == 0
    return root / "exp"


def _user_folder(folder: Path, made: Path) -> None:
    folder.mkdir()
    (folder / "important.txt").write_text("precious")


def _foreign_manifest(folder: Path, made: Path) -> None:
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"schema": "someone-else/3", "files": []}))
    (folder / "notes.md").write_text("mine")


def _export_plus_user_file(folder: Path, made: Path) -> None:
    shutil.copytree(made, folder)
    (folder / "results.csv").write_text("mine")


def _export_plus_user_subfolder(folder: Path, made: Path) -> None:
    shutil.copytree(made, folder)
    (folder / "data").mkdir()
    (folder / "data" / "train.jsonl").write_text("{}")


def _unreadable_manifest(folder: Path, made: Path) -> None:
    folder.mkdir()
    (folder / "manifest.json").write_text('{"schema": "' + SCHEMA)  # truncated


# Issue items 1 and 2: before this change each of these exited 0 and deleted the folder.
FOREIGN = [
    pytest.param(_user_folder, "no manifest.json", id="user-folder"),
    pytest.param(_foreign_manifest, "schema 'someone-else/3'", id="other-schema-manifest"),
    pytest.param(_export_plus_user_file, "does not list results.csv", id="export-plus-user-file"),
    pytest.param(_export_plus_user_subfolder, "does not list data, data/train.jsonl", id="export-plus-user-subfolder"),
    pytest.param(_unreadable_manifest, "unreadable", id="truncated-manifest"),
]


@pytest.mark.parametrize("make, why", FOREIGN)
def test_export_force_never_replaces_a_foreign_folder(make, why, made_export, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "userdir"
    make(out, made_export)
    before = files_of(out)
    assert main(export_args(tiny_model_dir, out, "--force")) == 2
    err = capsys.readouterr().err
    assert f"{out} is not a folder edgebert wrote" in err and why in err and "--force or not" in err
    assert files_of(out) == before and not list(tmp_path.glob(".userdir.*"))


def test_export_force_replaces_an_edgebert_export(made_export, tiny_model_dir, tmp_path):
    out = tmp_path / "exp"
    shutil.copytree(made_export, out)
    assert main(export_args(tiny_model_dir, out)) == 2  # still needs --force
    assert main(export_args(tiny_model_dir, out, "--force")) == 0
    assert json.loads((out / "manifest.json").read_text())["schema"] == SCHEMA


def test_export_into_an_empty_folder(tiny_model_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(export_args(tiny_model_dir, tmp_path / "empty")) == 0
    assert (tmp_path / "empty" / "model.pt").is_file()


@pytest.mark.parametrize("out", [".", "..", "{cwd}"], ids=["dot", "parent", "absolute-cwd"])
@pytest.mark.parametrize("force", [[], ["--force"]], ids=["", "force"])
def test_out_is_the_working_directory(out, force, tiny_model_dir, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "important.txt").write_text("precious")
    monkeypatch.chdir(work)
    # Before: exit 0 and the folder deleted (absolute path), or EBUSY with an empty ..old-* left (`.`).
    assert main(export_args(tiny_model_dir, Path(out.format(cwd=work)), *force)) == 2
    assert "is the current folder" in capsys.readouterr().err
    assert (work / "important.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny", "work"] and len(list(work.iterdir())) == 1


def test_out_below_a_file_says_is_a_file(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(export_args(tiny_model_dir, tmp_path / "file" / "sub")) == 2  # was: "permission denied"
    assert "file is a file, not a folder" in capsys.readouterr().err


def test_interrupt_inside_the_exporter_exits_130(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Issue 11 item 5: before, exit 1 with torch's TorchExportError traceback."""
    from edgebert.registry import CONVERTERS

    def wrapping_convert(self, model, config, path):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("TorchExportError") from exc

    monkeypatch.setattr(CONVERTERS.get("torchscript"), "convert", wrapping_convert)
    assert main(export_args(tiny_model_dir, tmp_path / "o")) == 130
    assert "Traceback" not in capsys.readouterr().err and sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]


@pytest.mark.parametrize(
    "flag, value, text",
    [
        ("--budget", "1e400ms", "is too large (at most 1 hour)"),  # before: OverflowError traceback, exit 1
        ("--memory", "1e400MB", "is too large (at most 10 TB)"),  # before: OverflowError traceback, exit 1
        ("--budget", "1e308ms", "is too large"),  # before: accepted, overflowed the plot
        ("--budget", "1e-400ms", "must be greater than zero"),
        ("--budget", "4" * 10_000 + "ms", "'444444444444444444444444444444444444...'"),  # not echoed in full
    ],
)
def test_out_of_range_budgets_are_usage_errors(flag, value, text, tiny_model_dir, tmp_path, capsys):
    args = [
        "export",
        "--model",
        str(tiny_model_dir),
        "--device",
        "pixel6",
        f"{flag}={value}",
        "--formats",
        "torchscript",
        "--seq-len",
        "16",
        "--no-measure",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err and len(err) < 1000
    assert not (tmp_path / "o").exists()


# ---- item 7: a model folder whose config is wrong is refused before torch allocates anything -------------


def _edit_config(folder: Path, name: str, edit) -> None:
    path = folder / name
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _hf(edit):
    return lambda folder: _edit_config(folder, "config.json", edit)


def _own(edit):
    return lambda folder: _edit_config(folder, "edgebert_config.json", edit)


# Before each row: a traceback and exit 1 (ValueError, TypeError, torch's "cannot allocate 1.9 TB").
BAD_MODELS = [
    pytest.param("own", _own(lambda c: [c]), "must be a JSON object of fields, got a list", id="own-list"),
    pytest.param("hf", _hf(lambda c: [c]), "must be a JSON object of fields, got a list", id="hf-list"),
    pytest.param("own", _own(lambda c: {**c, "hidden_size": "48"}), "hidden_size must be a whole number", id="own-str"),
    pytest.param("hf", _hf(lambda c: {**c, "hidden_size": "48"}), "hidden_size must be a whole number", id="hf-str"),
    pytest.param(
        "hf", _hf(lambda c: {**c, "vocab_size": 1e10}), "vocab_size must be a whole number, got 1", id="float"
    ),
    pytest.param(
        "hf",
        _hf(lambda c: {**c, "vocab_size": 10**10}),
        "has shape (146, 48), config says (10000000000, 48)",
        id="huge",
    ),
    pytest.param("own", _own(lambda c: {**c, "heads": 3}), "heads must be a list of whole numbers", id="heads-int"),
    pytest.param("hf", _hf(lambda c: {k: v for k, v in c.items() if k != "intermediate_size"}), "lacks", id="missing"),
]


@pytest.mark.parametrize("kind, spoil, text", BAD_MODELS)
def test_bad_model_configs_are_input_errors(kind, spoil, text, tmp_path, capsys):
    from conftest import make_tiny_model, save_tiny_hf_dir, save_tiny_model_dir

    folder = (
        save_tiny_hf_dir(tmp_path / "m") if kind == "hf" else save_tiny_model_dir(tmp_path / "m", make_tiny_model())
    )
    spoil(folder)
    assert main(export_args(folder, tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err and str(folder) in err
    assert not (tmp_path / "o").exists()


def test_pickled_bin_with_objects_says_how_to_convert(tmp_path, capsys):
    """Item 9: before, torch's half-sentence about weights_only=False and 'looks corrupt'."""
    import argparse

    import torch
    from conftest import save_tiny_hf_dir
    from safetensors.torch import load_file

    folder = save_tiny_hf_dir(tmp_path / "m")
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1)}, folder / "pytorch_model.bin")
    assert main(export_args(folder, tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "holds Python objects besides tensors" in err and "safetensors.torch.save_file" in err
    assert "corrupt" not in err


# ---- item 8: a YAML alias bomb as a profile ------------------------------------------------------------------


def test_yaml_alias_bomb_profile_is_refused_without_echo(tiny_model_dir, tmp_path, capsys):
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    lines.append("name: *a8")  # 9**9 = 387 million strings once expanded
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    args = ["export", "--model", str(tiny_model_dir), "--device", str(tmp_path / "bomb.yaml"), "--budget", "40ms"]
    assert main([*args, "--formats", "torchscript", "--no-measure", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "expands to more than 100,000 values through YAML aliases" in err and len(err) < 600


def test_huge_profile_values_are_cut_short_in_errors(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("name: ['" + "x" * 50_000 + "']\n")
    args = ["export", "--model", str(tiny_model_dir), "--device", str(tmp_path / "p.yaml"), "--budget", "40ms"]
    assert main([*args, "--formats", "torchscript", "--no-measure", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "field 'name' must be the device name" in err and len(err) < 400


# ---- items 7 and 9: outputs that cannot be written -----------------------------------------------------------


def test_out_where_no_folder_can_be_made(tiny_model_dir, tmp_path, capsys):
    """`--out /proc/x`: before, FileNotFoundError from mkdtemp with a traceback (root passes the access check)."""
    assert main(export_args(tiny_model_dir, Path("/proc/edgebert-x"))) == 2
    err = capsys.readouterr().err
    assert "cannot create --out /proc/edgebert-x" in err and "choose a folder you can write" in err


@pytest.mark.parametrize(
    "failure",
    [
        OSError(28, "No space left on device"),
        RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space..." })'),
    ],
    ids=["oserror", "safetensors-style"],
)
def test_full_disk_says_where_and_how_much(failure, made_export, tiny_model_dir, tmp_path, monkeypatch, capsys):
    """A full disk in the middle of an export: a clear message, the previous export untouched, no staging left."""
    from edgebert.registry import CONVERTERS

    out = tmp_path / "exp"
    shutil.copytree(made_export, out)
    before = files_of(out)

    def full(self, model, config, path):
        Path(path).write_bytes(b"\0" * 3000)  # part of the file, as a real full disk leaves it
        raise failure

    monkeypatch.setattr(CONVERTERS.get("torchscript"), "convert", full)
    assert main(export_args(tiny_model_dir, out, "--force")) == 2
    err = capsys.readouterr().err
    assert f"the disk holding {tmp_path.resolve()} is full" in err and "free now" in err and "Traceback" not in err
    assert "more than the " in err and " KB it had written there" in err
    assert files_of(out) == before and not list(tmp_path.glob(".exp.*"))


def test_memory_in_terabytes_is_understood():
    from edgebert.select.budget import parse_memory

    assert parse_memory("1TB") == 1e6 and parse_memory("2TiB") == pytest.approx(2 * 1024**4 / 1e6)


def test_full_disk_for_real_on_a_small_tmpfs(made_export, tiny_model_dir, tmp_path, capsys):
    """The same on a real 300 KB filesystem (needs root and mount rights; the monkeypatched tests above always run)."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount rights in this container)")
    try:
        args = export_args(tiny_model_dir, disk / "o")
        args[args.index("torchscript")] = "onnx"  # ~230 KB of ONNX + the vocab do not fit in 300 KB
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"the disk holding {disk} is full" in err and "Traceback" not in err
        assert sorted(p.name for p in disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize(
    "toml, where",
    [
        ('[[entry]]\ndevice = "host"\nfolder = "a/b"\n', "[[entry]] #1 folder:"),  # was "[[entry]] #1folder"
        ('[[entry]]\ndevice = "host"\nlatency = 40\n', "[[entry]] #1 latency:"),
        ("[matrix.host]\nlatency = 40\n", "[matrix.host] latency:"),
        ("[matrix.host]\nrunner = 3\n", "[matrix.host.runner]:"),
    ],
)
def test_build_config_errors_name_the_key_path(toml, where, tmp_path, capsys):
    (tmp_path / "b.toml").write_text(toml)
    assert main(["build", str(tmp_path / "b.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"b.toml: {where}" in err and not (tmp_path / "out").exists()


def test_full_disk_outside_an_output_folder(monkeypatch, capsys):
    """A cache or checkpoint write that hits a full disk: the CLI's last line of defence, not a traceback."""
    import edgebert.cli

    def full(*_args):
        raise OSError(28, "No space left on device", "/tmp/edgebert-cache/x.json")

    monkeypatch.setattr(edgebert.cli, "profiles", full)
    assert main(["profiles", "list"]) == 2
    err = capsys.readouterr().err
    assert "the disk holding /tmp is full" in err and "Traceback" not in err
