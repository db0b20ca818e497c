"""edgebert.toml parsing (no builds): matrix expansion, defaults, paths, --only, and the cache key's inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edgebert.build.cache import cache_inputs, cache_key
from edgebert.build.config import BuildConfigError, load_build_config, select_entries
from edgebert.errors import UsageError
from edgebert.runners import parse_target
from edgebert.select.profiles import load_profile


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgebert.toml"
    path.write_text(text)
    return path


def test_matrix_expands_latency_by_memory_with_profile_defaults(tmp_path):
    cfg = load_build_config(
        config(
            tmp_path,
            """
[output]
folder = "{device}-{budget}-{memory}"
[matrix.pixel6]
latency = ["40ms", "0.02s"]
memory = ["150MB", "1GB"]
[matrix.raspberry-pi-5]
""",
        )
    )
    assert [e.folder for e in cfg.entries] == [
        "pixel6-40ms-150MB",
        "pixel6-40ms-1000MB",
        "pixel6-20ms-150MB",
        "pixel6-20ms-1000MB",
        "raspberry-pi-5-60ms-2048MB",
    ]
    pi5 = cfg.entries[-1]
    assert pi5.latency is None and pi5.latency_ms == load_profile("raspberry-pi-5").default_budget_ms
    assert cfg.formats is None and cfg.quantize is None and cfg.seq_len == 128 and cfg.measure is False
    assert cfg.out == tmp_path / "dist" and cfg.model is None


def test_paths_are_relative_to_the_config_file(tmp_path, tiny_model_dir):
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "mine.yaml").write_text(
        Path(load_profile("raspberry-pi-4").path).read_text().replace("name: raspberry-pi-4", "name: my-pi")
    )
    sub = tmp_path / "conf"
    sub.mkdir()
    rel_model = Path("..") / tiny_model_dir.relative_to(tmp_path)
    cfg = load_build_config(
        config(
            sub,
            f'model = "{rel_model.as_posix()}"\n[output]\ndir = "../out"\n'
            '[[entry]]\ndevice = "../boards/mine.yaml"\nlatency = "150ms"\n',
        )
    )
    assert Path(cfg.model) == tiny_model_dir.resolve()
    assert cfg.out.resolve() == (tmp_path / "out").resolve()
    (entry,) = cfg.entries
    assert entry.folder == "my-pi-150ms" and Path(entry.device) == (tmp_path / "boards" / "mine.yaml").resolve()
    assert load_build_config(sub / "edgebert.toml", out="elsewhere").out == Path("elsewhere")  # --out


def test_only_selects_by_folder_or_device(tmp_path):
    cfg = load_build_config(
        config(tmp_path, '[matrix.pixel6]\nlatency = ["40ms", "20ms"]\n[matrix.galaxy-s23]\nlatency = "40ms"\n')
    )
    assert [e.folder for e in select_entries(cfg, ["pixel6"])] == ["pixel6-40ms", "pixel6-20ms"]
    assert [e.folder for e in select_entries(cfg, ["galaxy-s23-40ms,pixel6-20ms"])] == [
        "pixel6-20ms",
        "galaxy-s23-40ms",
    ]
    with pytest.raises(UsageError, match="no such entry or device"):
        select_entries(cfg, ["pixel8"])


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "no entries"),
        ("this is not toml =", "is not valid TOML"),
        ('measure = "yes"\n[matrix.pixel6]\n', "measure: expected true or false"),
        ("runs = 0\n[matrix.pixel6]\n", "runs: expected a positive integer"),
        ('quantize = "int4"\n[matrix.pixel6]\n', "quantize: expected one of fp32, fp16, int8"),
        ('formats = ["onnx", "onnx"]\n[matrix.pixel6]\n', "formats: expected each format once"),
        ('[matrix.pixel6]\nlatency = "40ms"\ntarget = "pi@board"\n', "did you mean ssh://pi@board"),
        ('[matrix.pixel6]\nbudget = "40ms"\n', "[matrix.pixel6]: unknown key 'budget'; allowed: latency, memory"),
        ('[[entry]]\ndevice = "pixel6"\nfolder = "a/b"\n', "folder: expected a plain folder name"),
        ('[[entry]]\ndevice = "nowhere.yaml"\n', "nowhere.yaml does not exist"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path, text, where):
    path = config(tmp_path, text)
    with pytest.raises(BuildConfigError) as err:
        load_build_config(path)
    assert str(path) in str(err.value) and where in str(err.value)


def test_runner_table_sets_how_targets_are_reached(tmp_path):
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "benchmark_model").write_text("")
    text = '[matrix.pixel6]\ntarget = "adb://R58M"\n[runner]\nbenchmark_binary = "tools/benchmark_model"\n'
    opts = load_build_config(config(tmp_path, text + 'adb = "adb-33"\ntaskset = "c0"\n')).runner_options
    assert opts.benchmark_binary == str((tmp_path / "tools" / "benchmark_model").resolve())  # a file here
    assert (opts.adb_path, opts.taskset_mask) == ("adb-33", "c0")  # not a file here: as written
    with pytest.raises(BuildConfigError, match=r"\[runner\]: unknown key 'adb_path'"):
        load_build_config(config(tmp_path, text + 'adb_path = "adb"\n'))
    with pytest.raises(BuildConfigError, match=r"\[runner\]: taskset mask"):
        load_build_config(config(tmp_path, text + 'taskset = "f0; reboot"\n'))


def test_missing_config_file(tmp_path):
    with pytest.raises(BuildConfigError, match="does not exist; see examples/edgebert.toml"):
        load_build_config(tmp_path / "nope.toml")


def test_examples_config_is_valid():
    cfg = load_build_config(Path(__file__).resolve().parents[2] / "examples" / "edgebert.toml")
    assert {e.profile_name for e in cfg.entries} == {"pixel6", "galaxy-s23", "raspberry-pi-4", "raspberry-pi-5"}


def test_cache_key_follows_every_input(tmp_path):
    cfg = load_build_config(config(tmp_path, '[matrix.pixel6]\nlatency = "40ms"\n'))
    entry = cfg.entries[0]
    base = cache_inputs(cfg, entry, "m" * 64, {"torch": "2.13.0"})
    assert cache_key(base) == cache_key(cache_inputs(cfg, entry, "m" * 64, {"torch": "2.13.0"}))
    variants = [
        cache_inputs(cfg, entry, "n" * 64, {"torch": "2.13.0"}),  # model files
        cache_inputs(cfg, entry, "m" * 64, {"torch": "2.14.0"}),  # toolchain
        cache_inputs(
            cfg,
            dataclasses.replace(entry, budget=dataclasses.replace(entry.budget, memory_mb=1.0)),
            "m" * 64,
            {"torch": "2.13.0"},
        ),
        cache_inputs(cfg, dataclasses.replace(entry, profile_fingerprint="x"), "m" * 64, {"torch": "2.13.0"}),
        cache_inputs(cfg, dataclasses.replace(entry, target=parse_target("adb://")), "m" * 64, {"torch": "2.13.0"}),
        cache_inputs(dataclasses.replace(cfg, formats=("onnx",)), entry, "m" * 64, {"torch": "2.13.0"}),
        cache_inputs(dataclasses.replace(cfg, seq_len=64), entry, "m" * 64, {"torch": "2.13.0"}),
        cache_inputs(dataclasses.replace(cfg, quantize="int8"), entry, "m" * 64, {"torch": "2.13.0"}),
    ]
    keys = {cache_key(v) for v in variants}
    assert len(keys) == len(variants) and cache_key(base) not in keys
    # Where the repository is checked out does not matter, nor how a budget is written.
    same = load_build_config(config(tmp_path, '[matrix.pixel6]\nlatency = "0.04s"\n')).entries[0]
    assert cache_key(cache_inputs(cfg, same, "m" * 64, {"torch": "2.13.0"})) == cache_key(base)
