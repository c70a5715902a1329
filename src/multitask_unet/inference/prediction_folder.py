"""The loop of :meth:`Predictor.predict <multitask_unet.inference.Predictor.predict>`: cases in,
a prediction folder out (the layout is described in :mod:`multitask_unet.inference.predictor`).

Every file is written atomically after its case is fully predicted; cases found finished are
skipped unless ``overwrite``. :func:`predict_into` first checks that the folder's finished
cases were made with the same model and settings
(:mod:`multitask_unet.inference.prediction_settings`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from multitask_unet._atomic import save_npz_atomic
from multitask_unet._folders import check_output_folder
from multitask_unet.data.io import write_image
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import ConfigError
from multitask_unet.inference.case_prediction import PredictionRun
from multitask_unet.inference.inputs import collect_cases
from multitask_unet.inference.prediction_settings import claim_folder
from multitask_unet.prediction_table import PredictionTable

if TYPE_CHECKING:
    from multitask_unet.inference.predictor import Predictor

__all__ = [
    "case_records",
    "is_finished",
    "merge_parts",
    "output_folder",
    "predict_into",
    "write_predictions",
]


def case_records(
    inputs: Sequence[str | os.PathLike[str] | CaseRecord] | str | os.PathLike[str] | CaseRecord,
    num_channels: int,
) -> list[CaseRecord]:
    """The cases of ``inputs``: the records given, then those found in the files and folders."""
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike, CaseRecord)) else inputs
    records = [r for r in inputs if isinstance(r, CaseRecord)]
    paths = [p for p in inputs if not isinstance(p, CaseRecord)]
    return records + (collect_cases(paths, num_channels=num_channels) if paths else [])


def output_folder(output_dir: str | os.PathLike[str]) -> Path:
    """``output_dir``, created; a clear error when it (or a parent) is a file.

    Raises:
        ConfigError: ``output_dir`` cannot be a folder.
    """
    out = check_output_folder(output_dir, what="the prediction folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    return out


def is_finished(
    out: Path, case_id: str, table: PredictionTable | None, save_probabilities: bool
) -> bool:
    """Whether ``case_id`` is finished in ``out`` (as a rerun decides whether to skip it).

    Finished: its label map is written, it has a row in ``table`` (``None``: a model without
    classification head) and, with ``save_probabilities``, its ``CASE.npz`` is written.
    """
    return (
        (out / f"{case_id}.nii.gz").is_file()
        and (table is None or case_id in table)
        and (not save_probabilities or (out / f"{case_id}.npz").is_file())
    )


def write_predictions(
    predictor: Predictor,
    records: Sequence[CaseRecord],
    output_dir: str | Path,
    *,
    overwrite: bool,
    progress: bool,
    table_path: Path | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...], Path | None]:
    """Predict ``records`` into ``output_dir``: the cases predicted, those skipped, the CSV.

    ``table_path`` is where the rows go (default ``OUT/predictions.csv``; a ``torchrun`` rank
    writes its own part, :mod:`multitask_unet.inference.distributed`).
    """
    out = output_folder(output_dir)
    table = None
    if predictor.cls_head is not None:
        table = PredictionTable.open(
            table_path or out / "predictions.csv",
            predictor.class_names,
            reset=overwrite,
            uncalibrated=predictor.calibrated,
        )
    done, skipped = [], []
    from tqdm.auto import tqdm

    for record in tqdm(records, desc="predict", unit="case", disable=not progress):
        seg_path = out / f"{record.case_id}.nii.gz"
        prob_path = out / f"{record.case_id}.npz"
        if not overwrite and is_finished(out, record.case_id, table, predictor.save_probabilities):
            skipped.append(record.case_id)
            continue
        prediction = predictor.predict_case(record)
        if prediction.seg_probabilities is not None:
            save_npz_atomic(prob_path, probabilities=prediction.seg_probabilities)
        write_image(seg_path, prediction.segmentation, prediction.affine)
        if table is not None:
            table.set(
                record.case_id,
                prediction.probabilities,
                prediction.predicted,
                uncalibrated=prediction.uncalibrated,
            )
            table.save()
        done.append(record.case_id)
    return tuple(done), tuple(skipped), table.path if table else None


def predict_into(
    predictor: Predictor,
    inputs: Sequence[str | os.PathLike[str] | CaseRecord] | str | os.PathLike[str] | CaseRecord,
    output_dir: str | os.PathLike[str],
    *,
    overwrite: bool,
    progress: bool,
) -> PredictionRun:
    """:meth:`Predictor.predict <multitask_unet.inference.Predictor.predict>` in one process.

    Raises:
        ConfigError: ``output_dir`` is a file, or holds predictions made with other settings
            and not ``overwrite`` (:func:`~multitask_unet.inference.prediction_settings.
            check_settings`).
    """
    records = case_records(inputs, predictor.model.config.in_channels)
    out = output_folder(output_dir)
    claim_folder(out, predictor, overwrite=overwrite, case_ids=[r.case_id for r in records])
    if predictor.cls_head is not None:  # rows of an interrupted torchrun run: theirs too
        merge_parts(out, predictor.class_names, uncalibrated=predictor.calibrated, reset=overwrite)
    done, skipped, csv_path = write_predictions(
        predictor, records, out, overwrite=overwrite, progress=progress
    )
    return PredictionRun(out, done, skipped, csv_path)


def merge_parts(
    output_dir: str | os.PathLike[str],
    class_names: Sequence[str],
    *,
    uncalibrated: bool = False,
    reset: bool = False,
) -> Path | None:
    """Merge every ``OUT/predictions.rank*.csv`` into ``OUT/predictions.csv``, then delete them.

    A part's row replaces the row of the same case. The merged file is written atomically
    before the parts are deleted, so an interruption loses no row.

    Args:
        output_dir: The prediction folder.
        class_names: The model's classes.
        uncalibrated: The tables have ``uncalibrated_prob_`` columns.
        reset: Drop files of another model instead of refusing them (``--overwrite``).

    Returns:
        ``OUT/predictions.csv`` when there were parts, else ``None``.

    Raises:
        DataError: A file has another model's columns and ``reset`` is off.
    """
    out = Path(output_dir)
    parts = sorted(out.glob("predictions.rank*.csv"))
    if not parts:
        return None
    options = {"reset": reset, "uncalibrated": uncalibrated}
    table = PredictionTable.open(out / "predictions.csv", class_names, **options)
    for part in parts:
        table.rows.update(PredictionTable.open(part, class_names, **options).rows)
    table.save()
    for part in parts:
        part.unlink(missing_ok=True)
    return table.path
