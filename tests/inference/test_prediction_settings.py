"""``OUT/predict_settings.json``: a rerun skips finished cases only when the same model and
settings made them; another model's folder is refused (naming the folder, the setting and the
fix) unless ``overwrite``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.errors import ConfigError
from multitask_unet.inference import Predictor
from multitask_unet.inference.calibration import Calibration
from multitask_unet.inference.checkpoint_calibration import write_calibrations
from multitask_unet.inference.prediction_settings import (
    SETTINGS_NAME,
    check_agreement,
    prediction_settings,
)


def _image(root: Path) -> Path:
    return sorted((root / "test").glob("*_0000.nii.gz"))[0]


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.iterdir()}


@pytest.fixture
def predicted(phantom_root: Path, tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A folder predicted with ``tiny_checkpoint``."""
    out = tmp_path / "pred"
    run = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=()).predict(
        _image(phantom_root), out, progress=False
    )
    assert len(run.predicted) == 1
    return out


def test_another_checkpoint_is_refused_and_overwrite_predicts_again(
    predicted: Path, phantom_root: Path, tiny_plan, checkpoint_factory, tmp_path: Path
) -> None:
    other = checkpoint_factory(tmp_path / "other.pt", tiny_plan, seed=1)
    predictor = Predictor.from_checkpoint(other, mirror_axes=())
    before = _mtimes(predicted)
    with pytest.raises(ConfigError) as refusal:
        predictor.predict(_image(phantom_root), predicted, progress=False)
    message = str(refusal.value)
    assert f"{predicted} holds predictions made with other settings (another model: " in message
    assert f"{other} (" in message and "overwrite=True" in message
    assert _mtimes(predicted) == before  # nothing written, the record included

    run = predictor.predict(_image(phantom_root), predicted, overwrite=True, progress=False)
    assert len(run.predicted) == 1 and run.skipped == ()
    record = json.loads((predicted / SETTINGS_NAME).read_text())
    assert record["models"][0]["file"] == str(other)
    assert record["models"][0]["sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    again = predictor.predict(_image(phantom_root), predicted, progress=False)
    assert again.predicted == () and len(again.skipped) == 1


def test_overwrite_refuses_to_leave_another_models_cases_beside_the_new_ones(
    phantom_root: Path, tiny_checkpoint: Path, tiny_plan, checkpoint_factory, tmp_path: Path
) -> None:
    images = sorted((phantom_root / "test").glob("*_0000.nii.gz"))[:2]
    out = tmp_path / "pred"
    Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=()).predict(images, out, progress=False)
    other = Predictor.from_checkpoint(
        checkpoint_factory(tmp_path / "other.pt", tiny_plan, seed=1), mirror_axes=()
    )
    before = _mtimes(out)
    kept = images[1].name.removesuffix("_0000.nii.gz")
    with pytest.raises(
        ConfigError, match=rf"label maps of 1 case\(s\) that this run does not predict \({kept}\)"
    ):
        other.predict(images[0], out, overwrite=True, progress=False)
    assert _mtimes(out) == before  # refused before anything is written
    run = other.predict(images, out, overwrite=True, progress=False)  # every case: accepted
    assert len(run.predicted) == 2
    same = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    (out / SETTINGS_NAME).unlink()  # no record: nothing to compare, nothing refused
    assert len(same.predict(images[0], out, overwrite=True, progress=False).predicted) == 1


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"label_weights": (1, 1, 4)},
            "postprocessing was 'none (plain argmax)', now 'label weights (1, 1, 4)'",
        ),
        ({"largest_component": True}, "now 'largest component'"),
        ({"cls_weighting": "foreground"}, "cls_weighting was 'ownership', now 'foreground'"),
        ({"class_names": ("x", "y", "z")}, "other class_names"),
    ],
)
def test_a_setting_that_changes_the_predictions_is_refused(
    predicted: Path, phantom_root: Path, tiny_checkpoint: Path, options, expected: str
) -> None:
    predictor = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=(), **options)
    with pytest.raises(ConfigError, match="holds predictions made with other settings") as info:
        predictor.predict(_image(phantom_root), predicted, progress=False)
    assert expected in str(info.value) and "another model" not in str(info.value)


