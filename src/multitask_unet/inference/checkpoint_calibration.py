"""Calibrate a model's classification heads and keep the result in its checkpoint.

The checkpoint's ``calibration`` slot (see :mod:`multitask_unet.checkpoints`) holds::

    {"version": 1, "heads": {"<head name>": Calibration.to_dict(), ...}}

:func:`fit_heads` fits one :class:`~multitask_unet.inference.calibration.Calibration` per head
from whole-case logits; :func:`read_calibrations` / :func:`calibration_slot` convert between the
slot and the objects; :func:`check_calibrations` checks them against a model;
:func:`write_calibrations` rewrites a checkpoint file with a new slot (atomically, everything
else kept).

Example:
    >>> import torch, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 2})})
    >>> logits = {"cls": torch.tensor([[2.0, -1.0], [1.5, 0.0], [-1.0, 1.0], [0.5, 0.2]])}
    >>> cals = fit_heads(logits, torch.tensor([0, 1, 1, 0]), model=model)
    >>> slot = calibration_slot(cals)
    >>> slot["version"], sorted(slot["heads"]), read_calibrations(slot) == cals
    (1, ['cls'], True)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from multitask_unet.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from multitask_unet.data.readers import DatasetIndex, read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import ConfigError, DataError, WeightsError
from multitask_unet.evaluation.calibration_metrics import calibration_metrics
from multitask_unet.inference.calibration import (
    Calibration,
    CalibrationMethod,
    calibrated_probabilities,
    fit_calibration,
)
from multitask_unet.models import MultiTaskUNet

__all__ = [
    "CALIBRATION_VERSION",
    "CalibrationRun",
    "calibrate_checkpoint",
    "calibration_slot",
    "check_calibrations",
    "fit_heads",
    "labelled_cases",
    "read_calibrations",
    "write_calibrations",
]

CALIBRATION_VERSION = 1
"""Version of the layout of the checkpoint's ``calibration`` slot."""


def fit_heads(
    logits: Mapping[str, np.ndarray | torch.Tensor],
    labels: np.ndarray | torch.Tensor,
    *,
    model: MultiTaskUNet,
    method: CalibrationMethod | Literal["auto"] = "auto",
) -> dict[str, Calibration]:
    """Fit one calibration per classification head.

    Args:
        logits: Head name to ``(N, K)`` whole-case logits of the same ``N`` labelled cases (e.g.
            from :func:`~multitask_unet.inference.sliding_window_predict`).
        labels: ``(N,)`` reference classes.
        model: The model the logits come from (gives each head's ``loss_kind``).
        method: See :func:`~multitask_unet.inference.calibration.fit_calibration`.

    Returns:
        Head name to its fitted :class:`Calibration`.
    """
    unknown = sorted(set(logits) - set(model.heads))
    if unknown:
        raise ConfigError(
            f"logits given for {unknown}, which are not classification heads of the model "
            f"(heads: {sorted(model.heads)})"
        )
    return {
        name: fit_calibration(values, labels, loss_kind=model.heads[name].loss_kind, method=method)
        for name, values in logits.items()
    }


def calibration_slot(calibrations: Mapping[str, Calibration]) -> dict[str, Any]:
    """The checkpoint's ``calibration`` slot for these calibrations."""
    return {
        "version": CALIBRATION_VERSION,
        "heads": {name: cal.to_dict() for name, cal in calibrations.items()},
    }


def read_calibrations(source: Checkpoint | Mapping[str, Any] | None) -> dict[str, Calibration]:
    """Head name to :class:`Calibration` from a checkpoint (or its ``calibration`` slot).

    Args:
        source: A loaded :class:`~multitask_unet.checkpoints.Checkpoint`, its slot, or None.

    Returns:
        The calibrations; empty when the checkpoint holds none.

    Raises:
        WeightsError: The slot is not in the layout of the module docstring.
    """
    slot = source.calibration if isinstance(source, Checkpoint) else source
    if slot is None:
        return {}
    if not isinstance(slot, Mapping) or not isinstance(slot.get("heads"), Mapping):
        raise WeightsError(
            "the checkpoint's calibration slot must be {'version': 1, 'heads': {name: {...}}}, "
            f"got {slot!r:.80}; refit it with `multitask-unet calibrate`"
        )
    version = slot.get("version")
    if not isinstance(version, int) or version > CALIBRATION_VERSION:
        raise WeightsError(
            f"calibration slot version {version!r} is newer than this library reads "
            f"({CALIBRATION_VERSION}); upgrade multitask_unet or refit the calibration"
        )
    try:
        return {str(name): Calibration.from_dict(d) for name, d in slot["heads"].items()}
    except ConfigError as exc:
        raise WeightsError(
            f"the checkpoint's calibration is invalid ({exc}); refit it with "
            "`multitask-unet calibrate`"
        ) from None


