"""Cross-validation: stratified splits, one plan, a run per fold, out-of-fold post-processing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from _helpers import config as tiny_config

from multitask_unet.cli import main
from multitask_unet.data.io import read_image
from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.readers import read_dataset
from multitask_unet.data.records import CaseRecord
from multitask_unet.errors import ConfigError
from multitask_unet.inference import keep_largest_component, weighted_argmax
from multitask_unet.training.crossval import cross_validate, load_splits, make_splits


def _records(counts: dict[int | None, int]) -> list[CaseRecord]:
    out = []
    for label, n in counts.items():
        out += [CaseRecord(f"c{label}_{i:02d}", (Path("x.nii.gz"),), label=label) for i in range(n)]
    return out


def test_splits_are_stratified_seeded_and_hold_every_case_out_once() -> None:
    records = _records({0: 9, 1: 6, 2: 3})
    splits = make_splits(records, 3, seed=0)
    assert splits == make_splits(records, 3, seed=0) != make_splits(records, 3, seed=1)
    held = [c for s in splits for c in s["val"]]
    assert sorted(held) == sorted(r.case_id for r in records)
    label = {r.case_id: r.label for r in records}
    for s in splits:
        assert set(s["train"]).isdisjoint(s["val"])
        assert len(s["train"]) + len(s["val"]) == len(records)
        assert Counter(label[c] for c in s["val"]) == {0: 3, 1: 2, 2: 1}


def test_a_class_of_one_case_is_always_trained_on_and_never_held_out() -> None:
    records = _records({0: 2, 1: 1, 2: 8})  # lopsided, as the pancreas subset
    splits = make_splits(records, 3)
    assert all("c1_00" in s["train"] for s in splits)
    assert "c1_00" not in {c for s in splits for c in s["val"]}
    held_zero = [c for s in splits for c in s["val"] if c.startswith("c0_")]
    assert sorted(held_zero) == ["c0_00", "c0_01"]  # in two different folds
    assert len({i for i, s in enumerate(splits) for c in s["val"] if c.startswith("c0_")}) == 2


def test_segmentation_only_datasets_split_without_classes() -> None:
    splits = make_splits(_records({None: 7}), 3)
    assert sorted(len(s["val"]) for s in splits) == [2, 2, 3]


@pytest.mark.parametrize(
    ("counts", "folds", "message"),
    [
        ({0: 4, 1: 4}, 1, "between 2 and the 8"),
        ({0: 2, 1: 2}, 5, "between 2 and the 4"),
        ({0: 2, 1: 2, 2: 2}, 3 + 1, "larger than the number of cases of every class.*--folds 2"),
    ],
)
def test_bad_fold_counts_name_the_value_and_the_fix(counts, folds, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_splits(_records(counts), folds)


def test_a_splits_file_of_another_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "splits.json"
    path.write_text(json.dumps([{"train": ["a"], "val": ["zz"]}, {"train": ["zz"], "val": ["a"]}]))
    with pytest.raises(ConfigError, match=r"zz.*delete it"):
        load_splits(path, ["a", "b"])
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"splits\.json"):
        load_splits(path, ["a"])
    path.write_text(
        json.dumps([{"train": ["a", "b"], "val": ["b"]}, {"train": ["b"], "val": ["a"]}])
    )
    with pytest.raises(
        ConfigError, match=r"splits\.json: fold 0 both trains on and holds out \['b'\]"
    ):
        load_splits(path, ["a", "b"])


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cv") / "data"
    write_phantom_dataset(root, n_train=6, n_validation=3, n_test=1, shape=(16, 16, 16),
                          spacing=(1.0, 1.0, 1.0), class_counts=(1, 1, 1), seed=5)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def crossval_run(phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("cv") / "run"
    config = tiny_config(epochs=2)
    summary = cross_validate(phantoms, run, config, folds=3, workers=1,
                             intensity_samples=5000, verbose=False)  # fmt: skip
    return run, summary


def test_crossval_writes_nnunets_layout_and_predicts_every_case_out_of_fold(
    phantoms: Path, crossval_run
) -> None:
    run, summary = crossval_run
    splits = json.loads((run / "splits.json").read_text())
    labelled = sorted(r.case_id for r in read_dataset(phantoms).records if r.mask is not None)
    assert sorted(c for s in splits for c in s["val"]) == labelled  # test cases left out
    for k in range(3):
        assert (run / f"fold_{k}" / "checkpoints" / "last.pt").is_file()
        assert json.loads((run / f"fold_{k}" / "fold.json").read_text())["fold"] == k
    for case_id in labelled:
        assert (run / "validation" / f"{case_id}.nii.gz").is_file()
        assert (run / "validation" / f"{case_id}.npz").is_file()
        assert (run / "validation_postprocessed" / f"{case_id}.nii.gz").is_file()
    assert summary["finished_folds"] == [0, 1, 2] and summary["cases"] == len(labelled)
    assert {"dice_pancreas", "dice_lesion", "dice_foreground"} <= set(summary["raw"])
    assert summary["raw"]["dice_lesion"]["n"] <= len(labelled)
    assert json.loads((run / "crossval.json").read_text()) == summary


def test_postprocessing_is_chosen_on_every_case_and_reported_cross_fitted(crossval_run) -> None:
    run, summary = crossval_run
    saved = json.loads((run / "postprocessing.json").read_text())
    chosen = summary["postprocessing"]["chosen_on_every_case"]
    assert saved["label_weights"] == chosen["label_weights"] and len(saved["label_weights"]) == 3
    assert saved["largest_component"] == chosen["largest_component"]
    # Each case's post-processed map is its fold's cross-fitted choice applied to its
    # out-of-fold probabilities.
    splits = json.loads((run / "splits.json").read_text())
    for k, split in enumerate(splits):
        choice = summary["postprocessing"]["per_fold_cross_fitted"][str(k)]
        case_id = split["val"][0]
        with np.load(run / "validation" / f"{case_id}.npz") as saved_probabilities:
            expected = weighted_argmax(
                saved_probabilities["probabilities"], choice["label_weights"]
            )
        if choice["largest_component"]:
            expected = keep_largest_component(expected)
        written = read_image(run / "validation_postprocessed" / f"{case_id}.nii.gz").array
        np.testing.assert_array_equal(written, expected)


def test_a_finished_crossval_is_not_trained_again(phantoms: Path, crossval_run) -> None:
    run, _ = crossval_run
    before = {p: p.stat().st_mtime_ns for p in run.glob("fold_*/checkpoints/last.pt")}
    config = tiny_config(epochs=2)
    cross_validate(phantoms, run, config, folds=3, workers=1, intensity_samples=5000,
                   verbose=False)  # fmt: skip
    assert before == {p: p.stat().st_mtime_ns for p in run.glob("fold_*/checkpoints/last.pt")}


def test_a_fold_interrupted_after_training_only_predicts_again(
    phantoms: Path, crossval_run
) -> None:
    run, _ = crossval_run
    (run / "fold_1" / "fold.json").unlink()
    case_id = json.loads((run / "splits.json").read_text())[1]["val"][0]
    (run / "validation" / f"{case_id}.npz").unlink()
    before = (run / "fold_1" / "checkpoints" / "last.pt").stat().st_mtime_ns
    config = tiny_config(epochs=2)
    cross_validate(phantoms, run, config, folds=3, workers=1, intensity_samples=5000,
                   verbose=False)  # fmt: skip
    assert (run / "fold_1" / "checkpoints" / "last.pt").stat().st_mtime_ns == before
    assert (run / "validation" / f"{case_id}.npz").is_file()
    assert "predict_seconds" in json.loads((run / "fold_1" / "fold.json").read_text())


def test_some_folds_now_and_postprocessing_once_all_ran(phantoms: Path, tmp_path: Path) -> None:
    config = tiny_config(epochs=1)
    summary = cross_validate(phantoms, tmp_path / "run", config, folds=2, only=[1], workers=1,
                             intensity_samples=5000, verbose=False)  # fmt: skip
    assert summary["finished_folds"] == [1] and "postprocessing" not in summary
    assert not (tmp_path / "run" / "postprocessing.json").exists()
    assert not (tmp_path / "run" / "fold_0").exists()
    with pytest.raises(ConfigError, match="folds are numbered 0 to 1"):
        cross_validate(phantoms, tmp_path / "run", config, folds=2, only=[2], verbose=False)


def test_crossval_command(phantoms: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(tiny_config(epochs=1).to_yaml())
    argv = ["crossval", str(phantoms), "-o", str(tmp_path / "run"), "--folds", "2", "--config",
            str(config), "--workers", "1", "--intensity-samples", "5000"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "post-processing: label weights" in out and "postprocessing.json" in out
    assert main([*argv[:4], "--folds", "3"]) == 2
    assert "holds 2 folds, not 3" in capsys.readouterr().err
    assert main(["crossval", str(phantoms), "-o", str(tmp_path / "new"), "--folds", "1"]) == 2
    assert "--folds must be between 2" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # refused before any work
