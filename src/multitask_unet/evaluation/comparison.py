"""Several evaluation reports side by side: a Markdown table with intervals, JSON and a PNG.

Each report is the folder :func:`~multitask_unet.evaluation.evaluate` wrote (or its
``summary.json``), e.g. one per model variant of an ablation, or one per split. Every cell is
the metric's estimate with its bootstrap interval
(:func:`~multitask_unet.evaluation.format_interval`); ``n/a`` where the metric is undefined in
a report (e.g. the AUC of a class absent from its cases) or missing from it.

Example:
    >>> import json, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name, dice in (("small", 0.71), ("large", 0.78)):
    ...     (root / name).mkdir()
    ...     entry = {"estimate": dice, "low": dice - 0.05, "high": dice + 0.04, "confidence": 0.95}
    ...     summary = {"dice_organ": entry, "cases": {"evaluated": 12}}
    ...     _ = (root / name / "summary.json").write_text(json.dumps(summary))
    >>> table = compare_reports({"small": root / "small", "large": root / "large"},
    ...                         {"dice_organ": "organ Dice"}, output_dir=root / "out", figure=False)
    >>> print((root / "out" / "comparison.md").read_text().splitlines()[-1])
    | large | 12 | 0.780 [95% CI 0.730, 0.820] |
    >>> table["small"]["dice_organ"]["estimate"]
    0.71
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multitask_unet._atomic import write_text_atomic
from multitask_unet.errors import ConfigError
from multitask_unet.evaluation.report_writer import format_interval, headline_metrics

__all__ = ["compare_reports", "read_summary"]

SUMMARY_NAME = "summary.json"


def read_summary(report: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``summary.json`` of an evaluation report folder (or the file itself).

    Raises:
        ConfigError: The folder has no ``summary.json``, or the file is not a JSON object.
    """
    path = Path(report)
    if path.is_dir():
        path = path / SUMMARY_NAME
    if not path.is_file():
        raise ConfigError(
            f"{path} does not exist; give the folder evaluate(..., output_dir=...) or "
            "multitask-unet evaluate -o wrote (with summary.json), or that file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc}); evaluate the predictions again"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds {type(data).__name__}, not an evaluation summary")
    return data


def compare_reports(
    reports: Mapping[str, str | os.PathLike[str]],
    metrics: Sequence[str] | Mapping[str, str] | None = None,
    *,
    output_dir: str | os.PathLike[str],
    name: str = "comparison",
    title: str = "Evaluation reports compared",
    figure: bool = True,
    digits: int = 3,
) -> dict[str, dict[str, Any]]:
    """Write ``OUT/NAME.md``, ``OUT/NAME.json`` and (optionally) ``OUT/NAME.png`` comparing reports.

    The Markdown table has one row per report (its name and number of evaluated cases) and one
    column per metric; the JSON holds the table below; the PNG one panel per metric, one bar
    per report with its interval (:func:`~multitask_unet.evaluation.figures.plot_comparison`).
    Every file is written atomically.

    Args:
        reports: Row name -> evaluation report folder (with ``summary.json``) or the file.
        metrics: Summary keys, or keys mapped to column labels, in column order; default: the
            headline metrics of the first report
            (:func:`~multitask_unet.evaluation.report_writer.headline_metrics`) that any report
            has.
        output_dir: Where the files go (created).
        name: File name of the outputs, without extension.
        title: Heading of the Markdown file and title of the figure.
        figure: Also write the PNG (needs matplotlib).
        digits: Decimals of every number in the table.

    Returns:
        Row name -> summary key -> the report's entry (``estimate``, ``low``, ``high``, ...),
        or None where the report lacks the metric.

    Raises:
        ConfigError: No reports, no metrics, a ``name`` that is not a plain file name, or a
            report without a readable ``summary.json``.
    """
    if not reports:
        raise ConfigError("compare_reports needs at least one report: {name: report folder}")
    if not name or Path(name).name != name or name in (".", ".."):
        raise ConfigError(f"name must be a plain file name without extension, got {name!r}")
    summaries = {row: read_summary(path) for row, path in reports.items()}
    columns = _columns(metrics, summaries)
    table = {
        row: {key: summary.get(key) if isinstance(summary.get(key), Mapping) else None
              for key in columns}
        for row, summary in summaries.items()
    }  # fmt: skip
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {title}",
        "",
        "Each cell: the estimate with its bootstrap interval over cases; n/a where the metric "
        "is undefined in a report (e.g. a class absent from its cases) or missing from it.",
        "",
        "| report | cases | " + " | ".join(columns.values()) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for row, summary in summaries.items():
        cases = (summary.get("cases") or {}).get("evaluated", "n/a")
        cells = [_cell(table[row][key], digits) for key in columns]
        lines.append(f"| {row} | {cases} | " + " | ".join(cells) + " |")
    if figure:
        from multitask_unet.evaluation.figures import plot_comparison

        plot_comparison(table, columns, out / f"{name}.png", title=title)
        lines += ["", f"![{title}]({name}.png)"]
    write_text_atomic(out / f"{name}.md", "\n".join(lines) + "\n")
    write_text_atomic(out / f"{name}.json", json.dumps(table, indent=2) + "\n")
    return table


def _columns(
    metrics: Sequence[str] | Mapping[str, str] | None, summaries: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """Summary key -> column label, in column order."""
    if isinstance(metrics, Mapping):
        columns = {str(k): str(v) for k, v in metrics.items()}
    elif metrics is not None:
        if isinstance(metrics, str):
            raise ConfigError(f"metrics must be a list of summary keys, got the string {metrics!r}")
        columns = {str(k): str(k) for k in metrics}
    else:
        first = next(iter(summaries.values()))
        keys = headline_metrics(first)
        columns = {
            k: k for k in keys if any(isinstance(s.get(k), Mapping) for s in summaries.values())
        }
    if not columns:
        raise ConfigError(
            "no metrics to compare; name the summary keys, e.g. metrics=['dice_lesion', "
            "'macro_f1'] (the keys of a report's summary.json)"
        )
    return columns


def _cell(entry: Mapping[str, Any] | None, digits: int) -> str:
    return "n/a" if entry is None else format_interval(entry, digits=digits)
