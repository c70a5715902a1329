"""What made the predictions of a folder: ``OUT/predict_settings.json``.

:meth:`Predictor.predict <multitask_unet.inference.Predictor.predict>` skips the finished cases
of its folder. That is right for an interrupted run, and wrong when the model or a setting that
changes the results is another one: the folder would mix old predictions with new ones, or keep
only the old ones, while the call reports success. So every prediction into a folder
(:func:`claim_folder`) first compares the folder's record with the predictor's settings and
refuses a folder whose record differs unless ``overwrite``, then writes its own record.

Recorded (:func:`prediction_settings`): each model (its checkpoint file and the file's SHA-256
when it was loaded from one, and a SHA-256 of its configuration and weights, which identifies
it: a copied or re-saved checkpoint still matches), the post-processing, the classification
head, its pooling weights (``cls_weighting``), the calibration, the class names and the
preprocessing. Settings that change only how closely the same model's output is computed
(overlap, mirroring, precision, device, window batch) are not recorded: an interrupted run may
continue with other ones. A folder without a record (written before records existed) is
accepted as it is.

The records of ``multitask-unet predict`` before the library kept them (no ``version`` key)
are read too: their models are compared by the checkpoint files' SHA-256, a ``cls_head`` of
``null`` is the model's default head, and ``calibrated: true`` means "the checkpoint's
calibration where it has one".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from multitask_unet._atomic import write_text_atomic
from multitask_unet.errors import ConfigError

if TYPE_CHECKING:
    from multitask_unet.inference.predictor import Predictor

__all__ = [
    "SETTINGS_NAME",
    "check_settings",
    "claim_folder",
    "prediction_settings",
    "weights_sha256",
]

SETTINGS_NAME = "predict_settings.json"
_VERSION = 2
_FIX = (
    "Predict into a new folder, or predict every case again with overwrite=True "
    "(multitask-unet predict --overwrite)"
)


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's configuration (when it has one) and of every tensor of its state.

    Example:
        >>> import multitask_unet as mtu
        >>> a, b = mtu.create_model("tiny_plain"), mtu.create_model("tiny_plain")
        >>> weights_sha256(a) == weights_sha256(a), weights_sha256(a) == weights_sha256(b)
        (True, False)
    """
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def prediction_settings(predictor: Predictor) -> dict[str, Any]:
    """The record of ``predictor``: its models and the settings that change what they predict.

    The values are those read back from the JSON file (lists, not tuples).
    """
    files = predictor.model_files or (None,) * len(predictor.models)
    models = [
        {
            "file": None if f is None else str(f),
            "sha256": None if f is None else _file_sha256(Path(f)),
            "weights_sha256": weights_sha256(m),
        }
        for m, f in zip(predictor.models, files, strict=True)
    ]
    settings = {
        "version": _VERSION,
        "models": models,
        "postprocessing": predictor.postprocessing.describe(),
        "cls_weighting": predictor.options["cls_weighting"],
        "cls_head": predictor.cls_head,
        "calibrated": predictor.calibrated,
        "calibrations": [None if c is None else c.to_dict() for c in predictor.calibrations],
        "class_names": list(predictor.class_names),
        "preprocessing": predictor.preprocessing.to_dict(),
    }
    return json.loads(json.dumps(settings, default=str))


def check_settings(
    out: Path, settings: dict[str, Any], predictor: Predictor, *, overwrite: bool
) -> None:
    """Refuse ``out`` when its record says its predictions were made with other ``settings``.

    Args:
        out: The prediction folder.
        settings: :func:`prediction_settings` of ``predictor``.
        predictor: The predictor (to read the records of earlier versions).
        overwrite: Accept any folder (every case is predicted again).

    Raises:
        ConfigError: ``out``'s record names another model or other settings (and not
            ``overwrite``), or cannot be read.
    """
    path = out / SETTINGS_NAME
    if overwrite or not path.is_file():
        return
    changed = _differences(_read(path, out), settings, predictor)
    if changed:
        raise ConfigError(
            f"{out} holds predictions made with other settings ({'; '.join(changed)}; see "
            f"{path}); its finished cases would be kept as they are. {_FIX}"
        )


