"""nnU-Net plans -> our Plan: the planner's own plans give nnU-Net's arrays and predictions."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _nnunet_files import TINY_PLAIN_ARCH, write_dataset_json, write_plans_folder
from _references import require
from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.planning import DatasetFingerprint, compute_fingerprint
from multitask_unet.data.preprocessing.case import preprocess_case
from multitask_unet.data.readers import read_dataset
from multitask_unet.errors import ConfigError
from multitask_unet.interop import (
    load_nnunet_weights,
    model_from_plans,
    nnunet_labels,
    plan_from_nnunet,
    preprocessing_from_nnunet,
)

LABELS = {"background": 0, "pancreas": 1, "lesion": 2}
DATASET = "Dataset999_Phantoms"

# A 3d_fullres configuration as nnunetv2 2.8.1's ExperimentPlanner writes it (one tiny network).
FULLRES: dict[str, Any] = {
    "data_identifier": "nnUNetPlans_3d_fullres",
    "preprocessor_name": "DefaultPreprocessor",
    "batch_size": 2,
    "patch_size": [8, 16, 16],
    "median_image_size_in_voxels": [9.0, 17.0, 15.0],
    "spacing": [3.0, 2.0, 1.5],
    "normalization_schemes": ["CTNormalization"],
    "use_mask_for_norm": [False],
    "resampling_fn_data": "resample_data_or_seg_to_shape",
    "resampling_fn_seg": "resample_data_or_seg_to_shape",
    "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0,
                                  "force_separate_z": None},
    "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0,
                                 "force_separate_z": None},
    "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
    "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                           "force_separate_z": None},
    "architecture": TINY_PLAIN_ARCH,
    "batch_dice": False,
}  # fmt: skip
PLANS: dict[str, Any] = {
    "dataset_name": DATASET,
    "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [3.0, 2.0, 1.5],
    "original_median_shape_after_transp": [9, 17, 15],
    "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2],
    "transpose_backward": [0, 1, 2],
    "configurations": {
        "3d_fullres": FULLRES,
        "2d": {**FULLRES, "spacing": [2.0, 1.5], "patch_size": [16, 16]},
        "3d_lowres": {"inherits_from": "3d_fullres", "spacing": [4.5, 3.0, 2.25]},
    },
    "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {
        "0": {"max": 168.0, "mean": 96.07, "median": 108.0, "min": -191.0,
              "percentile_00_5": -145.01, "percentile_99_5": 155.0, "std": 47.26},
    },
}  # fmt: skip


def write_plans(folder: Path, plans: dict | None = None, labels: dict | None = None) -> Path:
    """``folder/nnUNetPlans.json`` (default :data:`PLANS`) with its ``dataset.json``."""
    return write_plans_folder(folder, plans or PLANS, labels or LABELS, num_training=6)


def _fingerprint(num_channels: int = 1, labels: tuple[int, ...] = (0, 1, 2)) -> DatasetFingerprint:
    fp = DatasetFingerprint.from_dict(
        {
            "orientation": "LPS", "num_channels": num_channels,
            "intensity": [{"mean": 0.0, "std": 1.0, "median": 0.0, "min": -1.0, "max": 1.0,
                           "percentile_00_5": -1.0, "percentile_99_5": 1.0}] * num_channels,
            "cases": [{"case_id": "a", "spacing": [3.0, 2.0, 1.5], "shape": [9, 17, 15],
                       "shape_after_crop": [9, 17, 15], "label": 0,
                       "label_voxels": {str(k): 10 for k in labels}}],
            "median_spacing": [3.0, 2.0, 1.5], "median_shape_after_crop": [9.0, 17.0, 15.0],
            "median_relative_size_after_crop": 1.0,
            "label_voxel_counts": {str(k): 10 for k in labels},
            "label_case_counts": {str(k): 1 for k in labels}, "subtype_counts": {"0": 1},
        }
    )  # fmt: skip
    return fp


# -- the conversion, on a plans file in nnU-Net's format ---------------------------------------


def test_preprocessing_and_plan_from_a_plans_file(tmp_path: Path) -> None:
    path = write_plans(tmp_path / "pre")
    config = preprocessing_from_nnunet(path)  # dataset.json found next to the plans
    assert config.target_spacing == (3.0, 2.0, 1.5)  # nnU-Net's (z, y, x) is our (D, H, W)
    (norm,) = config.normalization
    assert (norm.scheme, norm.lower, norm.upper, norm.mean, norm.std) == (
        "ct", -145.01, 155.0, 96.07, 47.26
    )  # fmt: skip
    assert config.labels == (0, 1, 2) and config.orientation == "LPS" and config.crop_to_nonzero
    assert (config.image_order, config.image_order_z, config.seg_order, config.seg_order_z) == (
        3, 0, 1, 0
    )  # fmt: skip

    plan = plan_from_nnunet(path, "3d_fullres", fingerprint=_fingerprint())
    assert plan.preprocessing == config
    assert (plan.patch_size, plan.batch_size, plan.median_shape) == ((8, 16, 16), 2, (9, 17, 15))
    network = model_from_plans(path, in_channels=1, num_classes=3)
    assert plan.size_divisor == network.size_divisor == (2, 4, 4)
    lowres = preprocessing_from_nnunet(path, "3d_lowres")  # inherits_from resolved
    assert lowres.target_spacing == (4.5, 3.0, 2.25)
    assert lowres.cache_key() != config.cache_key()


def test_normalization_schemes(tmp_path: Path) -> None:
    plans = copy.deepcopy(PLANS)
    fullres = plans["configurations"]["3d_fullres"]
    fullres["normalization_schemes"] = ["ZScoreNormalization", "NoNormalization"]
    fullres["use_mask_for_norm"] = [False, False]
    labels = {"labels": LABELS}
    config = preprocessing_from_nnunet(plans, dataset_json=labels)
    assert [n.scheme for n in config.normalization] == ["zscore", "none"]
    with pytest.raises(ConfigError, match=r"has 1 image channel\(s\) .* normalises 2"):
        plan_from_nnunet(plans, fingerprint=_fingerprint(1), dataset_json=labels)

    fullres["use_mask_for_norm"] = [True, False]
    with pytest.raises(ConfigError, match="use_mask_for_norm"):
        preprocessing_from_nnunet(plans, dataset_json=labels)
    fullres["normalization_schemes"] = ["RescaleTo01Normalization", "NoNormalization"]
    with pytest.raises(ConfigError, match=r"RescaleTo01Normalization.*supported"):
        preprocessing_from_nnunet(plans, dataset_json=labels)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transpose_forward": [1, 0, 2]}, r"transpose_forward \[1, 0, 2\]"),
        ({"foreground_intensity_properties_per_channel": {}}, "lacks percentile_00_5"),
        ({"configurations": {"3d_fullres": {**FULLRES, "resampling_fn_data": "resample_torch"}}},
         "resample_torch"),
        ({"configurations": {"3d_fullres": {**FULLRES, "resampling_fn_seg_kwargs": {
            "order": 1, "force_separate_z": True}}}}, "force_separate_z"),
        ({"configurations": {"3d_fullres": {**FULLRES, "preprocessor_name": "Custom"}}},
         "Custom"),
        ({"configurations": {"3d_cascade_fullres": {**FULLRES, "previous_stage": "3d_lowres"}}},
         "cascade"),
    ],
)  # fmt: skip
def test_plans_without_an_equivalent_are_refused(change: dict, message: str) -> None:
    plans = {**PLANS, **change}
    name = next(iter(change.get("configurations", {"3d_fullres": None})))
    with pytest.raises(ConfigError, match=message):
        preprocessing_from_nnunet(plans, name, dataset_json={"labels": LABELS})


def test_bad_files_and_configurations(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        preprocessing_from_nnunet(tmp_path / "nnUNetPlans.json")
    broken = tmp_path / "broken" / "nnUNetPlans.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        preprocessing_from_nnunet(broken)
    path = write_plans(tmp_path / "pre")
    with pytest.raises(ConfigError, match=r"no configuration '3d_big'; available: \['2d', "):
        preprocessing_from_nnunet(path, "3d_big")
    with pytest.raises(ConfigError, match=r"not 3D .* one of \['3d_fullres', '3d_lowres'\]"):
        preprocessing_from_nnunet(path, "2d")
    (tmp_path / "pre" / "dataset.json").unlink()
    with pytest.raises(ConfigError, match=r"no dataset\.json next to"):
        preprocessing_from_nnunet(path)
    with pytest.raises(ConfigError, match="need dataset_json"):
        preprocessing_from_nnunet(PLANS)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"background": 0, "whole": [1, 2], "lesion": 2}, "region-based"),
        ({"background": 0, "organ": 1, "ignore": 2}, "'ignore' label"),
        ({"background": 0, "organ": 2}, "0 \\(background\\), 1, ..., N-1"),
        ({}, "no 'labels'"),
    ],
)
def test_labels_nnunet_cannot_share(labels: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        nnunet_labels({"labels": labels})


def test_dataset_labels_the_plans_lack_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"label\(s\) \[3\]"):
        plan_from_nnunet(
            PLANS, fingerprint=_fingerprint(labels=(0, 1, 3)), dataset_json={"labels": LABELS}
        )


def test_a_coarse_axis_elsewhere_than_the_plans_warns() -> None:
    plans = copy.deepcopy(PLANS)
    plans["configurations"]["3d_fullres"]["spacing"] = [5.0, 1.5, 1.5]
    fp = _fingerprint().replace(median_spacing=(1.5, 1.5, 5.0))
    with pytest.warns(UserWarning, match="coarsest axis is 2"):
        plan_from_nnunet(plans, fingerprint=fp, dataset_json={"labels": LABELS})


# -- against nnU-Net's own planner, preprocessor and predictor ---------------------------------


@pytest.fixture(scope="module")
def nnunet_planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Phantoms at two spacings as an nnU-Net raw dataset, planned by nnU-Net's planner.

    Returns ``(raw dataset folder, plans file)``. The axes have three different spacings and
    sizes, so a mix-up of axis order cannot go unnoticed.
    """
    extractor = require("nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor")
    planner = require("nnunetv2.experiment_planning.experiment_planners.default_experiment_planner")
    root = tmp_path_factory.mktemp("nnunet_planned")
    raw, preprocessed = root / "raw", root / "preprocessed"
    (raw / DATASET / "imagesTr").mkdir(parents=True)
    (raw / DATASET / "labelsTr").mkdir()
    for prefix, shape, spacing in (("a", (40, 32, 12), (1.0, 1.2, 3.0)),
                                   ("b", (36, 30, 10), (1.1, 1.3, 3.5))):  # fmt: skip
        index = write_phantom_dataset(root / prefix, n_train=2, n_validation=0, n_test=0,
                                      shape=shape, spacing=spacing, seed=len(prefix))  # fmt: skip
        for record in index.records:
            case = f"{prefix}_{record.case_id}"
            os.symlink(record.images[0], raw / DATASET / "imagesTr" / f"{case}_0000.nii.gz")
            os.symlink(record.mask, raw / DATASET / "labelsTr" / f"{case}.nii.gz")
    write_dataset_json(raw / DATASET, LABELS, num_training=4)
    patch = pytest.MonkeyPatch()
    try:
        for module in (extractor, planner):
            patch.setattr(module, "nnUNet_raw", str(raw))
            patch.setattr(module, "nnUNet_preprocessed", str(preprocessed))
        fingerprinter = extractor.DatasetFingerprintExtractor(DATASET, num_processes=1)
        fingerprinter.num_foreground_voxels_for_intensitystats = 4000
        fingerprinter.show_progress_bar = False
        fingerprinter.run()
        planner.ExperimentPlanner(DATASET, gpu_memory_target_in_gb=8).plan_experiment()
    finally:
        patch.undo()
    return raw / DATASET, preprocessed / DATASET / "nnUNetPlans.json"


