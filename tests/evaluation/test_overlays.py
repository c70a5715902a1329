"""Overlays: the axial axis from the affine, the slice through the largest structure, the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from multitask_unet.cli import main
from multitask_unet.data.io import spacing_affine, write_image
from multitask_unet.evaluation.overlays import (
    OverlayCase,
    axial_axis,
    largest_structure_slice,
    write_overlays,
)


def test_the_axial_axis_follows_the_affine() -> None:
    assert axial_axis(spacing_affine((0.7, 0.7, 2.5))) == 2
    slices_first = np.zeros((4, 4))
    slices_first[:3, :3] = [[0, 0, 0.8], [0, 0.7, 0], [2.5, 0, 0]]  # array axis 0 runs head-foot
    slices_first[3, 3] = 1
    assert axial_axis(slices_first) == 0


def test_the_slice_goes_through_the_largest_structure() -> None:
    labels = np.zeros((10, 10, 12), np.uint8)
    labels[1:3, 1:3, 2] = 2  # small
    labels[4:9, 4:9, 7:10] = 1  # large, widest (all equal) from slice 7
    labels[5:8, 5:8, 10] = 1  # same structure, narrower
    assert largest_structure_slice(labels, axis=2) == 7
    assert largest_structure_slice(np.zeros((4, 4, 6)), axis=2) == 3  # empty: the middle


def _case(root: Path, name: str, shift: int) -> OverlayCase:
    affine = spacing_affine((1.0, 1.0, 2.0))
    image = np.random.default_rng(0).normal(40, 10, (24, 20, 8)).astype(np.float32)
    reference = np.zeros(image.shape, np.uint8)
    reference[6:16, 5:14, 2:6] = 1
    reference[9:12, 8:11, 3:5] = 2
    prediction = np.roll(reference, shift, axis=0)
    return OverlayCase(
        name,
        write_image(root / f"{name}_0000.nii.gz", image, affine),
        write_image(root / "pred" / f"{name}.nii.gz", prediction, affine),
        write_image(root / f"{name}.nii.gz", reference, affine),
        score=1.0 - shift / 10,
    )


def test_one_picture_per_case_and_a_contact_sheet_worst_first(tmp_path: Path) -> None:
    cases = [_case(tmp_path, name, shift) for name, shift in (("good", 0), ("bad", 4), ("ok", 1))]
    written = write_overlays(cases, tmp_path / "overlays", sheet_cases=2)
    assert [p.name for p in written] == ["bad.png", "ok.png", "good.png", "contact_sheet.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_predict_draws_overlays_of_the_predictions(
    phantom_root: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred"
    args = ["predict", "--checkpoint", str(tiny_checkpoint), str(phantom_root / "test"), "-o",
            str(out), "--mirror-axes", "--no-progress", "--overlays"]  # fmt: skip
    assert main(args) == 0
    names = sorted(p.name for p in (out / "overlays").iterdir())
    labels = sorted(p.name for p in out.glob("*.nii.gz"))
    assert len(labels) == 2
    assert names == sorted([*(n.replace(".nii.gz", ".png") for n in labels), "contact_sheet.png"])


@pytest.fixture
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from multitask_unet.data.phantoms import write_phantom_dataset

    root = tmp_path_factory.mktemp("overlay_phantoms") / "phantoms"
    write_phantom_dataset(root, n_train=3, n_validation=0, n_test=2, shape=(24, 24, 12),
                          spacing=(2.0, 2.0, 3.0), class_counts=(1, 1, 1), seed=0)  # fmt: skip
    return root


@pytest.fixture
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, phantom_root: Path) -> Path:
    import torch

    import multitask_unet as mtu
    from multitask_unet.checkpoints import save_checkpoint
    from multitask_unet.data.planning import create_plan
    from multitask_unet.data.planning.fingerprint import compute_fingerprint
    from multitask_unet.data.readers import read_dataset

    train = read_dataset(phantom_root).split("train").records
    fingerprint = compute_fingerprint(train, intensity_samples=10_000, workers=1,
                                      progress=False)  # fmt: skip
    plan = create_plan(fingerprint, size_divisor=4, gpu_memory_gb=0.05)
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pt",
                           mtu.create_model("tiny_plain"), plan=plan)  # fmt: skip
