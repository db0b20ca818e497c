"""Errors a user can cause. The CLI prints them without a traceback and exits with `exit_code`."""

from __future__ import annotations

__all__ = [
    "EdgebertError",
    "UsageError",
    "ModelError",
    "SpecError",
    "MissingExtraError",
    "BudgetError",
    "ParityError",
    "OutputError",
    "ProfileError",
    "DataError",
    "RunnerError",
    "EXIT_CODES",
]

# Documented in `edgebert --help`; keep the two in step (cli.py builds its epilog from this).
EXIT_CODES = {
    0: "success",
    1: "unexpected internal error (a bug: please report it with the traceback)",
    2: "usage or input error (bad flag, model, profile, data or config)",
    3: "no candidate fits the latency/memory budget",
    4: "an artifact failed its parity check against PyTorch",
    5: "device or runner error (target unreachable, auth, timeout, benchmark crash)",
    130: "interrupted (Ctrl-C); nothing half-written is left behind",
}


class EdgebertError(Exception):
    """Base class: the message says what was wrong and what to do about it."""

    exit_code = 2


class UsageError(EdgebertError):
    exit_code = 2


class ModelError(EdgebertError):
    exit_code = 2


class SpecError(EdgebertError):
    exit_code = 2


class ProfileError(EdgebertError):
    exit_code = 2


class DataError(EdgebertError):
    exit_code = 2


class OutputError(EdgebertError):
    exit_code = 2


class MissingExtraError(EdgebertError):
    exit_code = 2

    def __init__(self, what: str, extra: str, module: str):
        super().__init__(
            f"{what} needs the optional extra '{extra}' (python module '{module}' is not installed). "
            f"Install it with:  pip install 'edgebert[{extra}]'"
        )
        self.extra = extra


class BudgetError(EdgebertError):
    exit_code = 3


class ParityError(EdgebertError):
    exit_code = 4


class RunnerError(EdgebertError):
    exit_code = 5