def _nnunet_managers(plans_path: Path) -> tuple[Any, Any]:
    handler = require("nnunetv2.utilities.plans_handling.plans_handler")
    manager = handler.PlansManager(str(plans_path))
    return manager, manager.get_configuration("3d_fullres")


def test_plan_from_the_planners_plans(nnunet_planned: tuple[Path, Path]) -> None:
    raw, plans_path = nnunet_planned
    theirs = json.loads(plans_path.read_text())
    fullres = theirs["configurations"]["3d_fullres"]
    records = read_dataset(raw, layout="nnunet").split("train").records
    fingerprint = compute_fingerprint(records, workers=1, progress=False, intensity_samples=100)
    plan = plan_from_nnunet(plans_path, fingerprint=fingerprint)

    # Same files: nnU-Net's target spacing is the median of our (D, H, W) spacings, axis by axis
    assert plan.target_spacing == pytest.approx(tuple(fullres["spacing"]))
    assert plan.target_spacing == pytest.approx(fingerprint.median_spacing)
    assert len(set(plan.target_spacing)) == 3  # three different axes: an order mix-up would show
    assert plan.patch_size == tuple(fullres["patch_size"])
    assert plan.batch_size == fullres["batch_size"]
    stats = theirs["foreground_intensity_properties_per_channel"]["0"]
    (norm,) = plan.preprocessing.normalization
    assert (norm.lower, norm.upper, norm.mean, norm.std) == (
        stats["percentile_00_5"], stats["percentile_99_5"], stats["mean"], stats["std"]
    )  # fmt: skip


