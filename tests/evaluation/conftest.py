"""Synthetic reference datasets and prediction folders written as NIfTI in ``tmp_path``."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

SPACING = (0.8, 0.7, 2.5)


def write_nifti(path: Path, data: np.ndarray, spacing=SPACING) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(path))


@dataclass
class Study:
    """A tiny study: reference layout, prediction folder and the arrays behind them."""

    ref_root: Path
    pred_dir: Path
    refs: dict[str, np.ndarray] = field(default_factory=dict)
    preds: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    probs: dict[str, np.ndarray] = field(default_factory=dict)


def make_study(root: Path, *, n_per_class: int = 3, seed: int = 0, shape=(14, 12, 8)) -> Study:
    rng = np.random.default_rng(seed)
    study = Study(root / "ref", root / "pred")
    for k in range(3):
        for i in range(n_per_class):
            case = f"case_{k}_{i:02d}"
            ref = np.zeros(shape, np.uint8)
            lo = rng.integers(1, 4, 3)
            ref[lo[0] : lo[0] + 8, lo[1] : lo[1] + 7, lo[2] : lo[2] + 4] = 1
            if not (k == 0 and i == 0):  # one case without lesion: empty-reference rules
                ref[lo[0] + 2 : lo[0] + 5, lo[1] + 2 : lo[1] + 4, lo[2] + 1 : lo[2] + 3] = 2
            pred = ref.copy()
            flip = rng.random(shape) < 0.05
            pred[flip] = rng.integers(0, 3, int(flip.sum()))
            logits = rng.standard_normal(3) + 1.2 * np.eye(3)[k]
            probs = np.exp(logits) / np.exp(logits).sum()
            split = "validation"
            write_nifti(study.ref_root / split / f"subtype{k}" / f"{case}.nii.gz", ref)
            write_nifti(
                study.ref_root / split / f"subtype{k}" / f"{case}_0000.nii.gz",
                np.zeros(shape, np.int16),
            )
            write_nifti(study.pred_dir / f"{case}.nii.gz", pred)
            study.refs[case], study.preds[case] = ref, pred
            study.labels[case], study.probs[case] = k, probs
    # A training case and an unlabelled test image that the predictions do not cover.
    write_nifti(study.ref_root / "train" / "subtype1" / "other.nii.gz", np.zeros(shape, np.uint8))
    write_nifti(study.ref_root / "test" / "unlabelled_0000.nii.gz", np.zeros(shape, np.int16))
    write_predictions_csv(study.pred_dir / "predictions.csv", study.probs)
    return study


def write_predictions_csv(path: Path, probs: dict[str, np.ndarray]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "prob_subtype0", "prob_subtype1", "prob_subtype2", "predicted"])
        for case, p in probs.items():
            writer.writerow([case, *map(repr, map(float, p)), int(np.argmax(p))])


@pytest.fixture
def study(tmp_path: Path) -> Study:
    """Nine validation cases (three per subtype) with predictions."""
    return make_study(tmp_path)


@pytest.fixture
def study_factory():
    """The function that writes a study, for tests that need variants."""
    return make_study


@pytest.fixture
def nifti_writer():
    """``write_nifti(path, data, spacing)``."""
    return write_nifti


@pytest.fixture
def predictions_writer():
    """``write_predictions_csv(path, probs)``."""
    return write_predictions_csv
