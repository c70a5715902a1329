"""``predictions.csv``: the class probabilities of a prediction folder, read and written.

One row per case. Columns: ``case_id``, ``prob_<class name>`` for every class in class order,
``predicted`` (the integer class); with ``uncalibrated=True`` also ``uncalibrated_prob_<class
name>`` per class (the probabilities before calibration, for the before/after calibration
metrics of the evaluation). Column k of the probabilities holds class k, the class that the
study layout stores in ``subtype<k>/``.

The predictor writes the file through :meth:`PredictionTable.open`, :meth:`~PredictionTable.set`
and :meth:`~PredictionTable.save` (atomically after every case, rows sorted by case id); the
evaluation reads it with :meth:`PredictionTable.read`, which checks every value and also
accepts files from elsewhere: the ``prob_`` columns in any position, other columns, no
``predicted`` column (then the class of the largest probability).

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "predictions.csv"
    >>> table = PredictionTable.open(path, ("a", "b"))
    >>> table.set("case1", np.array([0.25, 0.75]), 1)
    >>> table.save()
    >>> print(path.read_text().strip())
    case_id,prob_a,prob_b,predicted
    case1,0.25,0.75,1
    >>> read = PredictionTable.read(path)
    >>> read.case_ids, read.class_names, read.probabilities.tolist(), read.predicted.tolist()
    (('case1',), ('a', 'b'), [[0.25, 0.75]], [1])
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multitask_unet._atomic import write_text_atomic
from multitask_unet.errors import DataError

__all__ = ["PredictionTable"]

_PROB = "prob_"
_UNCALIBRATED = "uncalibrated_prob_"


class PredictionTable:
    """The rows of ``predictions.csv`` in memory; :meth:`save` rewrites the file atomically.

    Use :meth:`open` to start from an existing file (its rows are kept) and :meth:`read` to
    parse and check a file for evaluation.

    Attributes:
        path: The CSV file.
        class_names: K names, the suffixes of the ``prob_<name>`` columns.
        uncalibrated: Whether the table has ``uncalibrated_prob_<name>`` columns.
        rows: Case id to its row of cells, in the order of :attr:`columns`.
    """

    def __init__(
        self, path: str | Path, class_names: Sequence[str], *, uncalibrated: bool = False
    ) -> None:
        self.path = Path(path)
        self.class_names = tuple(class_names)
        self.uncalibrated = uncalibrated
        self.rows: dict[str, list[str]] = {}

    @property
    def columns(self) -> list[str]:
        """The header."""
        raw = [_UNCALIBRATED + n for n in self.class_names] if self.uncalibrated else []
        return ["case_id", *(_PROB + n for n in self.class_names), "predicted", *raw]

    @property
    def case_ids(self) -> tuple[str, ...]:
        """The N case identifiers, in row order (file order after :meth:`read`)."""
        return tuple(self.rows)

    @property
    def probabilities(self) -> np.ndarray:
        """``(N, K)`` float64 class probabilities (the ``prob_`` columns)."""
        k = len(self.class_names)
        values = [[float(v) for v in row[1 : 1 + k]] for row in self.rows.values()]
        return np.asarray(values, dtype=np.float64).reshape(len(self.rows), k)

    @property
    def predicted(self) -> np.ndarray:
        """``(N,)`` int64 predicted class of each case."""
        k = len(self.class_names)
        return np.asarray([int(row[1 + k]) for row in self.rows.values()], dtype=np.int64)

    @classmethod
    def open(
        cls,
        path: str | Path,
        class_names: Sequence[str],
        *,
        reset: bool = False,
        uncalibrated: bool = False,
    ) -> PredictionTable:
        """The table of ``path`` to write to, with its rows when the file exists.

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

    @classmethod
    def read(cls, path: str | Path) -> PredictionTable:
        """Parse and check ``predictions.csv`` (its ``prob_`` and ``predicted`` columns).

        ``uncalibrated_prob_`` columns are left out (see
        :func:`~multitask_unet.evaluation.calibration_metrics.read_uncalibrated`).

        Args:
            path: The CSV file.

        Raises:
            DataError: a column is missing, a value is not a number, a class is out of range or
                a case appears twice; the message names the file, row and fix.
        """
        path = Path(path)
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = list(reader)
        prob_columns = [c for c in columns if c.startswith(_PROB)]
        if "case_id" not in columns or not prob_columns:
            raise DataError(
                f"{path} needs a 'case_id' column and one 'prob_<class name>' column per class; "
                f"found columns {columns}"
            )
        table = cls(path, [c.removeprefix(_PROB) for c in prob_columns])
        ids = []
        k = len(prob_columns)
        for line, row in enumerate(rows, start=2):
            case_id = (row.get("case_id") or "").strip()
            if not case_id:
                raise DataError(f"{path} line {line}: empty case_id; every row needs its case")
            try:
                values = [float(row[c]) for c in prob_columns]
                guess = row.get("predicted")
                pred = float(guess) if guess not in (None, "") else float(np.argmax(values))
            except (TypeError, ValueError):
                raise DataError(
                    f"{path} line {line}: probabilities and 'predicted' must be numbers; fix the "
                    "row or predict the case again (multitask-unet predict --overwrite)"
                ) from None
            if not all(math.isfinite(v) for v in values) or not (
                pred.is_integer() and 0 <= pred < k
            ):
                raise DataError(
                    f"{path} line {line}: probabilities must be finite and 'predicted' an "
                    f"integer in [0, {k}), got {values} and {guess!r}; fix the row or predict the "
                    "case again (multitask-unet predict --overwrite)"
                )
            ids.append(case_id)
            table.rows[case_id] = [case_id, *(repr(v) for v in values), str(int(pred))]
        duplicates = sorted(case for case, count in Counter(ids).items() if count > 1)
        if duplicates:
            raise DataError(
                f"{path} lists cases more than once: {duplicates}; keep one row per case"
            )
        return table

    def __contains__(self, case_id: object) -> bool:
        return case_id in self.rows

    def __len__(self) -> int:
        return len(self.rows)

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
        write_text_atomic(self.path, buffer.getvalue())