def check_calibrations(calibrations: Mapping[str, Calibration], model: MultiTaskUNet) -> None:
    """Check that every calibration fits a head of ``model`` (name, ``loss_kind``, ``K``).

    Raises:
        WeightsError: naming the head and the mismatch.
    """
    for name, cal in calibrations.items():
        head = model.heads[name] if name in model.heads else None  # noqa: SIM401
        if head is None:
            raise WeightsError(
                f"calibration for head {name!r}, which the model lacks (heads: "
                f"{sorted(model.heads)}); refit with `multitask-unet calibrate`"
            )
        if head.loss_kind != cal.loss_kind or head.num_classes != cal.num_classes:
            raise WeightsError(
                f"calibration of head {name!r} is for a {cal.loss_kind!r} head with "
                f"{cal.num_classes} classes, but the head is {head.loss_kind!r} with "
                f"{head.num_classes}; refit with `multitask-unet calibrate`"
            )


def write_calibrations(
    path: str | os.PathLike[str],
    calibrations: Mapping[str, Calibration],
    *,
    output: str | os.PathLike[str] | None = None,
) -> Path:
    """Rewrite a checkpoint with a new ``calibration`` slot, keeping everything else.

    Args:
        path: The checkpoint to read.
        calibrations: Head name to calibration (replaces the whole slot; empty removes it).
        output: Where to write (default: ``path`` itself, replaced atomically).

    Returns:
        The written path.
    """
    checkpoint = load_checkpoint(path)
    model = checkpoint.build_model()
    check_calibrations(calibrations, model)
    return save_checkpoint(
        output if output is not None else path,
        model,
        plan=checkpoint.plan,
        class_names=checkpoint.class_names,
        label_names=checkpoint.label_names,
        calibration=calibration_slot(calibrations) if calibrations else None,
        training=checkpoint.training,
        extra=checkpoint.extra,
    )


CaseLogits = Callable[[CaseRecord], Mapping[str, torch.Tensor]]
"""Maps a case to its whole-case logits ``{head name: (K,) or (1, K)}``."""


@dataclass(frozen=True)
class CalibrationRun:
    """What :func:`calibrate_checkpoint` fitted and wrote.

    Attributes:
        calibrations: Head name to the fitted :class:`Calibration`.
        metrics: Head name to ``{"uncalibrated": {...}, "calibrated": {...}}`` with the
            ``ece`` (15 bins), ``brier`` and ``nll`` of the fitting cases.
        case_ids: The labelled cases the calibration was fitted on.
        path: The checkpoint written.
        reordered: Head name to the number of fitting cases whose largest calibrated
            probability is not the predicted subtype (possible with per-class Platt only).
    """

    calibrations: dict[str, Calibration]
    metrics: dict[str, dict[str, dict[str, float]]]
    case_ids: tuple[str, ...]
    path: Path
    reordered: dict[str, int]


def labelled_cases(
    data: str | os.PathLike[str] | DatasetIndex, *, split: str | None = None, layout: str = "auto"
) -> list[CaseRecord]:
    """The cases of a dataset (folder, manifest or read index) that have a subtype label.

    Args:
        data: A dataset :func:`~multitask_unet.data.readers.read_dataset` reads, or its index.
        split: Keep only this split's cases.
        layout: Layout of ``data`` or ``"auto"`` (ignored for an index).

    Raises:
        DataError: no labelled case (in that split), naming the splits found.
    """
    index = data if isinstance(data, DatasetIndex) else read_dataset(data, layout=layout)
    records = [r for r in index.records if r.label is not None]
    if split is not None:
        records = [r for r in records if r.split == split]
    if not records:
        where = f"split {split!r} of {index.root}" if split else str(index.root)
        raise DataError(
            f"no case with a subtype label in {where} (splits: {', '.join(index.splits)}); "
            "calibration needs labelled cases, e.g. the validation cases"
        )
    return records


