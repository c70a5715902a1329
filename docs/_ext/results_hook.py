"""MkDocs hook: render committed benchmark result files into pages at build time.

A page writes ``<!-- results: GLOB -->`` on a line of its own, with ``GLOB`` relative to the
repository root (e.g. ``benchmarks/results/bench_data*.json``). The hook replaces the line by
one section per matching JSON file: the machine the numbers were measured on, the setup, and the
results as tables. Numbers are never typed into a page by hand, so a page shows exactly what the
result files hold; when no file matches, the page says that nothing has been measured yet.

The rendering is generic (any JSON object): environment keys describe the machine, a mapping
whose values are mappings of scalars becomes a table with one row per key, other scalars are
listed as ``key: value`` rows, and long lists (raw repetitions) are left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["on_page_markdown", "render_crossval", "render_file", "render_marker"]

MARKER = re.compile(r"^<!--\s*results:\s*(?P<glob>\S+)\s*-->[ \t]*$", re.MULTILINE)
#: ``<!-- crossval: FILE COLUMN ... -->``: the headline table of a cross-validation summary.
CROSSVAL = re.compile(
    r"^<!--\s*crossval:\s*(?P<path>\S+)(?P<columns>(?:\s+\w+)*)\s*-->[ \t]*$", re.MULTILINE
)

#: Keys that describe the machine and the software, wherever they appear at the top level or
#: under ``environment``.
MACHINE_KEYS = (
    "device",
    "device_name",
    "gpu",
    "cpu_count",
    "cpu_threads",
    "threads",
    "dtype",
    "torch",
    "python",
    "multitask_unet",
    "torchio",
    "nnunetv2",
    "dynamic_network_architectures",
    "date",
)
_MAX_LIST = 6  # longest list of ints shown (shapes); longer lists are left out


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return " × ".join(_fmt(v) for v in value) if value else "–"
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
    rows = [[f"`{k}`"] + [_fmt(v.get(c)) for c in columns] for k, v in mapping.items()]
    return _table([""] + [f"`{c}`" for c in columns], rows)


def _label(item: Mapping[str, Any], index: int) -> str:
    for key, value in item.items():
        if _is_scalar(value):
            return f"{key} {_fmt(value)}"
    return f"#{index}"


def _render_value(value: Any, title: str, level: int) -> list[str]:
    """Markdown of one JSON value under a bold title."""
    out: list[str] = []
    if isinstance(value, Mapping):
        table = _row_table(value)
        if table is not None:
            return [f"**{title}**", "", *table]
        scalars = [[f"`{k}`", _fmt(v)] for k, v in value.items() if _is_scalar(v)]
        if scalars:
            out += [f"**{title}**", "", *_table(["", "value"], scalars)]
        for key, sub in value.items():
            if not _is_scalar(sub):
                out += _render_value(sub, f"{title} / {key}", level + 1)
        return out
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        for i, item in enumerate(value):
            out += _render_value(item, f"{title} / {_label(item, i)}", level + 1)
        return out
    if _is_scalar(value):
        return [f"**{title}**: {_fmt(value)}", ""]
    return out  # long lists of raw repetitions are left out


def render_file(path: Path, *, root: Path) -> str:
    """Markdown for one result file: heading, machine, then every other value."""
    rel = path.relative_to(root).as_posix()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{rel} is not valid JSON ({exc}); fix or remove the file") from None
    if not isinstance(data, Mapping):
        return f"`{rel}` does not hold a JSON object; nothing to show.\n"
    env = dict(data.get("environment") or {})
    env.update({k: v for k, v in data.items() if k in MACHINE_KEYS})
    machine = ", ".join(f"{k} {_fmt(env[k])}" for k in MACHINE_KEYS if k in env)
    lines = [f"#### `{rel}`", ""]
    if "benchmark" in data:
        lines += [f"*{_fmt(data['benchmark'])}*", ""]
    lines += [f"Measured on: {machine or 'machine not recorded in the file'}.", ""]
    for key, value in data.items():
        if key in MACHINE_KEYS or key in ("environment", "benchmark"):
            continue
        lines += _render_value(value, key, 0)
    return "\n".join(lines) + "\n"


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
    for key, label in (("raw", "plain argmax"), ("postprocessed", "chosen post-processing")):
        scores = data.get(key) or {}
        if scores:
            cells = []
            for column in columns:
                entry = scores.get(column) or {}
                cells += [_fmt3(entry.get("mean")), _fmt3(entry.get("median"))]
            rows.append([label, *cells])
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
    env = data.get("environment") or {}
    machine = ", ".join(f"{k} {_fmt(env[k])}" for k in MACHINE_KEYS if k in env)
    lines += [
        f"{data.get('folds')} folds, budget {data.get('budget') or 'none'} per fold; "
        f"measured on {machine or 'an unrecorded machine'} (`{rel}`).",
        "",
    ]
    return "\n".join(lines)


def _fmt3(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: expand every ``<!-- results: GLOB -->`` and ``<!-- crossval: ... -->`` line."""
    if "<!--" not in markdown:
        return markdown
    root = Path(config["config_file_path"]).resolve().parent
    markdown = CROSSVAL.sub(
        lambda m: render_crossval(root / m.group("path"), m.group("columns").split(), root=root),
        markdown,
    )
    return MARKER.sub(lambda m: render_marker(m.group("glob"), root=root), markdown)
