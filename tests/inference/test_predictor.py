"""The Predictor and ``multitask-unet predict``: geometry, prediction folder, resuming, inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.cli import main
from multitask_unet.data.io import read_image, spacing_affine, write_image
from multitask_unet.errors import ConfigError, DataError
from multitask_unet.evaluation.reading import read_predictions
from multitask_unet.inference import Predictor, collect_cases, sliding_window_predict

CLASS_NAMES = ("subtype0", "subtype1", "subtype2")  # those of conftest.make_checkpoint


def _test_images(root: Path) -> list[Path]:
    return sorted((root / "test").glob("*_0000.nii.gz"))


def test_prediction_folder_matches_inputs_and_evaluation_format(
    phantom_root, tiny_checkpoint, tmp_path
) -> None:
    out = tmp_path / "pred"
    run = Predictor.from_checkpoint(tiny_checkpoint).predict(
        [phantom_root / "test"], out, progress=False
    )
    images = _test_images(phantom_root)
    assert run.predicted == tuple(p.name.removesuffix("_0000.nii.gz") for p in images)
    assert run.skipped == ()
    for image in images:
        seg = read_image(out / image.name.replace("_0000", ""))
        source = read_image(image)
        assert seg.array.dtype == np.uint8 and seg.shape == source.shape
        np.testing.assert_array_equal(seg.affine, source.affine)
        assert set(np.unique(seg.array)) <= {0, 1, 2}
    table = read_predictions(run.csv_path)
    assert table.case_ids == run.predicted and table.class_names == CLASS_NAMES
    np.testing.assert_allclose(table.probabilities.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(table.predicted, table.probabilities.argmax(axis=1))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_case_prediction_equals_sliding_window_on_the_preprocessed_volume(
    phantom_root, tiny_checkpoint
) -> None:
    from multitask_unet.data.preprocessing import preprocess_case

    predictor = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=(0,))
    record = collect_cases([_test_images(phantom_root)[0]])[0]
    case = preprocess_case(record, predictor.preprocessing)
    got = predictor.predict_preprocessed(case)
    out = sliding_window_predict(
        predictor.model, torch.from_numpy(case.image)[None], window_size=predictor.window_size,
        mirror_axes=(0,),
    )  # fmt: skip
    np.testing.assert_allclose(got.logits["cls"], out["cls"][0].numpy(), atol=1e-6)
    np.testing.assert_allclose(got.probabilities, out["cls"][0].softmax(0).numpy(), atol=1e-6)
    assert got.predicted == int(out["cls"][0].argmax())


@pytest.mark.parametrize(
    ("orientation", "dtype", "spacing", "shape"),
    [
        ("RAS", np.float64, (0.8, 0.7, 2.5), (30, 26, 9)),
        ("LPS", np.int32, (1.9, 2.1, 1.0), (11, 13, 40)),
    ],
)
def test_geometry_of_odd_inputs_is_kept(
    tiny_checkpoint, tmp_path, orientation, dtype, spacing, shape
) -> None:
    rng = np.random.default_rng(0)
    affine = spacing_affine(spacing, (10.0, -20.0, 5.0), orientation=orientation)
    affine[:3, :3] = affine[:3, :3] @ _rotation(0.1)  # oblique too
    image = write_image(tmp_path / "odd.nii.gz", rng.normal(0, 100, shape).astype(dtype), affine)
    prediction = Predictor.from_checkpoint(tiny_checkpoint).predict_case(image)
    assert prediction.case_id == "odd" and prediction.segmentation.shape == shape
    np.testing.assert_allclose(prediction.affine, read_image(image).affine, atol=1e-6)


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_rerun_skips_finished_cases_and_interrupted_runs_resume(
    phantom_root, tiny_checkpoint, tmp_path, monkeypatch
) -> None:
    out = tmp_path / "pred"
    predictor = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    original = Predictor.predict_case
    calls: list[str] = []

    def failing(self, record):  # the second case is interrupted
        calls.append(record.case_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, record)

    monkeypatch.setattr(Predictor, "predict_case", failing)
    with pytest.raises(KeyboardInterrupt):
        predictor.predict([phantom_root / "test"], out, progress=False)
    monkeypatch.setattr(Predictor, "predict_case", original)
    first = calls[0]
    assert sorted(p.name for p in out.iterdir()) == [
        f"{first}.nii.gz",
        "predict_settings.json",  # written before the first case: the same settings continue
        "predictions.csv",
    ]
    assert read_predictions(out / "predictions.csv").case_ids == (first,)

    run = predictor.predict([phantom_root / "test"], out, progress=False)
    assert run.skipped == (first,) and len(run.predicted) == 2
    again = predictor.predict([phantom_root / "test"], out, progress=False)
    assert again.predicted == () and len(again.skipped) == 3
    (out / f"{first}.nii.gz").unlink()  # a missing label map makes the case unfinished
    assert predictor.predict([phantom_root / "test"], out, progress=False).predicted == (first,)
    redo = predictor.predict([phantom_root / "test"], out, overwrite=True, progress=False)
    assert len(redo.predicted) == 3 and len(read_predictions(out / "predictions.csv").case_ids) == 3


def test_segmentation_only_model_writes_no_csv(
    tiny_plan, phantom_root, tmp_path, checkpoint_factory
) -> None:
    ckpt = checkpoint_factory(tmp_path / "seg.pt", tiny_plan, heads=False)
    image = _test_images(phantom_root)[0]
    run = Predictor.from_checkpoint(ckpt).predict([image], tmp_path / "out", progress=False)
    assert run.csv_path is None and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        image.name.replace("_0000", ""),
        "predict_settings.json",
    ]


def test_other_models_csv_is_not_mixed_in(phantom_root, tiny_checkpoint, tmp_path) -> None:
    out = tmp_path / "pred"
    out.mkdir()
    (out / "predictions.csv").write_text("case_id,prob_x,prob_y,predicted\na,0.5,0.5,0\n")
    predictor = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    with pytest.raises(DataError, match="--overwrite"):
        predictor.predict([_test_images(phantom_root)[0]], out, progress=False)
    predictor.predict([_test_images(phantom_root)[0]], out, overwrite=True, progress=False)
    assert read_predictions(out / "predictions.csv").class_names == CLASS_NAMES


def test_calibration_of_the_checkpoint_is_applied(
    tiny_plan, phantom_root, tmp_path, checkpoint_factory
) -> None:
    from multitask_unet.checkpoints import save_checkpoint
    from multitask_unet.inference.calibration import Calibration

    ckpt = load_checkpoint(checkpoint_factory(tmp_path / "m.pt", tiny_plan))
    cal = Calibration("temperature", "ce", (0.5,) * 3, (0.0,) * 3)
    path = save_checkpoint(
        tmp_path / "cal.pt", ckpt.build_model(), plan=ckpt.plan, class_names=CLASS_NAMES,
        calibration={"version": 1, "heads": {"cls": cal.to_dict()}},
    )  # fmt: skip
    image = _test_images(phantom_root)[0]
    plain = Predictor.from_checkpoint(path, calibrated=False, mirror_axes=()).predict_case(image)
    calibrated = Predictor.from_checkpoint(path, mirror_axes=()).predict_case(image)
    expected = torch.from_numpy(plain.logits["cls"] * 0.5).softmax(0).numpy()
    np.testing.assert_allclose(calibrated.probabilities, expected, atol=1e-6)
    assert calibrated.predicted == plain.predicted


def test_cli_predict(phantom_root, tiny_checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "cli"
    args = [
        "predict",
        "--checkpoint",
        str(tiny_checkpoint),
        str(phantom_root / "test"),
        "-o",
        str(out),
    ]
    assert main([*args, "--mirror-axes", "", "--no-progress"]) == 0
    assert "predicted 3 case(s)" in capsys.readouterr().out
    assert main([*args, "--no-progress"]) == 0
    assert "skipped 3 finished" in capsys.readouterr().out
    assert (
        main(["predict", "--checkpoint", str(tmp_path / "none.pt"), str(out), "-o", str(out)]) == 2
    )
    assert f"checkpoint {tmp_path / 'none.pt'} does not exist; check the path" in (
        capsys.readouterr().err
    )
    assert main([*args, "--mirror-axes", "a", "b"]) == 2
    assert "--mirror-axes takes numbers as separate words, e.g. --mirror-axes 0 1 2; got 'a b'" in (
        capsys.readouterr().err
    )
    assert main([*args, "--label-weights", "1", "1", "x"]) == 2
    assert "--label-weights takes numbers as separate words, e.g. --label-weights 1 1 16" in (
        capsys.readouterr().err
    )
    weighted = [*args, "--overwrite", "--no-progress", "--mirror-axes"]  # none: no mirroring
    assert main([*weighted, "--label-weights", "1", "1", "8", "--save-probabilities"]) == 0
    assert len(list(out.glob("*.npz"))) == 3


def test_collect_cases(tmp_path, phantom_root) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a_0000.nii.gz", "a_0001.nii.gz", "b.nii.gz"):
        write_image(folder / name, np.zeros((4, 4, 4), np.int16), spacing_affine((1, 1, 1)))
    dicom = folder / "series1"
    dicom.mkdir()
    (dicom / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    (folder / "notes.txt").write_text("ignored")
    cases = collect_cases([folder])
    assert collect_cases(str(folder)) == collect_cases(folder) == cases  # one input, not a list
    assert [(c.case_id, [p.name for p in c.images]) for c in cases] == [
        ("a", ["a_0000.nii.gz"]), ("b", ["b.nii.gz"]), ("series1", ["series1"]),
    ]  # fmt: skip
    two = collect_cases([folder / "a_0000.nii.gz"], num_channels=2)
    assert [p.name for p in two[0].images] == ["a_0000.nii.gz", "a_0001.nii.gz"]
    upper = tmp_path / "upper"
    upper.mkdir()
    for name in ("c_0000.NII.GZ", "c_0001.NII.GZ"):  # the siblings keep the file's own ending
        shutil.copy(folder / "a_0000.nii.gz", upper / name)
    two = collect_cases([upper / "c_0000.NII.GZ"], num_channels=2)
    assert [p.name for p in two[0].images] == ["c_0000.NII.GZ", "c_0001.NII.GZ"]
    assert [c.case_id for c in collect_cases([dicom, folder / "b.nii.gz", folder / "b.nii.gz"])] == [
        "series1", "b",
    ]  # fmt: skip
    study = collect_cases([phantom_root])  # a dataset root: every split's images
    assert len(study) == 6 and {c.split for c in study} == {"train", "test"}
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(folder / "b.nii.gz", other / "b.nii.gz")
    with pytest.raises(DataError, match="separate folders"):
        collect_cases([folder, other])
    with pytest.raises(DataError, match="does not exist"):
        collect_cases([tmp_path / "missing.nii.gz"])
    with pytest.raises(DataError, match="not an image file"):
        collect_cases([folder / "notes.txt"])
    with pytest.raises(DataError, match="a_0002"):
        collect_cases([folder / "b.nii.gz", folder / "a_0000.nii.gz"], num_channels=3)
    with pytest.raises(DataError, match="holds no image"):
        collect_cases([_empty(tmp_path)])


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty"
    path.mkdir()
    return path


def test_label_weights_and_saved_probabilities(phantom_root, tiny_checkpoint, tmp_path) -> None:
    from multitask_unet.inference import weighted_argmax

    image = _test_images(phantom_root)[0]
    case_id = image.name.removesuffix("_0000.nii.gz")
    saving = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=(), save_probabilities=True)
    out = tmp_path / "pred"
    saving.predict([image], out, progress=False)
    with np.load(out / f"{case_id}.npz") as data:
        probs = data["probabilities"]
    labels = read_image(out / f"{case_id}.nii.gz").array
    assert probs.dtype == np.float16 and probs.shape == (3, *labels.shape)
    np.testing.assert_allclose(probs.astype(np.float32).sum(0), 1.0, atol=5e-3)
    assert (labels == probs.argmax(0)).mean() > 0.999  # float16 may break near-ties
    weights = (1.0, 1.0, 50.0)
    weighted = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=(), label_weights=weights)
    got = weighted.predict_case(image)
    assert got.seg_probabilities is None
    np.testing.assert_array_equal(got.segmentation, weighted_argmax(probs, weights))
    assert (got.segmentation == 2).sum() > (labels == 2).sum()  # a random net: some flip
    # a finished label map without the probabilities asked for is predicted again
    (out / f"{case_id}.npz").unlink()
    assert saving.predict([image], out, progress=False).predicted == (case_id,)
    plain = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=())
    assert plain.predict([image], out, progress=False).skipped == (case_id,)


def test_predictor_options_are_checked(tiny_checkpoint, tiny_plan) -> None:
    model = load_checkpoint(tiny_checkpoint).build_model()
    with pytest.raises(ConfigError, match="no head 'seg_cls'"):
        Predictor(model, tiny_plan, cls_head="seg_cls")
    with pytest.raises(ConfigError, match="one name per class"):
        Predictor(model, tiny_plan, class_names=("a", "b"))
    with pytest.raises(ConfigError, match="window_size"):
        Predictor(model, tiny_plan.preprocessing)
    with pytest.raises(ConfigError, match="one weight per label"):
        Predictor(model, tiny_plan, label_weights=(1, 2))
    assert Predictor(model, tiny_plan).options["window_batch_size"] == 8  # mirrors of a window
    assert Predictor(model, tiny_plan, mirror_axes=(1,)).options["window_batch_size"] == 2


@pytest.mark.parametrize(
    ("training", "expected"),
    [
        (None, (0, 1, 2)),  # no training record (e.g. converted weights): the default
        ({"config": {"data": {"augment": False}}}, ()),
        ({"config": {"data": {"augment": True, "augmentation": None}}}, (0, 1, 2)),
        ({"config": {"data": {"augmentation": {"mirror_axes": [1, 2], "p_mirror": 0.5}}}}, (1, 2)),
        ({"config": {"data": {"augmentation": {"mirror_axes": [0, 1], "p_mirror": 0.0}}}}, ()),
        # Checkpoints written before the sections hold the flat config.
        ({"config": {"augment": False}}, ()),
        ({"config": {"augment": True, "augmentation": None}}, (0, 1, 2)),
        ({"config": {"augmentation": {"mirror_axes": [1, 2], "p_mirror": 0.5}}}, (1, 2)),
        ({"config": {"augmentation": {"mirror_axes": [0, 1, 2], "p_mirror": 0.0}}}, ()),
    ],
)
def test_default_mirroring_follows_the_training_augmentation(
    tiny_plan, tmp_path, checkpoint_factory, training, expected
) -> None:
    from multitask_unet.checkpoints import save_checkpoint

    ckpt = load_checkpoint(checkpoint_factory(tmp_path / "m.pt", tiny_plan))
    path = save_checkpoint(
        tmp_path / "t.pt", ckpt.build_model(), plan=ckpt.plan, class_names=CLASS_NAMES,
        training=training,
    )  # fmt: skip
    assert Predictor.from_checkpoint(path).options["mirror_axes"] == expected
    assert Predictor.from_checkpoint(path, mirror_axes=(0,)).options["mirror_axes"] == (0,)


def test_a_plan_file_and_a_single_input_are_taken_as_they_are(
    phantom_root, tiny_checkpoint, tiny_plan, tmp_path
) -> None:
    model = load_checkpoint(tiny_checkpoint).build_model()
    tiny_plan.save(tmp_path / "plan.json")
    predictor = Predictor(model, tmp_path / "plan.json", mirror_axes=())
    assert predictor.preprocessing == tiny_plan.preprocessing
    assert predictor.window_size == tiny_plan.patch_size
    image = _test_images(phantom_root)[0]
    run = predictor.predict(str(image), tmp_path / "out", progress=False)  # not its characters
    assert run.predicted == (image.name.removesuffix("_0000.nii.gz"),)
