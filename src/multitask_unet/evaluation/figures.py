"""PNG figures of an evaluation: ROC curves, confusion matrix, Dice distribution, reliability.

Figures are drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas, without pyplot,
so the caller's matplotlib backend and global state are never touched. matplotlib is needed
only here; without it :func:`require_matplotlib` raises an error that says how to install it.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "cm.png"
    >>> plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ("a", "b"), out)
    >>> out.read_bytes()[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multitask_unet._atomic import atomic_path
from multitask_unet.errors import MultitaskUNetError
from multitask_unet.evaluation.calibration_metrics import reliability_bins
from multitask_unet.evaluation.classification import roc_auc_ovr, roc_curve

__all__ = [
    "plot_comparison",
    "plot_confusion_matrix",
    "plot_dice_against_volume",
    "plot_dice_distribution",
    "plot_distribution",
    "plot_reliability_diagram",
    "plot_roc_curves",
    "require_matplotlib",
    "save_figure",
]


def require_matplotlib() -> None:
    """Raise a clear error when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MultitaskUNetError(
            "figures need matplotlib: `pip install matplotlib`, or skip figures "
            "(`multitask-unet evaluate --no-figures`, `evaluate(..., figures=False)`)"
        ) from None


def plot_roc_curves(
    y_true: np.ndarray,
    scores: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
) -> None:
    """One-vs-rest ROC curve of every class, with its AUC in the legend.

    Args:
        y_true: Reference classes, shape ``(N,)``.
        scores: Class probabilities, shape ``(N, K)``.
        class_names: K class names.
        path: PNG file to write (atomically).
    """
    fig, ax = _figure(5.0, 5.0)
    y_true = np.asarray(y_true)
    aucs = roc_auc_ovr(y_true, scores)
    for k, name in enumerate(class_names):
        if np.isnan(aucs[k]):
            ax.plot([], [], " ", label=f"{name}: undefined (one class only)")
            continue
        fpr, tpr = roc_curve(y_true == k, np.asarray(scores)[:, k])
        ax.plot(fpr, tpr, drawstyle="default", label=f"{name}: AUC {aucs[k]:.3f}")
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(f"ROC curves, one vs rest (n = {y_true.size})")
    ax.legend(loc="lower right", fontsize="small")
    save_figure(fig, path)


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str]
) -> None:
    """Confusion matrix with counts; colour is the share of each reference class (row).

    Args:
        matrix: ``(K, K)`` counts, rows reference, columns predicted.
        class_names: K class names.
        path: PNG file to write (atomically).
    """
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    fig, ax = _figure(1.2 * k + 2.5, 1.2 * k + 2.0)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            colour = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=colour)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted", ylabel="reference", title="Confusion matrix")
    fig.colorbar(image, ax=ax, label="share of reference class")
    save_figure(fig, path)


def plot_dice_distribution(columns: Mapping[str, np.ndarray], path: str | os.PathLike[str]) -> None:
    """Box plot with every case as a dot, one box per Dice column.

    Args:
        columns: Column name (e.g. ``"dice_lesion"``) to per-case values; NaN values are skipped.
        path: PNG file to write (atomically).
    """
    plot_distribution(columns, path, ylabel="Dice", title="Dice per case", ylim=(-0.02, 1.02))


