"""On real CT, our label map on the image's grid equals nnU-Net's export of the same logits.

The same ``(K, D, H, W)`` logits on the preprocessed grid go through :func:`export_logits` and
through nnU-Net's ``convert_predicted_logits_to_segmentation_with_correct_shape`` (the core of
``export_prediction_from_logits``, before the file is written), which is given our crop box,
shapes and spacings in its properties dict and its own default resampling of probabilities
(linear, nearest along the coarse axis of anisotropic data). The real images are the shared
native pair ``quiz_0_324`` and a native test CT, with a frame of zeros added so that the crop box
lies inside the image.

Tolerance: the label maps are equal voxel for voxel, except where the two largest resampled
logits are within 1e-4 of each other: nnU-Net takes the argmax of the logits, we take it of
their float32 softmax, and rounding can break such near-ties either way.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from _references import reference
from multitask_unet.data.canonical import read_canonical_case
from multitask_unet.data.io import read_image, write_image
from multitask_unet.data.planning.plan import ChannelNormalization, PreprocessingConfig
from multitask_unet.data.preprocessing import preprocess_case
from multitask_unet.data.records import CaseRecord
from multitask_unet.inference import export_logits

export = reference("nnunetv2.inference.export_prediction")
resampling = reference("nnunetv2.preprocessing.resampling.default_resampling")
label_handling = reference("nnunetv2.utilities.label_handling.label_handling")

CASES = ("train/subtype0/quiz_0_324_0000.nii.gz", "test/quiz_037_0000.nii.gz")


def _framed_copy(source: Path, folder: Path) -> Path:
    """The image with zeros on some outer slabs, so that cropping to non-zero crops."""
    volume = read_image(source)
    array = volume.array.astype(np.float32)
    array[:5], array[-3:], array[:, :4], array[:, :, :2] = 0, 0, 0, 0
    return write_image(folder / "case_0000.nii.gz", array, volume.affine)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("target_spacing", [(3.0, 1.5, 1.5), (5.0, 0.8, 0.8)])
def test_label_maps_equal_nnunet_export(quiz_subset: Path, tmp_path: Path, name, target_spacing):
    path = _framed_copy(quiz_subset / name, tmp_path)
    record = CaseRecord(case_id="case", images=(path,))
    config = PreprocessingConfig(
        target_spacing=target_spacing,
        normalization=(ChannelNormalization("ct", -100.0, 200.0, 50.0, 30.0),),
        labels=(0, 1, 2),
    )
    # The files are LPS: our canonical (D, H, W) grid is SimpleITK's (z, y, x) array, as nnU-Net
    # reads it with transpose_forward (0, 1, 2).
    zyx = sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(np.float32)
    np.testing.assert_array_equal(read_canonical_case(record).image[0], zyx)
    props = preprocess_case(record, config).properties
    assert props.crop_bbox != tuple((0, s) for s in props.shape_before_crop)  # a real crop

    noise = np.random.default_rng(0).normal(size=(3, *props.shape))
    logits = (20 * ndimage.gaussian_filter(noise, sigma=(0, 1.5, 3, 3))).astype(np.float32)
    ours, _ = export_logits(logits, props)

    configuration = SimpleNamespace(
        spacing=list(target_spacing),
        resampling_fn_probabilities=functools.partial(
            resampling.resample_data_or_seg_to_shape, is_seg=False, order=1, order_z=0,
            force_separate_z=None,
        ),
    )  # fmt: skip
    plans = SimpleNamespace(transpose_forward=[0, 1, 2], transpose_backward=[0, 1, 2])
    labels = label_handling.LabelManager({"background": 0, "pancreas": 1, "lesion": 2}, None)
    properties = {
        "spacing": list(props.spacing),
        "shape_before_cropping": list(props.shape_before_crop),
        "bbox_used_for_cropping": [list(b) for b in props.crop_bbox],
        "shape_after_cropping_and_before_resampling": list(props.shape_after_crop),
    }
    theirs = export.convert_predicted_logits_to_segmentation_with_correct_shape(
        torch.from_numpy(logits.copy()), plans, configuration, labels, properties,
        num_threads_torch=1,
    )  # fmt: skip
    theirs = np.asarray(theirs).transpose(2, 1, 0)  # (z, y, x) -> the file's (x, y, z)
    assert ours.shape == theirs.shape == read_image(path).shape
    assert len(np.unique(theirs)) == 3  # every label occurs: the comparison covers boundaries
    differ = ours != theirs
    if differ.any():  # only near-ties of the resampled logits may differ
        resampled = configuration.resampling_fn_probabilities(
            logits, props.shape_after_crop, list(target_spacing), list(props.spacing)
        )
        top2 = np.sort(np.asarray(resampled), axis=0)[-2:]
        gap = np.zeros(props.shape_before_crop, dtype=np.float32) + np.inf
        gap[tuple(slice(a, b) for a, b in props.crop_bbox)] = top2[1] - top2[0]
        assert (gap.transpose(2, 1, 0)[differ] < 1e-4).all(), f"{int(differ.sum())} voxels differ"