def test_the_same_model_continues_with_other_precision_settings_a_copy_or_in_memory(
    predicted: Path, phantom_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """Overlap and mirroring change only how closely the same model is computed; a copied
    checkpoint and the same network given in memory are the same model."""
    copy = tmp_path / "copied_run" / "model.pt"
    copy.parent.mkdir()
    copy.write_bytes(tiny_checkpoint.read_bytes())
    finer = Predictor.from_checkpoint(copy, overlap=0.25, mirror_axes=(0,))
    assert finer.predict(_image(phantom_root), predicted, progress=False).predicted == ()
    ckpt = load_checkpoint(tiny_checkpoint)
    in_memory = Predictor(ckpt.build_model(), ckpt.load_plan(), class_names=ckpt.class_names)
    assert in_memory.predict(_image(phantom_root), predicted, progress=False).predicted == ()
    assert json.loads((predicted / SETTINGS_NAME).read_text())["models"][0]["file"] is None


def test_a_damaged_record_is_named(predicted: Path, phantom_root: Path, tiny_checkpoint) -> None:
    (predicted / SETTINGS_NAME).write_text("{not json")
    predictor = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    with pytest.raises(ConfigError, match=f"{predicted / SETTINGS_NAME} is damaged; predict"):
        predictor.predict(_image(phantom_root), predicted, progress=False)
    predictor.predict(_image(phantom_root), predicted, overwrite=True, progress=False)
    assert json.loads((predicted / SETTINGS_NAME).read_text())["version"] == 2


def _legacy_record(checkpoint: Path, *, calibrated: bool = True) -> dict:
    """The record of ``multitask-unet predict`` before the library kept it."""
    return {
        "models": [
            {"file": str(checkpoint), "sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest()}
        ],
        "postprocessing": "none (plain argmax)",
        "cls_weighting": "ownership",
        "cls_head": None,
        "calibrated": calibrated,
    }


def test_a_record_of_the_earlier_command_line_still_works(
    predicted: Path, phantom_root: Path, tiny_checkpoint: Path, tiny_plan, checkpoint_factory,
    tmp_path: Path,
) -> None:  # fmt: skip
    path = predicted / SETTINGS_NAME
    path.write_text(json.dumps(_legacy_record(tiny_checkpoint)))
    same = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    assert not same.calibrated  # "calibrated": true meant "where the checkpoint has one"
    assert same.predict(_image(phantom_root), predicted, progress=False).predicted == ()
    assert json.loads(path.read_text())["version"] == 2  # rewritten in today's format

    path.write_text(json.dumps(_legacy_record(tiny_checkpoint)))
    other = Predictor.from_checkpoint(
        checkpoint_factory(tmp_path / "other.pt", tiny_plan, seed=1), mirror_axes=()
    )
    with pytest.raises(ConfigError, match="another model"):
        other.predict(_image(phantom_root), predicted, progress=False)


def test_an_earlier_record_with_a_calibration_refuses_it_turned_off(
    phantom_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    calibration = Calibration("temperature", "ce", (0.5,) * 3, (0.0,) * 3)
    cal = write_calibrations(tiny_checkpoint, {"cls": calibration}, output=tmp_path / "cal.pt")
    out = tmp_path / "pred"
    out.mkdir()
    (out / SETTINGS_NAME).write_text(json.dumps(_legacy_record(cal)))
    plain = Predictor.from_checkpoint(cal, mirror_axes=(), calibrated=False)
    with pytest.raises(ConfigError, match="calibrated was True, now False"):
        plain.predict(_image(phantom_root), out, progress=False)
    with_calibration = Predictor.from_checkpoint(cal, mirror_axes=())
    assert len(with_calibration.predict(_image(phantom_root), out, progress=False).predicted) == 1
    record = json.loads((out / SETTINGS_NAME).read_text())
    assert record["calibrated"] and record["calibrations"][0]["scale"] == [0.5] * 3
    with pytest.raises(ConfigError, match="calibrated was True, now False; other calibrations"):
        plain.predict(_image(phantom_root), out, progress=False)


def test_a_rank_with_other_settings_than_rank_0_is_refused(
    predicted: Path, tiny_checkpoint: Path, tiny_plan, checkpoint_factory, tmp_path: Path
) -> None:
    same = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    check_agreement(predicted, prediction_settings(same), same, rank=1)
    other = Predictor.from_checkpoint(
        checkpoint_factory(tmp_path / "other.pt", tiny_plan, seed=1), mirror_axes=()
    )
    with pytest.raises(ConfigError, match=r"rank 1 predicts with other settings than rank 0"):
        check_agreement(predicted, prediction_settings(other), other, rank=1)
