"""Fold ensembles: Predictor with several models, Predictor.from_run and ``predict --model``."""

from __future__ import annotations

import functools
import json
import operator
from pathlib import Path

import numpy as np
import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import save_checkpoint
from multitask_unet.cli import main
from multitask_unet.data.io import read_image
from multitask_unet.data.preprocessing import preprocess_case, restore_native
from multitask_unet.errors import ConfigError
from multitask_unet.inference import (
    Postprocessing,
    Predictor,
    collect_cases,
    keep_largest_component,
    sliding_window_predict,
    weighted_argmax,
)

WEIGHTS = (1.0, 1.0, 50.0)


def _image(root: Path) -> Path:
    return sorted((root / "test").glob("*_0000.nii.gz"))[0]


def _fold(run: Path, k: int) -> Path:
    return run / f"fold_{k}" / "checkpoints" / "last.pt"


def make_run(
    root: Path, plan, factory, *, folds=(0, 1), splits: int | None = None, pp=None
) -> Path:
    """A cross-validation folder: ``fold_k/checkpoints/last.pt`` (seed k) for ``folds``."""
    for k in folds:
        factory(_fold(root, k), plan, seed=k)
    n = splits if splits is not None else len(folds)
    (root / "splits.json").write_text(json.dumps([{"train": [], "val": []}] * n))
    if pp is not None:
        pp.save(root / "postprocessing.json")
    return root


def mean_probabilities(checkpoints, image: Path) -> np.ndarray:
    """The softmax, on the image's grid, of the mean of the models' logits (nnU-Net v2's
    multi-fold prediction), model by model."""
    predictors = [Predictor.from_checkpoint(c, mirror_axes=()) for c in checkpoints]
    case = preprocess_case(collect_cases([image])[0], predictors[0].preprocessing)
    volume = torch.from_numpy(case.image)[None]
    logits = [
        sliding_window_predict(p.model, volume, window_size=p.window_size, **p.options)["seg"][0]
        for p in predictors
    ]
    mean = functools.reduce(operator.add, logits) / len(logits)
    background = (0.0, *[-np.inf] * (mean.shape[0] - 1))
    native = restore_native(mean.numpy(), case.properties, outside=background)
    return torch.from_numpy(np.ascontiguousarray(native)).softmax(dim=0).numpy()


def test_two_copies_of_one_model_equal_the_model(phantom_root, tiny_checkpoint) -> None:
    image = _image(phantom_root)
    single = Predictor.from_checkpoint(tiny_checkpoint, mirror_axes=(), save_probabilities=True)
    pair = Predictor.from_checkpoints(
        [tiny_checkpoint, tiny_checkpoint], mirror_axes=(), save_probabilities=True
    )
    assert len(pair.models) == 2 and pair.model is pair.models[0]
    a, b = single.predict_case(image), pair.predict_case(image)
    np.testing.assert_array_equal(a.segmentation, b.segmentation)
    np.testing.assert_array_equal(a.seg_probabilities, b.seg_probabilities)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.logits["cls"], b.logits["cls"])
    assert a.predicted == b.predicted and b.uncalibrated is None


def test_two_models_predict_the_softmax_of_their_mean_logits(
    phantom_root, tiny_plan, checkpoint_factory, tmp_path
) -> None:
    paths = [checkpoint_factory(tmp_path / f"m{k}.pt", tiny_plan, seed=k) for k in (0, 1)]
    image = _image(phantom_root)
    singles = [Predictor.from_checkpoint(p, mirror_axes=()).predict_case(image) for p in paths]
    assert (singles[0].segmentation != singles[1].segmentation).any()  # the models differ
    got = Predictor.from_checkpoints(paths, mirror_axes=(), save_probabilities=True)
    got = got.predict_case(image)
    mean = mean_probabilities(paths, image)
    np.testing.assert_array_equal(got.segmentation, mean.argmax(0).astype(np.uint8))
    np.testing.assert_allclose(got.seg_probabilities.astype(np.float32), mean, atol=1e-3)
    expected = np.mean([s.probabilities for s in singles], axis=0)
    np.testing.assert_allclose(got.probabilities, expected, rtol=1e-12)
    assert got.predicted == int(expected.argmax())
    logits = np.mean([s.logits["cls"] for s in singles], axis=0)
    np.testing.assert_allclose(got.logits["cls"], logits, rtol=1e-6)


