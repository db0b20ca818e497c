"""edgebert: put dynamic BERT sub-networks on phones and boards."""

from pathlib import Path as _Path

# Source checkout: the design card keeps cli.py, converters/ and device_profiles/ at the top of
# the repository; the wheel nests them under this package (pyproject force-include). Extending
# __path__ makes `edgebert.cli` and `edgebert.converters` resolve the same way in both.
_root = _Path(__file__).resolve().parent.parent
if (
    (_root / "cli.py").is_file()
    and (_root / "converters" / "__init__.py").is_file()
    and (_root / "pyproject.toml").is_file()
):
    __path__.append(str(_root))  # noqa: F821

__version__ = "0.1.0"

from edgebert.errors import EdgebertError  # noqa: E402

# The model API is resolved on first use (PEP 562), so `import edgebert` (and `edgebert --help`,
# `edgebert profiles`) never imports torch.
_LAZY = {
    "Bert": "edgebert.model.bert",
    "load_model": "edgebert.model.bert",
    "BertConfig": "edgebert.model.config",
    "slice_model": "edgebert.model.slicing",
    "SubnetSpec": "edgebert.model.spec",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgebert' has no attribute {name!r}")


__all__ = ["Bert", "BertConfig", "EdgebertError", "SubnetSpec", "load_model", "slice_model", "__version__"]
