"""Calibration texts: the sentences rewiring (and other data-driven stages) look at.

edgebert ships a small, varied English set so that `rewire` works with no data at hand; a
user's own file (one text per line) is better when the target domain is narrow.
"""

from __future__ import annotations

from pathlib import Path

from edgebert.errors import DataError

__all__ = ["DEFAULT_CALIBRATION_FILE", "calibration_texts"]

DEFAULT_CALIBRATION_FILE = Path(__file__).resolve().parent.parent / "data" / "calibration.txt"

_FIX = "pass a UTF-8 text file with one text per line (or leave it out to use edgebert's built-in set)"


def calibration_texts(path: str | Path | None = None) -> list[str]:
    """Texts from `path` (default: the shipped set), one per line, blank lines skipped."""
    path = DEFAULT_CALIBRATION_FILE if path is None else Path(path)
    if not path.exists():
        raise DataError(f"calibration file {path} does not exist; {_FIX}")
    if not path.is_file():
        raise DataError(f"calibration file {path} is not a file; {_FIX}")
    try:
        # utf-8-sig: files saved by Windows editors often start with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"calibration file {path} is not UTF-8 text (byte {exc.start} is invalid); re-save it as UTF-8, or {_FIX}"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read calibration file {path}: {exc.strerror}; {_FIX}") from None
    texts = [line.strip() for line in text.splitlines()]
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"calibration file {path} holds no text (only blank lines); {_FIX}")
    return texts
