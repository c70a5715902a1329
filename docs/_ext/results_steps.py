"""``<!-- steps: PAGE -->``: how long each step of a docs page took, one column per machine.

``benchmarks/bench_newcomer.py`` writes ``benchmarks/results/newcomer-<device>.json`` with a
``steps`` list of ``{"page", "step", "seconds"}``. The marker becomes one table of ``PAGE``'s
commands and Python blocks (saved files left out), with a column per result file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["render_steps"]

GLOB = "benchmarks/results/newcomer-*.json"


def _column(data: dict[str, Any]) -> str:
    machine = data.get("machine") or {}
    date = str((data.get("environment") or {}).get("date", "date unknown"))[:10]
    if machine.get("gpu_name"):
        return f"{machine['gpu_name']} (s), {date}"
    cpus = machine.get("cpu_count")
    return f"{machine.get('cpu_model', 'CPU')}, {cpus} cores (s), {date}"


def render_steps(page: str, *, root: Path) -> str:
    """The Markdown table of ``page``'s steps over every newcomer result file."""
    files = sorted(root.glob(GLOB))
    columns, times, order = [], [], []
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = {
            r["step"]: r["seconds"]
            for r in data.get("steps", [])
            if r.get("page") == page and not str(r["step"]).startswith("save ")
        }
        columns.append(_column(data))
        times.append(rows)
        order += [s for s in rows if s not in order]
    if not order:
        return f"*No step of `{page}` has been timed yet (`python -m benchmarks.bench_newcomer`).*"
    lines = ["| step | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for step in order:
        name = step if step.startswith("Python block") else f"`{step.split('  #')[0].strip()}`"
        cells = [f"{t[step]:.1f}" if step in t else "–" for t in times]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sources = ", ".join(f"`{p.relative_to(root).as_posix()}`" for p in files)
    return "\n".join([*lines, "", f"<small>Source: {sources}</small>"])
