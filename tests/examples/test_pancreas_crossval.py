"""examples/pancreas/crossval.py: stratified folds, linked fold views, summaries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pancreas"
sys.path.insert(0, str(EXAMPLE))

import crossval  # noqa: E402

from multitask_unet.data.phantoms import write_phantom_dataset  # noqa: E402
from multitask_unet.data.readers import read_dataset  # noqa: E402
from multitask_unet.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cv") / "phantoms"
    write_phantom_dataset(
        root, n_train=9, n_validation=3, n_test=0, shape=(8, 8, 8), class_counts=(2, 2, 8)
    )
    index = read_dataset(root)
    return [r for split in ("train", "validation") for r in index.split(split).records]


def test_folds_partition_the_cases_and_spread_every_subtype(records) -> None:
    folds = crossval.make_folds(records, 3, seed=1)
    kept = crossval.never_held_out(records, folds)
    ids = [r.case_id for fold in folds for r in fold] + [r.case_id for r in kept]
    assert sorted(ids) == sorted(r.case_id for r in records)  # each case exactly once
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for label in {r.label for r in records}:
        counts = [sum(r.label == label for r in fold) for fold in folds]
        if sum(r.label == label for r in records) > 1:
            assert max(counts) - min(counts) <= 1
    assert crossval.make_folds(records, 3, seed=1) == folds  # seeded
    with pytest.raises(ConfigError, match="folds"):
        crossval.make_folds(records, 1)


def test_a_subtype_with_one_case_stays_in_every_training_set(records) -> None:
    (lone,) = [r for r in records if sum(q.label == r.label for q in records) == 1]
    folds = crossval.make_folds(records, 3)
    assert crossval.never_held_out(records, folds) == [lone]
    for k in range(3):  # so every fold's training set has every subtype
        train = [r for j, fold in enumerate(folds) if j != k for r in fold] + [lone]
        assert {r.label for r in train} == {r.label for r in records}


def test_fold_view_is_a_study_layout_of_links(records, tmp_path) -> None:
    folds = crossval.make_folds(records, 3)
    train = [r for fold in folds[1:] for r in fold]
    view = crossval.link_fold(tmp_path / "view", train, folds[0])
    index = read_dataset(view)
    assert set(index.split("validation").case_ids) == {r.case_id for r in folds[0]}
    assert set(index.split("train").case_ids) == {r.case_id for r in train}
    link = next((view / "validation").rglob("*.nii.gz"))
    assert link.is_symlink() and link.resolve().is_file()


def test_summary_has_raw_and_postprocessed_metrics() -> None:
    rows = [
        {"dice_whole_pancreas": "0.5", "dice_lesion": "0.2", "dice_whole_pancreas_lcc": "0.6",
         "dice_lesion_lcc": "0.3"},
        {"dice_whole_pancreas": "0.9", "dice_lesion": "", "dice_whole_pancreas_lcc": "0.9",
         "dice_lesion_lcc": ""},
    ]  # fmt: skip
    out = crossval.summarize(rows)
    assert out["dice_whole_pancreas"]["mean"] == pytest.approx(0.7)
    assert out["dice_lesion"]["n"] == 1 and out["dice_whole_pancreas_lcc"]["median"] == 0.75


def test_label_weights_are_chosen_without_the_fold_they_score() -> None:
    candidates = (1.0, 4.0, 16.0)
    # fold 0's cases favour 16, the others 4: fold 0 must get 4 (chosen on folds 1 and 2)
    fold_scores = {
        0: {"a": [0.1, 0.2, 0.9], "b": [0.1, 0.2, 0.9]},
        1: {"c": [0.3, 0.6, 0.4]},
        2: {"d": [0.2, 0.5, 0.1]},
    }
    chosen = crossval.choose_label_weights(fold_scores, candidates)
    assert chosen["per_fold"] == {0: 4.0, 1: 16.0, 2: 16.0}
    assert chosen["all_folds"] == 16.0
    assert chosen["mean_lesion_dice_by_candidate"]["1.0"] == pytest.approx(0.175)
    assert crossval.best_weight([[0.5, 0.5, 0.2]], candidates) == 1.0  # ties: the smaller


def test_weighted_report_decides_with_the_weights_and_redoes_a_changed_one(tmp_path) -> None:
    import json

    import numpy as np

    from multitask_unet._atomic import save_npz_atomic
    from multitask_unet.data.io import read_image, read_mask, write_image

    fold_out = tmp_path / "fold0"
    write_phantom_dataset(
        fold_out / "data", n_train=3, n_validation=2, n_test=0, shape=(8, 8, 8),
        class_counts=(1, 1, 3),
    )  # fmt: skip
    index = read_dataset(fold_out / "data")
    predictions = fold_out / "predictions_validation"
    for record in index.split("validation").records:
        mask = read_mask(record.mask)
        # probabilities that under-call the lesion: p(lesion) 0.3 < p(pancreas) 0.6 on it
        p = np.stack([mask.array == 0, mask.array == 1, mask.array == 2]).astype(np.float32)
        lesion = mask.array == 2
        p[:, lesion] = np.array([0.1, 0.6, 0.3], dtype=np.float32)[:, None]
        save_npz_atomic(predictions / f"{record.case_id}.npz", probabilities=p.astype(np.float16))
        write_image(predictions / f"{record.case_id}.nii.gz", p.argmax(0).astype(np.uint8),
                    mask.affine)  # fmt: skip
    raw, lcc = crossval.weighted_report(fold_out, (1.0, 1.0, 4.0))
    case = index.split("validation").records[0]
    weighted = read_image(fold_out / "predictions_validation_weighted" / case.mask.name).array
    np.testing.assert_array_equal(weighted, read_mask(case.mask).array)
    rows = crossval._read_cases(raw)
    assert all(float(r["dice_lesion"]) == 1.0 for r in rows if r["dice_lesion"] != "nan")
    assert (lcc / "cases.csv").exists()
    crossval.weighted_report(fold_out, (1.0, 1.0, 1.0))  # another weight: decided again
    stamp = fold_out / "predictions_validation_weighted" / "label_weights.json"
    assert json.loads(stamp.read_text()) == {"label_weights": [1.0, 1.0, 1.0]}
    again = read_image(fold_out / "predictions_validation_weighted" / case.mask.name).array
    assert not (again == 2).any()
