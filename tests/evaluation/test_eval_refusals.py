"""Mistakes in an evaluation's inputs are refused with a message naming them and the fix, not
scored as if nothing were wrong (a region of a label the dataset lacks), and not a traceback."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from multitask_unet.cli import main
from multitask_unet.errors import ConfigError, DataError, DataWarning
from multitask_unet.evaluation import PANCREAS_REGIONS, EvaluationConfig, evaluate

FAST = EvaluationConfig(n_bootstrap=5)


@pytest.fixture
def phantom_predictions(phantom_dataset, tmp_path: Path) -> tuple[Path, Path]:
    """The phantoms (labels pancreas = 1, lesion = 2 in dataset.json) and their validation
    masks copied as predictions."""
    pred = tmp_path / "pred"
    pred.mkdir()
    for record in phantom_dataset.split("validation").records:
        shutil.copyfile(record.mask, pred / f"{record.case_id}.nii.gz")
    return pred, phantom_dataset.root


def test_a_region_of_an_undeclared_label_is_refused(phantom_predictions) -> None:
    pred, root = phantom_predictions
    config = FAST.replace(regions=[{"key": "a", "labels": [9]}])
    with pytest.raises(ConfigError) as error:
        evaluate(pred, root, config=config, figures=False)
    message = str(error.value)
    assert "region 'a' names label 9" in message and str(root) in message
    assert "0 background, 1 pancreas, 2 lesion" in message and "--region NAME=1,2" in message
    with pytest.raises(ConfigError, match=r"region 'b' names labels 3, 4, which"):
        evaluate(
            pred, root, config=EvaluationConfig(regions="b=1,3,4", n_bootstrap=5), figures=False
        )
    with pytest.raises(ConfigError, match=r"labels lists label 7, which .* labels: \[1, 2\]"):
        evaluate(pred, root, config=FAST.replace(labels=[1, 7]), figures=False)


def test_labels_found_in_the_masks_are_checked_too_but_only_warned_about(study) -> None:
    """Without dataset.json the labels are those of the reference masks (here 1 and 2); other
    cases may hold a value these lack, so a region of another value is scored, with a warning."""
    config = EvaluationConfig(regions=("organ=1", "a=9"), labels=(1,), n_bootstrap=5)
    with pytest.warns(DataWarning) as caught:
        report = evaluate(study.pred_dir, study.ref_root, config=config, figures=False)
    message = str(caught[0].message)
    assert "region 'a' names label 9" in message and "label maps of the 9 predicted" in message
    assert "1 label1, 2 label2" in message and "dataset.json" in message
    assert report.summary["dice_a"]["estimate"] == 1.0  # empty in every map: as the user asked


def test_the_command_line_refuses_an_unknown_region(phantom_predictions, tmp_path, capsys) -> None:
    pred, root = phantom_predictions
    out = tmp_path / "report"
    argv = ["evaluate", "--pred", str(pred), "--ref", str(root), "-o", str(out), "--region",
            "a=9", "--no-figures", "--n-bootstrap", "5"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "region 'a' names label 9" in err and "Traceback" not in err
    assert not out.exists()


def test_the_dataset_regions_stand_for_the_labels_and_study_regions_keep_them(
    phantom_predictions,
) -> None:
    pred, root = phantom_predictions
    summary = evaluate(pred, root, config=FAST, figures=False).summary
    dice = sorted(k for k in summary if k.startswith("dice_"))
    assert dice == ["dice_foreground", "dice_lesion", "dice_pancreas"]  # no dice_label_<k> twice
    assert summary["dice_pancreas"]["estimate"] == 1.0
    config = FAST.replace(regions=[r.to_dict() for r in PANCREAS_REGIONS])
    summary = evaluate(pred, root, config=config, figures=False).summary
    dice = sorted(k for k in summary if k.startswith("dice_"))
    assert dice == ["dice_label_1", "dice_label_2", "dice_lesion", "dice_whole_pancreas"]


def test_a_report_folder_that_is_a_file_is_refused_first(phantom_predictions, tmp_path) -> None:
    pred, root = phantom_predictions
    file = tmp_path / "report.txt"
    file.write_text("not a folder")
    name, sub = re.escape(str(file)), re.escape(str(file / "sub"))
    with pytest.raises(ConfigError, match=rf"output_dir {name} is a file, not a folder; give a"):
        evaluate(tmp_path / "missing", root, output_dir=file, config=FAST)  # before pred is read
    with pytest.raises(ConfigError, match=rf"{sub} cannot be created: {name} is a file"):
        evaluate(pred, root, output_dir=file / "sub", config=FAST, figures=False)
    assert file.read_text() == "not a folder"


def test_a_missing_or_file_prediction_folder_is_named(phantom_predictions, tmp_path) -> None:
    _, root = phantom_predictions
    with pytest.raises(DataError, match=r"prediction folder \S+missing does not exist"):
        evaluate(tmp_path / "missing", root, config=FAST, figures=False)
    file = tmp_path / "pred.csv"
    file.write_text("case_id\n")
    with pytest.raises(DataError, match=r"pred\.csv is a file; it must be a folder"):
        evaluate(file, root, config=FAST, figures=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no CASE\.nii\.gz label maps"):
        evaluate(tmp_path / "empty", root, config=FAST, figures=False)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_a_bootstrap_seed_outside_numpys_range_is_refused(seed) -> None:
    with pytest.raises(ConfigError, match=rf"EvaluationConfig.seed .* from 0 to {2**32 - 1}"):
        EvaluationConfig(seed=seed)


def test_the_largest_seed_is_accepted() -> None:
    assert EvaluationConfig(seed=2**32 - 1).seed == 2**32 - 1


def test_cross_validation_refuses_a_bad_split_seed_before_reading_data(tmp_path) -> None:
    from multitask_unet.training.crossval import cross_validate, make_splits

    with pytest.raises(ConfigError, match=r"seed of the splits must be from 0 to 4294967295"):
        cross_validate(tmp_path / "no_data", tmp_path / "run", seed=-1, verbose=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"got 4294967296"):
        make_splits([], 2, seed=2**32)