def test_ensemble_calibration_is_per_model_and_keeps_the_decision(
    phantom_root, tiny_plan, checkpoint_factory, tmp_path
) -> None:
    from multitask_unet.checkpoints import load_checkpoint
    from multitask_unet.inference.calibration import Calibration

    plain = checkpoint_factory(tmp_path / "plain.pt", tiny_plan, seed=1)
    ckpt = load_checkpoint(checkpoint_factory(tmp_path / "m.pt", tiny_plan, seed=0))
    cal = Calibration("temperature", "ce", (0.5,) * 3, (0.0,) * 3)
    calibrated = save_checkpoint(
        tmp_path / "cal.pt", ckpt.build_model(), plan=ckpt.plan, class_names=ckpt.class_names,
        calibration={"version": 1, "heads": {"cls": cal.to_dict()}},
    )  # fmt: skip
    image = _image(phantom_root)
    pair = Predictor.from_checkpoints([calibrated, plain], mirror_axes=())
    assert pair.calibrated and pair.calibrations[1] is None
    got = pair.predict_case(image)
    one = Predictor.from_checkpoint(calibrated, mirror_axes=()).predict_case(image)
    two = Predictor.from_checkpoint(plain, mirror_axes=()).predict_case(image)
    np.testing.assert_allclose(got.probabilities, (one.probabilities + two.probabilities) / 2)
    np.testing.assert_allclose(got.uncalibrated, (one.uncalibrated + two.probabilities) / 2)
    assert got.predicted == int(got.uncalibrated.argmax())


def test_models_that_disagree_are_refused(tiny_plan) -> None:
    def model(**kwargs):
        heads = {"cls": ("panda", {"num_classes": kwargs.pop("classes", 3)})}
        return mtu.create_model("tiny_plain", heads=heads, **kwargs)

    base = model()
    with pytest.raises(ConfigError, match="model 1 has in_channels 2"):
        Predictor([base, model(in_channels=2)], tiny_plan)
    with pytest.raises(ConfigError, match="segmentation classes 4"):
        Predictor([base, model(num_classes=4)], tiny_plan)
    with pytest.raises(ConfigError, match="heads"):
        Predictor([base, model(classes=2)], tiny_plan)
    with pytest.raises(ConfigError, match="at least one model"):
        Predictor([], tiny_plan)
    with pytest.raises(ConfigError, match="2 calibrations for 3 models"):
        Predictor([base, base, base], tiny_plan, calibration=[None, None])
    other = mtu.create_model("tiny_residual", heads={"cls": ("panda", {"num_classes": 3})})
    assert len(Predictor([base, other], tiny_plan).models) == 2  # other networks, same outputs


def test_from_run_applies_the_runs_postprocessing(
    phantom_root, tiny_plan, checkpoint_factory, tmp_path
) -> None:
    chosen = Postprocessing(WEIGHTS, largest_component=True, details={"criterion": 0.5})
    run = make_run(tmp_path / "cv", tiny_plan, checkpoint_factory, pp=chosen)
    image = _image(phantom_root)
    predictor = Predictor.from_run(run, mirror_axes=())
    assert predictor.source.folds == (0, 1) and predictor.source.names == ("fold_0", "fold_1")
    assert predictor.source.postprocessing_file == run / "postprocessing.json"
    assert predictor.label_weights == WEIGHTS and predictor.largest_component
    mean = mean_probabilities([_fold(run, 0), _fold(run, 1)], image)
    expected = keep_largest_component(weighted_argmax(mean, WEIGHTS))
    got = predictor.predict_case(image).segmentation
    np.testing.assert_array_equal(got, expected)
    assert (got != mean.argmax(0)).any()  # the post-processing changed something

    plain = Predictor.from_run(run, mirror_axes=(), postprocessing=False)
    assert plain.postprocessing.is_identity and plain.source.postprocessing_file is None
    np.testing.assert_array_equal(plain.predict_case(image).segmentation, mean.argmax(0))
    override = Predictor.from_run(run, mirror_axes=(), label_weights=None)
    assert override.label_weights is None and override.largest_component

    one = Predictor.from_run(run, folds=[1], mirror_axes=())
    direct = Predictor.from_checkpoint(_fold(run, 1), mirror_axes=(), label_weights=WEIGHTS,
                                       largest_component=True)  # fmt: skip
    assert one.source.folds == (1,)
    np.testing.assert_array_equal(
        one.predict_case(image).segmentation, direct.predict_case(image).segmentation
    )


def test_from_run_reads_a_single_training_run(tiny_plan, checkpoint_factory, tmp_path) -> None:
    run = tmp_path / "run"
    checkpoint_factory(run / "checkpoints" / "last.pt", tiny_plan)
    predictor = Predictor.from_run(run)
    assert predictor.source.folds is None and len(predictor.models) == 1
    assert predictor.postprocessing.is_identity
    Postprocessing(largest_component=True).save(run / "postprocessing.json")
    assert Predictor.from_run(run).largest_component
    with pytest.raises(ConfigError, match="single training run"):
        Predictor.from_run(run, folds=[0])


