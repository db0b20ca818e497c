"""compress's ranks: a rank as the user gave it (a count or a share of the full rank), resolved per model; the
SVD factorisation itself (`factorise`) is a model transform in model/svd.py, re-exported here for compress."""

from __future__ import annotations

from edgebert.errors import UsageError
from edgebert.model.svd import factorise

__all__ = ["factorise", "resolve_rank"]


def resolve_rank(value: float | int | str | None, full: int, flag: str) -> int:
    """A rank given as a count ("128") or a share of the full rank ("0.5"); 0/None = dense.

    A string with a decimal point is a share: "1.0" is the full rank, "1" is rank one."""
    if value is None:
        return 0
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise UsageError(
            f"{flag} takes a rank (e.g. 128) or a share of the full rank (e.g. 0.5), got {value!r}"
        ) from None
    share = "." in text or isinstance(value, float)
    if share:
        if not 0 < number <= 1:
            raise UsageError(f"{flag} {text}: a share of the full rank must be in (0, 1]; or give a whole rank")
        return max(1, round(number * full))
    if number != int(number) or number < 1:
        raise UsageError(f"{flag} {text}: a rank must be a whole number >= 1 (0 would leave nothing)")
    if number > full:
        raise UsageError(f"{flag} {int(number)} is above the full rank {full} (the hidden size); use 1..{full}")
    return int(number)