def claim_folder(
    out: Path,
    predictor: Predictor,
    *,
    overwrite: bool,
    case_ids: Collection[str],
    write: bool = True,
) -> dict[str, Any]:
    """Check ``out``'s record against ``predictor`` (:func:`check_settings`), then write its own.

    Args:
        out: The prediction folder (it exists).
        predictor: The predictor about to write into ``out``.
        overwrite: Accept a folder of other settings, unless it holds label maps of cases
            outside ``case_ids``: those would stay, made with the other settings.
        case_ids: The cases this run predicts.
        write: Write the record (under ``torchrun`` only rank 0 does).

    Returns:
        The settings recorded.

    Raises:
        ConfigError: See :func:`check_settings`; with ``overwrite``, the other settings' label
            maps of cases this run does not predict, named.
    """
    settings = prediction_settings(predictor)
    check_settings(out, settings, predictor, overwrite=overwrite)
    path = out / SETTINGS_NAME
    if overwrite and path.is_file() and _other_settings(path, out, settings, predictor):
        found = {p.name.removesuffix(".nii.gz") for p in out.glob("*.nii.gz")}
        stale = sorted(c for c in found - set(case_ids) if not c.startswith("."))
        if stale:
            shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
            raise ConfigError(
                f"{out} holds label maps of {len(stale)} case(s) that this run does not predict "
                f"({shown}), made with other settings (see {path}); overwriting the others would "
                "mix two models' predictions in one folder: predict into a new folder, or "
                "delete those files first"
            )
    if write:
        write_text_atomic(out / SETTINGS_NAME, json.dumps(settings, indent=2) + "\n")
    return settings


def _other_settings(path: Path, out: Path, settings: dict[str, Any], predictor: Predictor) -> bool:
    """Whether the record at ``path`` names other settings (a damaged one counts as other)."""
    try:
        return bool(_differences(_read(path, out), settings, predictor))
    except ConfigError:
        return True


def check_agreement(
    out: Path, settings: dict[str, Any], predictor: Predictor, *, rank: int
) -> None:
    """Under ``torchrun``: refuse a rank whose settings differ from those rank 0 recorded.

    Raises:
        ConfigError: This rank's models or settings differ from rank 0's.
    """
    path = out / SETTINGS_NAME
    changed = _differences(_read(path, out), settings, predictor)
    if changed:
        raise ConfigError(
            f"rank {rank} predicts with other settings than rank 0 recorded in {path} "
            f"({'; '.join(changed)}); start every process with the same model and options"
        )


def _read(path: Path, out: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(saved, dict) or not isinstance(saved["models"], list):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is damaged; predict into a new folder, or predict every case of {out} "
            "again with overwrite=True (multitask-unet predict --overwrite)"
        ) from None
    return saved


def _differences(
    saved: dict[str, Any], settings: dict[str, Any], predictor: Predictor
) -> list[str]:
    """What differs between a record and ``settings``, in words (empty: nothing)."""
    legacy = "version" not in saved  # multitask-unet predict's record before the library's
    key = "sha256" if legacy else "weights_sha256"
    try:
        before = [m[key] for m in saved["models"]]
    except (KeyError, TypeError):
        before = None
    now = [m[key] for m in settings["models"]]
    changed = [] if before == now else [_another_model(saved["models"], settings["models"], key)]
    if legacy:
        saved = {**saved, **_legacy_values(saved, predictor, same_models=not changed)}
    for name, value in settings.items():
        if name in ("version", "models") or name not in saved or _same(saved[name], value):
            continue
        scalar = not isinstance(value, (dict, list)) and not isinstance(saved[name], (dict, list))
        changed.append(f"{name} was {saved[name]!r}, now {value!r}" if scalar else f"other {name}")
    return changed


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN equals NaN


def _another_model(before: Any, now: list[dict[str, Any]], key: str) -> str:
    def name(models: Any) -> str:
        if not isinstance(models, list):
            return "?"
        return ", ".join(
            f"{m.get('file') or 'a model given in memory'} ({str(m.get(key))[:12]})"
            if isinstance(m, dict)
            else "?"
            for m in models
        )

    return f"another model: {name(before)} before, {name(now)} now"


def _legacy_values(saved: dict[str, Any], predictor: Predictor, *, same_models: bool) -> dict:
    """An earlier record's values in today's meaning (see the module docstring)."""
    from multitask_unet.inference.ensemble import pick_head

    values: dict[str, Any] = {}
    if saved.get("cls_head") is None:
        with contextlib.suppress(ConfigError):  # no default head: the record says nothing
            values["cls_head"] = pick_head(predictor.model, None)
    if saved.get("calibrated") is True and not predictor.calibrated and same_models:
        values["calibrated"] = _checkpoints_hold_calibration(predictor)
    return values


def _checkpoints_hold_calibration(predictor: Predictor) -> bool:
    from multitask_unet.checkpoints import load_checkpoint
    from multitask_unet.inference.ensemble import checkpoint_calibrations

    files = [f for f in predictor.model_files if f is not None]
    checkpoints = [load_checkpoint(f) for f in files]
    return any(c is not None for c in checkpoint_calibrations(checkpoints, predictor.cls_head))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