def test_run_folders_are_refused_before_any_model_is_loaded(
    tiny_plan, checkpoint_factory, tmp_path, monkeypatch
) -> None:
    import multitask_unet.inference.predictor as module

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was loaded")

    monkeypatch.setattr(module, "load_checkpoint", refuse)
    run = make_run(tmp_path / "cv", tiny_plan, checkpoint_factory, splits=3)  # fold_2 unfinished
    with pytest.raises(ConfigError, match=r"fold_2 of .*cv.*unfinished.*folds=\[0, 1\]"):
        Predictor.from_run(run)
    (run / "fold_2").mkdir()
    with pytest.raises(ConfigError, match=r"--folds 0 1"):
        Predictor.from_run(run)
    with pytest.raises(ConfigError, match=r"fold\(s\) \[5\] not in .*folds: 0, 1, 2"):
        Predictor.from_run(run, folds=[0, 5])
    with pytest.raises(ConfigError, match="no fold chosen"):
        Predictor.from_run(run, folds=[])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"neither a training run .*--checkpoint"):
        Predictor.from_run(tmp_path / "empty")
    with pytest.raises(ConfigError, match="does not exist"):
        Predictor.from_run(tmp_path / "missing")
    with pytest.raises(ConfigError, match="use --checkpoint"):
        Predictor.from_run(_fold(run, 0))
    (run / "postprocessing.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"postprocessing\.json is not valid JSON"):
        Predictor.from_run(run, folds=[0, 1])


def test_folds_of_other_plans_or_classes_are_refused(
    tiny_plan, checkpoint_factory, tmp_path
) -> None:
    run = make_run(tmp_path / "cv", tiny_plan, checkpoint_factory)
    other = tiny_plan.replace(patch_size=[d * 2 for d in tiny_plan.patch_size])
    checkpoint_factory(_fold(run, 1), other, seed=1)
    with pytest.raises(ConfigError, match="fold_1 hold another plan"):
        Predictor.from_run(run)
    model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 3})})
    save_checkpoint(_fold(run, 1), model, plan=tiny_plan, class_names=["x", "y", "z"])
    with pytest.raises(ConfigError, match="fold_1 name the classes otherwise"):
        Predictor.from_run(run)
    assert Predictor.from_run(run, class_names=("a", "b", "c")).class_names == ("a", "b", "c")
    save_checkpoint(_fold(run, 1), mtu.create_model("tiny_plain"), plan=tiny_plan)
    with pytest.raises(ConfigError, match=r"fold_1 has heads \(classes\) \{\}"):
        Predictor.from_run(run, class_names=("a", "b", "c"))


def test_cli_predict_with_a_run(phantom_root, tiny_plan, checkpoint_factory, tmp_path, capsys):
    run = make_run(tmp_path / "cv", tiny_plan, checkpoint_factory, pp=Postprocessing(WEIGHTS))
    image = _image(phantom_root)
    out = tmp_path / "pred"
    base = ["predict", str(image), "-o", str(out), "--mirror-axes", "", "--no-progress"]
    assert main([*base, "--model", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "2 fold(s) (0, 1)" in printed and "predicted 1 case(s)" in printed
    assert "label weights (1, 1, 50) (from " in printed
    written = read_image(out / image.name.replace("_0000", "")).array
    expected = Predictor.from_run(run, mirror_axes=()).predict_case(image).segmentation
    np.testing.assert_array_equal(written, expected)

    subset = [*base, "--model", str(run), "--folds", "1", "--no-postprocessing", "--overwrite"]
    assert main(subset) == 0
    printed = capsys.readouterr().out
    assert "1 fold(s) (1)" in printed and "post-processing: none" in printed
    direct = Predictor.from_checkpoint(_fold(run, 1), mirror_axes=()).predict_case(image)
    written = read_image(out / image.name.replace("_0000", "")).array
    np.testing.assert_array_equal(written, direct.segmentation)
    override = [*base, "--model", str(run), "--largest-component", "--overwrite"]
    assert main(override) == 0
    assert "largest component (from " in capsys.readouterr().out


def test_cli_predict_refuses_bad_choices(phantom_root, tiny_checkpoint, tmp_path, capsys):
    image = str(_image(phantom_root))
    out = str(tmp_path / "pred")
    both = ["predict", image, "-o", out, "--model", str(tmp_path), "--checkpoint", "m.pt"]
    assert main(both) == 2
    assert "exactly one of --checkpoint" in capsys.readouterr().err
    assert main(["predict", image, "-o", out]) == 2
    assert "exactly one of --checkpoint" in capsys.readouterr().err
    assert (
        main(["predict", image, "-o", out, "--checkpoint", str(tiny_checkpoint), "--folds", "0"])
        == 2
    )
    assert "--folds" in capsys.readouterr().err
    assert main(["predict", image, "-o", out, "--model", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    existing = tmp_path / "taken.txt"  # the command line's -o: tests/cli/test_cli_mistakes.py
    existing.write_text("x")
    with pytest.raises(ConfigError, match=f"the prediction folder {existing} is a file, not a"):
        Predictor.from_checkpoint(tiny_checkpoint).predict([image], existing, progress=False)
    with pytest.raises(ConfigError, match=f"cannot be created: {existing} is a file"):
        Predictor.from_checkpoint(tiny_checkpoint).predict(
            [image], existing / "sub", progress=False
        )
