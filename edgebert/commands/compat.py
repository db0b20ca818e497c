"""`edgebert compat FOLDER`: the artifact x runtime table (loads / agrees / error)."""

from __future__ import annotations

from edgebert.commands.text import fmt
from edgebert.export.compat import compat

__all__ = ["run_compat", "format_compat"]


def run_compat(*, folder, no_write: bool = False) -> dict:
    return compat(folder, write=not no_write)


def format_compat(r: dict) -> str:
    lines = [f"{'file':<16}{'precision':<10}{'runtime':<24}{'max|diff|':>10}{'min cosine':>11}{'argmax':>8}  verdict"]
    for row in r["rows"]:
        verdict = row["status"]
        if row.get("why"):  # the fact a reader needs, in full
            verdict += f" ({row['why']})"
        elif row.get("error"):
            verdict += f" ({row['error'].splitlines()[0][:100]})"
        lines.append(
            f"{row['file']:<16}{row['precision']:<10}{row['runtime']:<24}{fmt(row.get('max_abs_diff'), '.2g'):>10}"
            f"{fmt(row.get('min_cosine'), '.6f'):>11}{fmt(row.get('argmax_agreement'), '.2f'):>8}  {verdict}"
        )
    for m in r.get("ort_mobile", ()):
        lines.append(f"ORT Mobile, {m['file']} ({m['precision']}): {m['verdict']}")
    for problem in r["sha256_problems"]:
        lines.append(f"changed since export: {problem} (the manifest was not updated)")
    if r["written"]:
        lines.append(f"written to {r['folder']}/manifest.json (compatibility)")
    return "\n".join(lines)
