"""MkDocs hook: render committed benchmark result files into pages at build time.

A page writes ``<!-- results: GLOB -->`` on a line of its own, with ``GLOB`` relative to the
repository root (e.g. ``benchmarks/results/bench_data*.json``). The hook replaces the line by
one section per matching JSON file: the machine the numbers were measured on, the setup, and the
results as tables. Numbers are never typed into a page by hand, so a page shows exactly what the
result files hold; when no file matches, the page says that nothing has been measured yet.

``<!-- steps: PAGE -->`` is replaced by the timed steps of a docs page (``results_steps``);
``<!-- results-summary: GLOB -->`` is replaced by the table and chart of our speed against the
reference implementations over the matching files (``results_summary``), and
``<!-- crossval: FILE COLUMN ... -->`` by a cross-validation's headline table.

The rendering is generic (any JSON object): environment keys describe the machine, a mapping
whose values are mappings of scalars becomes a table with one row per key, other scalars are
listed as ``name | value`` rows, and long lists (raw repetitions) are left out. Keys are shown
by readable names (``results_labels``), and each file's section is titled by its benchmark,
with its path underneath as the source.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# MkDocs puts this folder on sys.path only while it loads a hook; tests load it by path.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from results_labels import (  # noqa: E402
    LABELS,
    MACHINE_KEYS,
    environment,
    file_title,
    label,
    machine_line,
)
from results_steps import render_steps  # noqa: E402
from results_summary import render_summary  # noqa: E402

__all__ = [
    "on_page_markdown",
    "render_crossval",
    "render_file",
    "render_marker",
    "render_summary",
]

MARKER = re.compile(r"^<!--\s*results:\s*(?P<glob>\S+)\s*-->[ \t]*$", re.MULTILINE)
SUMMARY = re.compile(r"^<!--\s*results-summary:\s*(?P<glob>\S+)\s*-->[ \t]*$", re.MULTILINE)
STEPS = re.compile(r"^<!--\s*steps:\s*(?P<page>\S+)\s*-->[ \t]*$", re.MULTILINE)
#: ``<!-- crossval: FILE COLUMN ... -->``: the headline table of a cross-validation summary.
CROSSVAL = re.compile(
    r"^<!--\s*crossval:\s*(?P<path>\S+)(?P<columns>(?:\s+\w+)*)\s*-->[ \t]*$", re.MULTILINE
)
_MAX_LIST = 6  # longest list of ints shown (shapes); longer lists are left out
#: Top-level keys shown in the heading or the machine line rather than as results.
_SHOWN_ABOVE = {*MACHINE_KEYS, "environment", "machine", "benchmark"}


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):  # shapes read 1 × 2 × 3, other lists 0.5, 0.7
        sep = " × " if all(isinstance(v, int) for v in value) else ", "
        return sep.join(_fmt(v) for v in value) if value else "–"
    return str(value).replace("|", "\\|")


def _is_scalar(value: Any) -> bool:
    """Shown as one cell: numbers, strings, and short lists such as shapes. Lists of floats
    longer than 3 are raw repetitions (the file's summaries next to them are shown instead)."""
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
            return False
        is_ints = all(isinstance(v, (int, str)) for v in value)
        return len(value) <= (_MAX_LIST if is_ints else 3)
    return isinstance(value, (int, float, str, bool)) or value is None


def _row_name(key: Any) -> str:
    """A table row's name: its label when it has one, else the identifier as code (variant
    names such as ``ours_amp_bf16_compile`` are what the pages' prose refers to)."""
    return LABELS.get(str(key), f"`{key}`")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _row_table(mapping: Mapping[str, Any]) -> list[str] | None:
    """A table with one row per key when every value is a mapping holding scalars."""
    if not mapping or not all(isinstance(v, Mapping) for v in mapping.values()):
        return None
    columns: list[str] = []
    for value in mapping.values():
        for key, cell in value.items():
            if _is_scalar(cell) and key not in columns:
                columns.append(key)
    if not columns:
        return None
    rows = [[_row_name(k)] + [_fmt(v.get(c)) for c in columns] for k, v in mapping.items()]
    return _table([""] + [label(c) for c in columns], rows)


def _item_title(item: Mapping[str, Any], index: int) -> tuple[str, Mapping[str, Any]]:
    """A list item's title (its first scalar, e.g. "patch size 64 × 128 × 192") and the rest."""
    for key, value in item.items():
        if _is_scalar(value):
            return f"{label(key)} {_fmt(value)}", {k: v for k, v in item.items() if k != key}
    return f"#{index + 1}", item


def _render_value(value: Any, title: str) -> list[str]:
    """Markdown of one JSON value under a bold title."""
    out: list[str] = []
    if isinstance(value, Mapping):
        table = _row_table(value)
        return [f"**{title}**", "", *table] if table is not None else _render_mapping(value, title)
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for i, item in enumerate(value):
            name, rest = _item_title(item, i)
            out += _render_value(rest, f"{title} / {name}")
        return out
    if _is_scalar(value):
        return [f"**{title}**: {_fmt(value)}", ""]
    return out  # long lists of raw repetitions are left out


def _render_mapping(value: Mapping[str, Any], title: str, *, top: bool = False) -> list[str]:
    """Its scalars as one table, then each other value; siblings that are flat mappings with
    the same keys (``dna`` and ``ours``, each ``{median_s, min_s, n}``) share one table."""
    skip = _SHOWN_ABOVE if top else set()
    scalars = [[label(k), _fmt(v)] for k, v in value.items() if k not in skip and _is_scalar(v)]
    out = [f"**{title}**", "", *_table(["", "value"], scalars)] if scalars else []
    prefix = "" if top else f"{title} / "
    shown = {k for k, v in value.items() if k in skip or _is_scalar(v)}
    for key, sub in value.items():
        if key in shown:
            continue
        group = [k for k in _siblings(value, key) if k not in skip]
        if len(group) > 1:
            names = ", ".join(label(k) for k in group[:-1]) + f" and {label(group[-1])}"
            out += _render_value({k: value[k] for k in group}, prefix + names)
            shown.update(group)
        else:
            out += _render_value(sub, prefix + label(key))
    return out


def render_file(path: Path, *, root: Path) -> str:
    """Markdown for one result file: a readable title, its source, the machine, then every
    other value."""
    rel = path.relative_to(root).as_posix()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{rel} is not valid JSON ({exc}); fix or remove the file") from None
    lines = [f"### {file_title(path)}", "", f"<small>Source: `{rel}`</small>", ""]
    if not isinstance(data, Mapping):
        return "\n".join([*lines, "The file does not hold a JSON object; nothing to show.", ""])
    description = data.get("benchmark")
    if isinstance(description, str) and " " in description:
        lines += [f"*{_fmt(description)}*", ""]
    env = environment(data)
    lines += [f"Measured on: {machine_line(env) or 'machine not recorded in the file'}.", ""]
    lines += _render_mapping(data, "Overview", top=True)
    return "\n".join(lines) + "\n"


def _siblings(data: Mapping[str, Any], key: str) -> list[str]:
    """Keys of ``data`` whose values are flat mappings with the same keys as ``data[key]``'s."""

    def keys(value: Any) -> tuple[str, ...] | None:
        flat = isinstance(value, Mapping) and value and all(map(_is_scalar, value.values()))
        return tuple(value) if flat else None

    own = keys(data[key])
    return [key] if own is None else [k for k, v in data.items() if keys(v) == own]


def render_marker(glob: str, *, root: Path) -> str:
    """Markdown for every file matching ``glob`` under ``root``, or a "not yet measured" note."""
    paths = sorted(p for p in root.glob(glob) if p.is_file())
    if not paths:
        return f"*Not yet measured: no result file matches `{glob}` in this version.*\n"
    return "\n".join(render_file(p, root=root) for p in paths)


def render_crossval(path: Path, columns: list[str], *, root: Path) -> str:
    """The headline table of a ``crossval.json``: mean and median of ``columns``, raw and
    post-processed, then the chosen post-processing and the machine."""
    rel = path.relative_to(root).as_posix()
    if not path.is_file():
        return f"*Not yet measured: `{rel}` is not in this version.*\n"
    data = json.loads(path.read_text(encoding="utf-8"))
    header = [""]
    for column in columns:
        name = column.removeprefix("dice_").replace("_", " ")
        header += [f"{name} Dice, mean", "median"]
    rows = []
    for key, row_name in (("raw", "plain argmax"), ("postprocessed", "chosen post-processing")):
        scores = data.get(key) or {}
        if scores:
            cells = []
            for column in columns:
                entry = scores.get(column) or {}
                cells += [_fmt3(entry.get("mean")), _fmt3(entry.get("median"))]
            rows.append([row_name, *cells])
    lines = _table(header, rows)
    chosen = (data.get("postprocessing") or {}).get("chosen_on_every_case")
    if chosen:
        lines += [
            f"Post-processing chosen on all {data.get('cases')} out-of-fold cases: label weights "
            f"{_fmt(chosen['label_weights'])}, largest component "
            f"{'yes' if chosen['largest_component'] else 'no'}; each fold's scores above use the "
            "choice made on the other folds' cases.",
            "",
        ]
    machine = machine_line(environment(data))
    lines += [
        f"{data.get('folds')} folds, budget {data.get('budget') or 'none'} per fold; "
        f"measured on {machine or 'an unrecorded machine'} (`{rel}`).",
        "",
    ]
    return "\n".join(lines)


def _fmt3(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: expand every ``results``, ``results-summary`` and ``crossval`` marker."""
    if "<!--" not in markdown:
        return markdown
    root = Path(config["config_file_path"]).resolve().parent
    markdown = CROSSVAL.sub(
        lambda m: render_crossval(root / m.group("path"), m.group("columns").split(), root=root),
        markdown,
    )
    markdown = SUMMARY.sub(lambda m: render_summary(m.group("glob"), root=root), markdown)
    markdown = STEPS.sub(lambda m: render_steps(m.group("page"), root=root), markdown)
    return MARKER.sub(lambda m: render_marker(m.group("glob"), root=root), markdown)
