"""edgebert: put dynamic BERT sub-networks on phones and boards."""

from pathlib import Path as _Path

# Source checkout: the design card keeps cli.py, converters/ and device_profiles/ at the top of
# the repository; the wheel nests them under this package (pyproject force-include). Extending
# __path__ makes `edgebert.cli` and `edgebert.converters` resolve the same way in both.
_root = _Path(__file__).resolve().parent.parent
if (_root / "cli.py").is_file() and (_root / "converters" / "__init__.py").is_file() and (_root / "pyproject.toml").is_file():
    __path__.append(str(_root))  # noqa: F821

__version__ = "0.1.0"

from .errors import EdgebertError  # noqa: E402
from .model import Bert, BertConfig, load_model  # noqa: E402
from .slicing import slice_model  # noqa: E402
from .spec import SubnetSpec  # noqa: E402

__all__ = ["Bert", "BertConfig", "EdgebertError", "SubnetSpec", "load_model", "slice_model", "__version__"]