def test_preprocessed_arrays_equal_nnunet_default_preprocessor(
    nnunet_planned: tuple[Path, Path],
) -> None:
    preprocessors = require("nnunetv2.preprocessing.preprocessors.default_preprocessor")
    raw, plans_path = nnunet_planned
    manager, configuration = _nnunet_managers(plans_path)
    config = preprocessing_from_nnunet(plans_path)
    for record in read_dataset(raw, layout="nnunet").records:
        data, seg, _ = preprocessors.DefaultPreprocessor(verbose=False).run_case(
            [str(record.images[0])], str(record.mask), manager, configuration,
            str(plans_path.parent / "dataset.json"),
        )  # fmt: skip
        ours = preprocess_case(record, config)
        assert ours.image.shape == data.shape, record.case_id  # every case is resampled
        np.testing.assert_allclose(ours.image, data, atol=1e-4, err_msg=record.case_id)
        # nnU-Net marks background outside the non-zero region -1; ours keeps it 0
        assert (np.maximum(seg, 0) == ours.seg).mean() > 0.999, record.case_id


def test_an_nnunet_model_predicts_as_nnunet(nnunet_planned: tuple[Path, Path]) -> None:
    """nnU-Net's network and weights, with the converted plan, give nnU-Net's probabilities.

    Each case fits in one window (the planned patch is the median image), so Gaussian weighting
    cancels in both predictors; it is off in nnU-Net's, whose float16 accumulation of the tiny
    weights at a window's corners would otherwise differ from the network's output by up to half
    a logit there. nnU-Net also keeps the logits in float16, hence the tolerance.
    """
    networks = require("nnunetv2.utilities.get_network_from_plans")
    predictors = require("nnunetv2.inference.predict_from_raw_data")
    reader = require("nnunetv2.imageio.simpleitk_reader_writer")
    from multitask_unet.inference import Predictor

    raw, plans_path = nnunet_planned
    manager, configuration = _nnunet_managers(plans_path)
    arch = json.loads(plans_path.read_text())["configurations"]["3d_fullres"]["architecture"]
    torch.manual_seed(0)
    network = networks.get_network_from_plans(
        arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], 1, 3,
        deep_supervision=False,
    ).eval()  # fmt: skip
    nnunet = predictors.nnUNetPredictor(
        tile_step_size=0.5, use_gaussian=False, use_mirroring=False, device=torch.device("cpu"),
        perform_everything_on_device=False, verbose=False, allow_tqdm=False,
    )  # fmt: skip
    dataset_json = json.loads((plans_path.parent / "dataset.json").read_text())
    nnunet.manual_initialization(
        network, manager, configuration, [network.state_dict()], dataset_json,
        "nnUNetTrainer", None,
    )  # fmt: skip

    records = read_dataset(raw, layout="nnunet").records
    fingerprint = compute_fingerprint(records, workers=1, progress=False, intensity_samples=100)
    model = model_from_plans(plans_path, in_channels=1, num_classes=3, deep_supervision=False)
    assert load_nnunet_weights(model, network.state_dict()) == []
    plan = plan_from_nnunet(plans_path, fingerprint=fingerprint)
    ours = Predictor(model.eval(), plan, mirror_axes=(), save_probabilities=True)
    for record in (records[0], records[-1]):  # one case of each spacing
        shape = preprocess_case(record, plan.preprocessing).image.shape[1:]
        assert all(s <= p for s, p in zip(shape, plan.patch_size)), "one window per case"
        image, properties = reader.SimpleITKIO().read_images([str(record.images[0])])
        _, probabilities = nnunet.predict_single_npy_array(image, properties, None, None, True)
        mine = ours.predict_case(record).seg_probabilities  # (C, X, Y, Z), the file's axes
        theirs = np.asarray(probabilities).transpose(0, 3, 2, 1)  # (C, z, y, x) -> (C, x, y, z)
        assert mine.shape == theirs.shape, record.case_id
        np.testing.assert_allclose(mine.astype(np.float32), theirs, atol=5e-3)


def test_module_docstring_example_runs() -> None:
    import doctest

    from multitask_unet.interop import nnunet_plans

    result = doctest.testmod(nnunet_plans)
    assert result.attempted > 0 and result.failed == 0
