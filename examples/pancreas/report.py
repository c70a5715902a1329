"""The study's comparison report: the variants side by side, as Markdown and a PNG.

Reads each variant's evaluation (``report_validation/summary.json``, written by
:func:`multitask_unet.evaluation.evaluate`) and compares them by whole-pancreas Dice, lesion
Dice, one-vs-rest AUC per subtype and macro-F1, each with its 95% bootstrap interval.

Example:
    >>> from report import comparison_metrics
    >>> comparison_metrics(["subtype0", "subtype1"])[-1]
    ('macro_f1', 'macro-F1')
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["comparison_metrics", "write_comparison"]


def comparison_metrics(class_names: Sequence[str]) -> list[tuple[str, str]]:
    """``(summary key, label)`` of every compared metric, in the report's column order."""
    metrics = [("dice_whole_pancreas", "whole-pancreas Dice"), ("dice_lesion", "lesion Dice")]
    metrics += [(f"auc_ovr_{name}", f"AUC {name} vs rest") for name in class_names]
    metrics.append(("macro_f1", "macro-F1"))
    return metrics


def _cell(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("estimate") is None:
        return "n/a"
    text = f"{entry['estimate']:.3f}"
    if entry.get("low") is not None and entry.get("high") is not None:
        text += f" ({entry['low']:.3f}–{entry['high']:.3f})"
    return text


def _write_atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _figure(
    table: Mapping[str, Mapping[str, Any]], metrics: Sequence[tuple[str, str]], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(2.4 * len(metrics), 0.35 * len(names) + 1.6), sharey=True
    )
    for ax, (key, label) in zip(axes, metrics):
        for row, name in enumerate(names):
            entry = table[name].get(key) or {}
            value = entry.get("estimate")
            if value is None:
                ax.text(0.02, row, "n/a", va="center", fontsize=8, color="0.4")
                continue
            low, high = entry.get("low"), entry.get("high")
            err = None
            if low is not None and high is not None:
                err = [[max(value - low, 0.0)], [max(high - value, 0.0)]]
            ax.barh(row, value, xerr=err, color=f"C{row % 10}", capsize=2)
        ax.set_xlim(0, 1)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("variants on validation/ (95% bootstrap intervals)", fontsize=10)
    fig.tight_layout()
    _write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def write_comparison(
    reports: Mapping[str, str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    class_names: Sequence[str],
    figure: bool = True,
) -> dict[str, dict[str, Any]]:
    """Write ``study_report.md`` (and ``study_report.png``) comparing the variants.

    Args:
        reports: Variant name -> its evaluation report folder (with ``summary.json``).
        out_dir: Where the report goes (created).
        class_names: The subtypes, for the per-subtype one-vs-rest AUC columns.
        figure: Also write the PNG (needs matplotlib).

    Returns:
        Variant -> metric key -> the evaluation's entry (estimate, low, high, n).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = comparison_metrics(class_names)
    table: dict[str, dict[str, Any]] = {}
    cases: dict[str, Any] = {}
    for name, folder in reports.items():
        summary = json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))
        table[name] = {key: summary.get(key) for key, _ in metrics}
        cases[name] = (summary.get("cases") or {}).get("evaluated")
    lines = [
        "# Pancreas study: variants compared on validation/",
        "",
        "Estimates with 95% bootstrap intervals over cases; n/a where a metric is undefined "
        "(e.g. a subtype absent from the evaluated cases).",
        "",
        "| variant | cases | " + " | ".join(label for _, label in metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for name, row in table.items():
        cells = " | ".join(_cell(row[key]) for key, _ in metrics)
        lines.append(f"| {name} | {cases[name]} | {cells} |")
    if figure:
        _figure(table, metrics, out / "study_report.png")
        lines += ["", "![variants compared](study_report.png)"]
    text = "\n".join(lines) + "\n"
    _write_atomic(out / "study_report.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    data = json.dumps(table, indent=2) + "\n"
    _write_atomic(
        out / "study_report.json", lambda tmp: Path(tmp).write_text(data, encoding="utf-8")
    )
    return table
