"""`edgebert profiles [show NAME]`."""

from __future__ import annotations

import yaml

from edgebert.select.profiles import list_profiles, load_profile

__all__ = ["profiles", "format_profiles_table", "format_profile"]


def profiles(name: str | None = None):
    """One profile (by name or path), or every known one."""
    return load_profile(name) if name else list_profiles()


def format_profiles_table(profiles) -> str:
    lines = [
        f"{'name':<18}{'cores':>6}{'RAM MB':>8}{'model MB':>10}{'threads':>8}{'budget':>9}  {'reach':<6}{'formats':<24}latency model"
    ]
    for p in profiles:
        lm = p.latency_model
        lines.append(
            f"{p.name:<18}{p.cpu.cores:>6}{p.ram_mb:>8}{p.model_memory_mb:>10g}{p.default_threads:>8}"
            f"{p.default_budget_ms:>7g}ms  {p.reach:<6}{','.join(p.formats):<24}{lm.source[:60]}"
        )
    return "\n".join(lines)


def format_profile(p) -> str:
    return yaml.safe_dump(p.to_dict(), sort_keys=False, width=110)
