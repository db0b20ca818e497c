"""The build cache key covers every file a build reads from the model folder, compressed variants included."""

from __future__ import annotations

from edgebert.build.cache import model_fingerprint


def _model(folder, text="w"):
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_text(text)
    (folder / "edgebert_config.json").write_text("{}")
    return folder


def test_a_linked_variant_is_part_of_the_key_and_a_work_folder_is_not(tmp_path):
    model = _model(tmp_path / "rt-dyna")
    variant = _model(tmp_path / "rt-lada", "lada")
    before = model_fingerprint(str(model))
    assert model_fingerprint(str(model)) == before

    (model / "rt-lada").symlink_to(variant, target_is_directory=True)  # as README's compress section says
    linked = model_fingerprint(str(model))
    assert linked != before
    (variant / "model.safetensors").write_text("lada, trained longer")
    assert model_fingerprint(str(model)) != linked  # a change inside the linked variant rebuilds

    (model / "loop").symlink_to(model, target_is_directory=True)  # a link back up is walked once, not forever
    with_loop = model_fingerprint(str(model))
    work = model / ".r128.train"  # `edgebert compress --out MODEL/r128` while it runs
    work.mkdir()
    (work / "checkpoint.pt").write_text("step 10")
    assert model_fingerprint(str(model)) == with_loop