def plot_distribution(
    columns: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = None,
) -> None:
    """Box plot with every case as a dot, one box per column (the text before the first ``_``
    of the column names is left out of the labels); NaN values are skipped."""
    names = list(columns)
    data = [np.asarray(columns[n], dtype=float) for n in names]
    data = [d[~np.isnan(d)] for d in data]
    fig, ax = _figure(1.6 * max(len(names), 1) + 2.0, 4.5)
    if names:
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), [n.split("_", 1)[-1] for n in names])
        rng = np.random.default_rng(0)  # fixed jitter: identical files for identical inputs
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, values.size), values, s=10, alpha=0.6)
    ax.set(ylabel=ylabel, title=title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    save_figure(fig, path)


def plot_dice_against_volume(
    rows: Sequence[Mapping[str, Any]], regions: Sequence[str], path: str | os.PathLike[str]
) -> None:
    """Dice of every case against its reference volume (mL, log scale), one colour per region;
    cases with an empty reference are left out."""
    fig, ax = _figure(6.0, 4.5)
    for region in regions:
        pairs = [
            (float(r[f"ref_volume_ml_{region}"]), float(r[f"dice_{region}"]))
            for r in rows
            if r.get(f"ref_volume_ml_{region}") and r.get(f"dice_{region}") is not None
        ]
        if pairs:
            volume, dice = zip(*pairs)
            ax.scatter(volume, dice, s=14, alpha=0.7, label=region)
    ax.set_xscale("log")
    ax.set(xlabel="reference volume (mL)", ylabel="Dice", ylim=(-0.02, 1.02),
           title="Dice against reference volume")  # fmt: skip
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    save_figure(fig, path)


def plot_reliability_diagram(
    y_true: np.ndarray,
    versions: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    n_bins: int = 15,
) -> None:
    """Top-label reliability diagram: accuracy against confidence per bin, with the ECE.

    The upper panel draws, for each probability set, the accuracy of every non-empty
    equal-width confidence bin at its mean confidence (the diagonal is perfect calibration);
    the lower panel shows how many cases fall into each bin.

    Args:
        y_true: Reference classes, shape ``(N,)``.
        versions: Label (e.g. ``"uncalibrated"``, ``"calibrated"``) to ``(N, K)`` probabilities.
        path: PNG file to write (atomically).
        n_bins: Equal-width confidence bins on ``[0, 1]``
            (see :mod:`multitask_unet.evaluation.calibration_metrics`).
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 6.0), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1, label="perfect")
    width = 1.0 / n_bins
    for i, (label, probs) in enumerate(versions.items()):
        bins = reliability_bins(y_true, probs, n_bins=n_bins)
        filled = bins.count > 0
        top.plot(
            bins.confidence[filled],
            bins.accuracy[filled],
            marker="o",
            label=f"{label}: ECE {bins.ece:.3f}",
        )
        offset = (i + 0.5) / max(len(versions), 1) - 0.5
        bottom.bar(
            bins.edges[:-1] + width * (0.5 + 0.8 * offset),
            bins.count,
            width=0.8 * width / max(len(versions), 1),
            label=label,
        )
    top.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="accuracy")
    top.set_title(f"Reliability, top label ({n_bins} equal-width bins, n = {np.size(y_true)})")
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="confidence (largest probability)", ylabel="cases")
    save_figure(fig, path)


def plot_comparison(
    table: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
    metrics: Mapping[str, str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
) -> None:
    """Several reports side by side: one panel per metric, one bar per report with its interval.

    Args:
        table: Report name -> summary key -> summary entry (``estimate``, ``low``, ``high``), or
            None where the report lacks the metric (drawn as ``n/a``).
        metrics: Summary key -> panel title, in panel order.
        path: PNG file to write (atomically).
        title: Title above the panels.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    names = list(table)
    fig = Figure(figsize=(2.4 * len(metrics) + 1.0, 0.35 * len(names) + 1.6), dpi=100,
                 layout="constrained")  # fmt: skip
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    for ax, (key, label) in zip(axes, metrics.items()):
        values = []
        for row, name in enumerate(names):
            entry = table[name].get(key) or {}
            value = entry.get("estimate")
            if value is None or np.isnan(value):
                ax.text(0.02, row, "n/a", va="center", fontsize=8, color="0.4",
                        transform=ax.get_yaxis_transform())  # fmt: skip
                continue
            low, high = entry.get("low"), entry.get("high")
            err = None
            if low is not None and high is not None:
                err = [[max(value - low, 0.0)], [max(high - value, 0.0)]]
                values += [low, high]
            ax.barh(row, value, xerr=err, color=f"C{row % 10}", capsize=2)
            values.append(value)
        if values and min(values) >= 0.0 and max(values) <= 1.0:
            ax.set_xlim(0, 1)  # scores in [0, 1] (Dice, AUC, F1) share one scale
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), names, fontsize=8)
    axes[0].set_ylim(len(names) - 0.5, -0.5)  # the first report on top
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def _figure(width: float, height: float) -> tuple[Any, Any]:
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Draw ``fig`` with the Agg canvas (no pyplot, no backend switch) to a PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
