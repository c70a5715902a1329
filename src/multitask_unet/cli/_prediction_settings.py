"""What made the predictions of a folder: ``OUT/predict_settings.json``, written by ``predict``.

A rerun skips the finished cases of ``OUT``. That is right for an interrupted run, and wrong
when the model or a setting that changes the results is another one: the folder would mix old
predictions with new ones, or keep only the old ones, while the command reports success. So
``predict`` records the model (a SHA-256 of each checkpoint file, so a copied run folder still
matches), its post-processing, calibration and classification head and pooling weights, and
refuses a folder whose record differs unless ``--overwrite``. Settings that change only how
closely the same model's output is computed (overlap, mirroring, precision, device, window
batch) are not recorded: an interrupted run may continue with other ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from multitask_unet.errors import ConfigError

__all__ = ["SETTINGS_NAME", "check_settings", "prediction_settings", "record_settings"]

SETTINGS_NAME = "predict_settings.json"


def prediction_settings(args: argparse.Namespace, predictor: Any) -> dict[str, Any]:
    """The model files and the options of ``predict`` that change what its predictions mean."""
    source = predictor.source
    files = source.checkpoints if source is not None else (args.checkpoint,)
    return {
        "models": [{"file": str(Path(f)), "sha256": _sha256(Path(f))} for f in files],
        "postprocessing": predictor.postprocessing.describe(),
        "cls_weighting": args.cls_weighting,
        "cls_head": args.cls_head,
        "calibrated": not args.no_calibration,
    }


def check_settings(out: Path, settings: dict[str, Any], *, overwrite: bool) -> None:
    """Refuse ``out`` when it holds predictions made with other ``settings``.

    Raises:
        ConfigError: ``out``'s record names another model or other settings (and not
            ``overwrite``), or cannot be read.
    """
    path = out / SETTINGS_NAME
    if overwrite or not path.is_file():
        return
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        before = [m["sha256"] for m in saved["models"]]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(
            f"{path} is damaged; add --overwrite to predict every case of {out} again, or "
            "predict into a new folder"
        ) from None
    changed = [] if before == [m["sha256"] for m in settings["models"]] else ["another model"]
    changed += [
        f"{key} was {saved.get(key)!r}, now {value!r}"
        for key, value in settings.items()
        if key != "models" and saved.get(key) != value
    ]
    if changed:
        raise ConfigError(
            f"{out} holds predictions made with other settings ({'; '.join(changed)}; see "
            f"{path}); its finished cases would be kept as they are. Predict into a new folder, "
            "or add --overwrite to predict every case again"
        )


def record_settings(out: Path, settings: dict[str, Any]) -> None:
    """Write ``out/predict_settings.json`` (atomically)."""
    from multitask_unet._atomic import write_text_atomic
    from multitask_unet.inference.prediction_folder import output_folder

    write_text_atomic(output_folder(out) / SETTINGS_NAME, json.dumps(settings, indent=2) + "\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