def calibrate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str] | DatasetIndex,
    *,
    split: str | None = None,
    layout: str = "auto",
    method: CalibrationMethod | Literal["auto"] = "auto",
    output: str | os.PathLike[str] | None = None,
    case_logits: CaseLogits | None = None,
    device: torch.device | str = "cpu",
    predictor_options: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CalibrationRun:
    """Fit every classification head's calibration on labelled cases and store it.

    Args:
        checkpoint: The checkpoint file (it needs its preprocessing plan unless
            ``case_logits`` is given).
        data: A labelled dataset in any layout :func:`~multitask_unet.data.readers.read_dataset`
            reads, or its :class:`~multitask_unet.data.readers.DatasetIndex` (e.g. the one a
            trainer already holds).
        split: Use only this split's cases (e.g. ``"validation"``); default: every labelled case.
        layout: Layout of ``data`` or ``"auto"``.
        method: See :func:`~multitask_unet.inference.calibration.fit_calibration`.
        output: Checkpoint to write (default: ``checkpoint`` itself, replaced atomically).
        case_logits: How to get a case's whole-case logits; default: the uncalibrated
            :class:`~multitask_unet.inference.Predictor` of the checkpoint (its plan's
            preprocessing, sliding windows, merged pool states).
        device: Where the network runs for the default ``case_logits``.
        predictor_options: Keywords of the default ``Predictor`` (``overlap``, ``mirror_axes``,
            ``dtype``, ``cls_weighting``, ...). Fit with the settings you will predict with:
            mirroring and window weighting change the logits.
        progress: Called with a short message per case (e.g. ``print``).

    Returns:
        The :class:`CalibrationRun`.
    """
    ckpt = load_checkpoint(checkpoint)
    if case_logits is None:
        model, predict = _predictor_logits(ckpt, device, predictor_options or {})
    else:
        model, predict = ckpt.build_model(device=device), case_logits
    if not model.heads:
        raise ConfigError(f"{checkpoint} has no classification head to calibrate")
    records = labelled_cases(data, split=split, layout=layout)
    per_head: dict[str, list[torch.Tensor]] = {name: [] for name in model.heads}
    for i, record in enumerate(records, start=1):
        if progress is not None:
            progress(f"[{i}/{len(records)}] {record.case_id}")
        out = predict(record)
        for name in model.heads:
            per_head[name].append(out[name].detach().to("cpu", torch.float64).reshape(-1))
    labels = torch.tensor([r.label for r in records])
    logits = {name: torch.stack(rows) for name, rows in per_head.items()}
    calibrations = fit_heads(logits, labels, model=model, method=method)
    metrics, reordered = {}, {}
    for name, z in logits.items():
        cal = calibrations[name]
        probs = cal.probabilities(z)
        metrics[name] = {
            "uncalibrated": _metrics(labels, calibrated_probabilities(z, cal.loss_kind)),
            "calibrated": _metrics(labels, probs),
        }
        top = probs.max(dim=1).values
        reordered[name] = int((probs.gather(1, cal.predict(z)[:, None])[:, 0] < top).sum())
    path = write_calibrations(checkpoint, calibrations, output=output)
    case_ids = tuple(r.case_id for r in records)
    return CalibrationRun(calibrations, metrics, case_ids, path, reordered)


def _metrics(labels: torch.Tensor, probs: torch.Tensor) -> dict[str, float]:
    return calibration_metrics(labels.numpy(), probs.numpy())


def _predictor_logits(
    ckpt: Checkpoint, device: torch.device | str, options: Mapping[str, Any]
) -> tuple[MultiTaskUNet, CaseLogits]:
    from multitask_unet.inference.predictor import Predictor

    heads = list(ckpt.model_config.get("heads") or {})
    if not heads:
        raise ConfigError("the checkpoint's model has no classification head to calibrate")
    # Every head's logits are returned; name one so that models with several heads work, and
    # skip the class-name check of the CSV this predictor never writes.
    options = {"cls_head": heads[0], "class_names": (), **options}
    predictor = Predictor.from_checkpoint(ckpt, device=device, calibrated=False, **options)

    def predict(record: CaseRecord) -> dict[str, torch.Tensor]:
        logits = predictor.predict_case(dataclasses.replace(record, mask=None)).logits
        return {name: torch.as_tensor(z) for name, z in logits.items()}

    return predictor.model, predict
