"""Per-epoch metrics: ``RUN/metrics.csv``, TensorBoard when installed, and ``RUN/curves.png``.

One row per epoch; columns appear as metrics do (validation columns stay empty on epochs
without validation). The CSV is rewritten atomically after every epoch, and a resumed run
drops the rows of epochs it is about to redo, so the file always matches the checkpoint.

Example:
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> log = MetricsLog(run, tensorboard=False)
    >>> log.append({"epoch": 0, "loss": 1.5})
    >>> log.append({"epoch": 1, "loss": 1.2, "val/dice_lesion": 0.4})
    >>> print((run / "metrics.csv").read_text().strip())
    epoch,loss,val/dice_lesion
    0,1.5,
    1,1.2,0.4
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multitask_unet._atomic import write_text_atomic
from multitask_unet.evaluation.figures import save_figure

__all__ = ["MetricsLog", "plot_curves", "read_metrics"]

CSV_NAME = "metrics.csv"
PLOT_NAME = "curves.png"


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The rows of a ``metrics.csv`` as dicts of floats (empty cells left out)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(handle)
        ]


class MetricsLog:
    """Collects one row of metrics per epoch and writes them.

    Args:
        run_dir: The run folder.
        tensorboard: Also write TensorBoard events to ``RUN/tensorboard`` when the
            ``tensorboard`` package is installed.
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / CSV_NAME
        self.rows: list[dict[str, float]] = []
        self._writer: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                pass
            else:
                self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def resume(self, next_epoch: int) -> None:
        """Keep the existing rows of epochs before ``next_epoch`` (those the checkpoint has)."""
        self.rows = [r for r in read_metrics(self.path) if r.get("epoch", -1) < next_epoch]

    def append(self, row: Mapping[str, float]) -> None:
        """Add the row of one epoch (must have ``"epoch"``) and rewrite the CSV."""
        self.rows.append({k: float(v) for k, v in row.items()})
        if self._writer is not None:
            step = int(row["epoch"])
            for key, value in row.items():
                if key != "epoch":
                    self._writer.add_scalar(key, float(value), step)
            self._writer.flush()
        self._write_csv()

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})
        write_text_atomic(self.path, buffer.getvalue())

    def plot(self) -> Path | None:
        """Write ``RUN/curves.png`` (None when matplotlib is missing)."""
        return plot_curves(self.rows, self.run_dir / PLOT_NAME)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _fmt(value: float) -> str | int:
    return int(value) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def plot_curves(rows: list[dict[str, float]], path: str | os.PathLike[str]) -> Path | None:
    """Plot the training losses, the learning rate and epoch time, and (when the run validated)
    the validation metrics against the epoch, atomically.

    Drawn on a ``matplotlib.figure.Figure`` without pyplot, so the caller's backend (e.g. a
    notebook's) is never touched.

    Returns:
        The written path, or None when matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn("matplotlib is not installed; no curves.png written", stacklevel=2)
        return None
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "epoch"))

    def series(key: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        points = [(r["epoch"], r[key]) for r in rows if key in r and "epoch" in r]
        return tuple(zip(*points)) if points else None  # type: ignore[return-value]

    validated = [k for k in keys if k.startswith("val/") and series(k)]
    fig = Figure(figsize=(16 if validated else 11, 4), dpi=110, constrained_layout=True)
    axes = fig.subplots(1, 3 if validated else 2)
    losses, schedule = axes[0], axes[1]
    for key in keys:
        line = series(key)
        if line and (key == "loss" or key.startswith("loss/")):
            losses.plot(*line, label=key, marker="." if len(line[0]) < 30 else None)
    losses.set(title="training loss", xlabel="epoch")
    if lr := series("lr"):
        schedule.plot(*lr, color="C0", label="learning rate")
    schedule.set(title="schedule", xlabel="epoch", ylabel="learning rate")
    if seconds := series("epoch_seconds"):
        twin = schedule.twinx()
        twin.plot(*seconds, color="C1", marker=".", linestyle="none", label="epoch time")
        twin.set(ylabel="epoch time (s)", ylim=(0, max(seconds[1]) * 1.1 or 1))
        twin.legend(fontsize=8, loc="upper right")
    if validated:
        for key in validated:
            axes[2].plot(*series(key), label=key[4:], marker="o")  # type: ignore[misc]
        axes[2].set(title="validation (whole cases)", xlabel="epoch", ylim=(0, 1.02))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left" if ax is schedule else "best")
    return save_figure(fig, path)
