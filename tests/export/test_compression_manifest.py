"""An export of a compressed model says what was compressed and how, and the manifest stays schema-valid."""

import json
from dataclasses import replace
from importlib.resources import files

import jsonschema
from conftest import make_tiny_model, save_tiny_model_dir

from edgebert.compress.factorise import factorise
from edgebert.compress.prune import prune_magnitude
from edgebert.export.pipeline import ExportConfig, export
from edgebert.export.report import write_report
from edgebert.model.compression import COMPRESSION_FILE, prunable, report_lines
from edgebert.model.spec import SubnetSpec


def test_manifest_records_ranks_sparsity_and_the_compress_record(tmp_path):
    model = factorise(make_tiny_model(task="classification", num_labels=2, labels=("a", "b")), 16, 12)
    prune_magnitude(prunable(model), 0.3)
    model.config = replace(model.config, extra={"rewired": {"loss": "test"}})  # as compress leaves it
    src = save_tiny_model_dir(tmp_path / "m", model)
    record = {"plan": {"prune": 0.3, "prune_kind": "unstructured"}, "quality": None, "distillation": None}
    (src / COMPRESSION_FILE).write_text(json.dumps(record))
    manifest = export(
        ExportConfig(
            str(tmp_path / "out"), model=str(src), spec=SubnetSpec(0.5, 1.0), formats=("torchscript",), seq_len=32
        ),
        progress=False,
    )
    schema = json.loads(files("edgebert").joinpath("data/manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    section = manifest["compression"]
    assert section["source_record"]["plan"]["prune"] == 0.3
    held = section["subnet"]
    assert (held["embedding_rank"], held["weight_rank"]) == (16, 12) and "embeddings.word" in held["factorised"]
    assert 0.25 < held["sparsity"]["share"] < 0.35 and held["sparsity"]["bytes_saved_stored_dense"] == 0
    text = "\n".join(report_lines(section))
    assert "Embedding rank 16" in text and "0 bytes saved" in text


def test_an_uncompressed_export_has_no_compression_section(tiny_model_dir, tmp_path):
    manifest = export(
        ExportConfig(str(tmp_path / "o"), model=str(tiny_model_dir), formats=("torchscript",), seq_len=32),
        progress=False,
    )
    assert manifest["compression"] is None
    assert report_lines(None) == [] and callable(write_report)
