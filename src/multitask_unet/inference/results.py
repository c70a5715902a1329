"""``predictions.csv``: one row per case, kept up to date atomically while a run goes on.

Columns: ``case_id``, ``prob_<class name>`` for every class in class order, ``predicted`` (the
integer class), as :func:`multitask_unet.evaluation.inputs.read_predictions` reads them; with
``uncalibrated=True`` also ``uncalibrated_prob_<class name>`` per class (the probabilities
before calibration, for the before/after calibration metrics of the evaluation).

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "predictions.csv"
    >>> table = PredictionTable.open(path, ("a", "b"))
    >>> table.set("case1", np.array([0.25, 0.75]), 1)
    >>> table.save()
    >>> print(path.read_text().strip())
    case_id,prob_a,prob_b,predicted
    case1,0.25,0.75,1
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multitask_unet._atomic import write_text_atomic
from multitask_unet.errors import DataError

__all__ = ["PredictionTable", "remove_stale_temps"]


class PredictionTable:
    """The rows of ``predictions.csv`` in memory; :meth:`save` rewrites the file atomically.

    Use :meth:`open` to start from an existing file (its rows are kept).
    """

    def __init__(
        self, path: Path, class_names: Sequence[str], *, uncalibrated: bool = False
    ) -> None:
        self.path = Path(path)
        self.class_names = tuple(class_names)
        self.uncalibrated = uncalibrated
        self.rows: dict[str, list[str]] = {}

    @property
    def columns(self) -> list[str]:
        """The header."""
        raw = [f"uncalibrated_prob_{n}" for n in self.class_names] if self.uncalibrated else []
        return ["case_id", *(f"prob_{n}" for n in self.class_names), "predicted", *raw]

    @classmethod
    def open(
        cls,
        path: str | Path,
        class_names: Sequence[str],
        *,
        reset: bool = False,
        uncalibrated: bool = False,
    ) -> PredictionTable:
        """The table of ``path``, with its rows when the file exists.

        Args:
            path: ``OUT/predictions.csv``.
            class_names: Class names of the model.
            reset: Keep no row of the existing file: with another class list, start over.
            uncalibrated: Also write ``uncalibrated_prob_<class>`` columns.

        Raises:
            DataError: The existing file has other columns (another model's predictions) and
                ``reset`` is off.
        """
        table = cls(Path(path), class_names, uncalibrated=uncalibrated)
        if not table.path.is_file():
            return table
        with table.path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            rows = list(reader)
        if header != table.columns:
            if reset:
                return table
            raise DataError(
                f"{table.path} has columns {header}, but this model writes {table.columns}; "
                "predict into another folder or pass overwrite (--overwrite) to replace it"
            )
        for row in rows:
            if len(row) == len(header) and row[0]:
                table.rows[row[0]] = row
        return table

    def __contains__(self, case_id: object) -> bool:
        return case_id in self.rows

    def set(
        self,
        case_id: str,
        probabilities: np.ndarray | None,
        predicted: int | None,
        *,
        uncalibrated: np.ndarray | None = None,
    ) -> None:
        """Add or replace the row of ``case_id``.

        ``uncalibrated`` (the probabilities before calibration) is required when the table has
        ``uncalibrated_prob_`` columns.
        """
        probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        if probs.shape[0] != len(self.class_names) or predicted is None:
            raise DataError(
                f"case {case_id!r}: {probs.shape[0]} probabilities for {len(self.class_names)} "
                "classes"
            )
        row = [case_id, *(repr(float(p)) for p in probs), str(int(predicted))]
        if self.uncalibrated:
            raw = np.asarray(uncalibrated, dtype=np.float64).reshape(-1)
            if uncalibrated is None or raw.shape[0] != len(self.class_names):
                raise DataError(
                    f"case {case_id!r}: this table has uncalibrated_prob_ columns; give the "
                    f"{len(self.class_names)} probabilities before calibration"
                )
            row += [repr(float(p)) for p in raw]
        self.rows[case_id] = row

    def save(self) -> None:
        """Write the file atomically (rows sorted by case id)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for case_id in sorted(self.rows):
            writer.writerow(self.rows[case_id])
        remove_stale_temps(self.path)
        write_text_atomic(self.path, buffer.getvalue())


def remove_stale_temps(path: Path) -> None:
    """Delete temporary files that a killed writer of ``path`` left (``.NAME.*`` beside it)."""
    for stale in path.parent.glob(f".{path.name}.*"):
        stale.unlink(missing_ok=True)
