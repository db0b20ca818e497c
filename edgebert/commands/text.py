"""Small text helpers the commands' tables share."""

from __future__ import annotations

__all__ = ["fmt"]


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)
